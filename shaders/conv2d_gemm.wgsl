// Convolution as an implicit GEMM (fast mode): out[co][p] = Σ_k W[co][k] · X[k][p]
// with M = output channels, N = output pixels, K = in_channels·kh·kw, and the
// im2col matrix X never stored: each K×N tile is gathered from the NCHW input
// straight into workgroup memory.
//
// A 16×16 workgroup computes a 64×64 output tile; each invocation keeps a
// 4×4 block of outputs in registers (4 channels × 4 pixels), so every value
// loaded from workgroup memory feeds 4 multiply-adds. Weights are stored K×M
// ([ci][ky][kx][co]), so both tiles load with consecutive invocations on
// consecutive addresses.
//
// Epilogue (flags): + bias[co] (the folded batchnorm), (copy of F(x) to
// main_out), + residual, ReLU.

struct Params {
    in_c: u32, in_h: u32, in_w: u32, out_c: u32,
    out_h: u32, out_w: u32, k_h: u32, k_w: u32,
    stride: u32, pad_y: u32, pad_x: u32, flags: u32,
    co_groups: u32, _p0: u32, _p1: u32, _p2: u32,
}

const HAS_BIAS: u32 = 1u;
const HAS_RESIDUAL: u32 = 2u;
const RELU: u32 = 4u;
const WRITE_MAIN: u32 = 8u;

const TM: u32 = 64u;  // output channels per tile
const TN: u32 = 64u;  // output pixels per tile
const TK: u32 = 16u;  // reduction depth per step

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> residual: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;
// F(x) before the residual add, for the ‖F(x)‖ statistic (flag WRITE_MAIN).
@group(0) @binding(5) var<storage, read_write> main_out: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

var<workgroup> a_tile: array<f32, 1024>;  // [TK][TM]
var<workgroup> b_tile: array<f32, 1024>;  // [TK][TN]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let m0 = wg.y * TM;
    let n0 = wg.x * TN;
    let kk_size = p.k_h * p.k_w;
    let K = p.in_c * kk_size;
    let N = p.out_h * p.out_w;
    let M = p.out_c;

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    for (var k0 = 0u; k0 < K; k0 += TK) {
        // Weights: consecutive invocations read consecutive output channels.
        for (var i = 0u; i < 4u; i++) {
            let idx = li + i * 256u;
            let mm = idx % TM;
            let kk = idx / TM;
            let gm = m0 + mm;
            let gk = k0 + kk;
            var v = 0.0;
            if (gm < M && gk < K) {
                v = weight[gk * M + gm];
            }
            a_tile[kk * TM + mm] = v;
        }
        // Input gathered as im2col: consecutive invocations read consecutive pixels.
        for (var i = 0u; i < 4u; i++) {
            let idx = li + i * 256u;
            let nn = idx % TN;
            let kk = idx / TN;
            let gk = k0 + kk;
            let gn = n0 + nn;
            var v = 0.0;
            if (gk < K && gn < N) {
                let ci = gk / kk_size;
                let r = gk % kk_size;
                let iy = i32((gn / p.out_w) * p.stride + r / p.k_w) - i32(p.pad_y);
                let ix = i32((gn % p.out_w) * p.stride + r % p.k_w) - i32(p.pad_x);
                if (iy >= 0 && iy < i32(p.in_h) && ix >= 0 && ix < i32(p.in_w)) {
                    v = input[(ci * p.in_h + u32(iy)) * p.in_w + u32(ix)];
                }
            }
            b_tile[kk * TN + nn] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let ab = kk * TM + lid.y * 4u;
            let bb = kk * TN + lid.x * 4u;
            let b = vec4<f32>(b_tile[bb], b_tile[bb + 1u], b_tile[bb + 2u], b_tile[bb + 3u]);
            acc0 += a_tile[ab] * b;
            acc1 += a_tile[ab + 1u] * b;
            acc2 += a_tile[ab + 2u] * b;
            acc3 += a_tile[ab + 3u] * b;
        }
        workgroupBarrier();
    }

    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var i = 0u; i < 4u; i++) {
        let co = m0 + lid.y * 4u + i;
        if (co >= M) {
            break;
        }
        for (var j = 0u; j < 4u; j++) {
            let pix = n0 + lid.x * 4u + j;
            if (pix >= N) {
                break;
            }
            var v = accs[i][j];
            if ((p.flags & HAS_BIAS) != 0u) {
                v += bias[co];
            }
            let o = co * N + pix;
            if ((p.flags & WRITE_MAIN) != 0u) {
                main_out[o] = v;
            }
            if ((p.flags & HAS_RESIDUAL) != 0u) {
                v += residual[o];
            }
            if ((p.flags & RELU) != 0u) {
                v = max(v, 0.0);
            }
            output[o] = v;
        }
    }
}
