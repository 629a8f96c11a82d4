// Convolution as an implicit GEMM (fast mode): out[co][p] = Σ_k W[co][k] · X[k][p]
// with M = output channels, N = output pixels, K = in_channels·kh·kw, and the
// im2col matrix X never stored: each K×N tile is gathered from the NCHW input
// straight into workgroup memory.
//
// Why NCHW and not NHWC: at batch 1 a channel plane is N = H·W contiguous
// floats, so the B tile (K rows × 64 pixels) loads coalesced, and a 1×1
// stride-1 conv (most of ResNet-50's work) is exactly a row-major K×N GEMM
// with no gather at all (POINTWISE). The activation view reads whole channel
// planes, which NCHW gives without a transpose.
//
// A 16×16 workgroup computes a 64×64 output tile (or 8×8 a 32×32 one, see
// TS); each invocation keeps a 4×4 block (4 channels × 4 pixels) in registers. Both tiles are vec4 in
// workgroup memory, so each step reads two vec4s for 16 multiply-adds.
// Weights are stored K×M ([ci][ky][kx][co]): the A tile loads coalesced too.
// The next step's tiles are loaded into registers while this one computes.
//
// Split-K (when wg.z ranges over p.k_split-long slices of K): layers with few
// output tiles (7×7 and 14×14 maps at batch 1) would leave most of a big GPU
// idle, so each slice writes raw partial sums to `output` (a scratch buffer,
// flag SPLIT) and conv_splitk.wgsl adds them up and applies the epilogue.
//
// Epilogue (flags): + bias[co] (the folded batchnorm), (copy of F(x) to
// main_out), + residual, ReLU.

// Storage types: `act` for activations, `wt` for weights. The f16 path
// (kernels/source.rs, Precision::F16) compiles this file with both set to f16 and
// `enable f16;`. `out_t` is `act`, or f32 in the pipelines that write split-K
// partial sums.
alias act = f32;
alias wt = f32;
alias out_t = act;
// Arithmetic: on the f16 path the tiles hold f16 and each K step's 16
// products are multiplied and summed as vec4<f16> (twice the rate of f32 on
// most laptop and mobile GPUs), then added to f32 accumulators, so no f16
// sum runs longer than 16 products. In f32 the step sums straight into the
// accumulators (F16_MATH false: the selects below fold away).
alias mul_t = f32;
const F16_MATH = false;
// The input: `act`, or f32: split-K partial sums when FOLDED
// (lib/gemm_loads.wgsl), or the network's input on the f16 path.
alias in_t = act;

// #include lib/conv_params.wgsl

// Flags HAS_BIAS, HAS_RESIDUAL, RELU, WRITE_MAIN and conv_epilogue():
// #include lib/conv_epilogue.wgsl

// Tile side: 64 output channels × 64 pixels (a 16×16 workgroup), or 32×32
// (an 8×8 one: kernels/source.rs switches it, `small_tile`) for layers with
// few output tiles, where four times the workgroups can replace split-K and
// its reduction dispatch.
const TS: u32 = 64u;
const TM: u32 = TS;             // output channels per tile
const TN: u32 = TS;             // output pixels per tile
const TK: u32 = 16u;            // reduction depth per step
const T: u32 = TS / 4u;         // invocations per side, 4×4 outputs each
const TV: u32 = TK * T;         // vec4s per tile
// Rows of each tile an invocation loads per step: 1 (64×64), 2 (32×32).
const LOADS: u32 = TV / (T * T);

// input, weight, bias, residual, output, main_out, in_bias, p and SPLIT:
// #include lib/gemm_bindings.wgsl

var<workgroup> a_tile: array<vec4<mul_t>, TV>;  // [TK][TM/4]
var<workgroup> b_tile: array<vec4<mul_t>, TV>;  // [TK][TN/4]

// Loader, weight_row(), input_row() and POINTWISE:
// #include lib/gemm_loads.wgsl

@compute @workgroup_size(T, T)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let m0 = wg.y * TM;
    let n0 = wg.x * TN;
    let N = p.out_h * p.out_w;
    let M = p.out_c;
    let k_all = p.in_c * p.k_h * p.k_w;
    // This workgroup's slice of K (all of it without split-K).
    let k_begin = wg.z * p.k_split;
    let K = min(k_all, k_begin + p.k_split);

    // Row li / T of each tile (and, with 2 loads, row li / T + T too).
    let ld = make_loader(li / T, m0 + (li % T) * 4u, n0 + (li % T) * 4u, N);

    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    // Software pipelining: the next step's global loads are issued before
    // this step's multiply-adds, so their latency hides behind the math.
    var a_next = weight_row(ld, k_begin + ld.lk, K, M);
    var b_next = input_row(ld, k_begin + ld.lk, K, N);
    var a_next2 = vec4<f32>(0.0);
    var b_next2 = vec4<f32>(0.0);
    if (LOADS > 1u) {
        a_next2 = weight_row(ld, k_begin + ld.lk + T, K, M);
        b_next2 = input_row(ld, k_begin + ld.lk + T, K, N);
    }
    for (var k0 = k_begin; k0 < K; k0 += TK) {
        a_tile[li] = vec4<mul_t>(a_next);
        b_tile[li] = vec4<mul_t>(b_next);
        if (LOADS > 1u) {
            a_tile[li + T * T] = vec4<mul_t>(a_next2);
            b_tile[li + T * T] = vec4<mul_t>(b_next2);
        }
        workgroupBarrier();
        a_next = weight_row(ld, k0 + TK + ld.lk, K, M);
        b_next = input_row(ld, k0 + TK + ld.lk, K, N);
        if (LOADS > 1u) {
            a_next2 = weight_row(ld, k0 + TK + ld.lk + T, K, M);
            b_next2 = input_row(ld, k0 + TK + ld.lk + T, K, N);
        }
        // This step's sums: the accumulators themselves in f32, fresh f16 ones under F16_MATH.
        var s0 = select(vec4<mul_t>(acc0), vec4<mul_t>(0.0), F16_MATH);
        var s1 = select(vec4<mul_t>(acc1), vec4<mul_t>(0.0), F16_MATH);
        var s2 = select(vec4<mul_t>(acc2), vec4<mul_t>(0.0), F16_MATH);
        var s3 = select(vec4<mul_t>(acc3), vec4<mul_t>(0.0), F16_MATH);
        // Unrolled by 4, loads first: more independent work per iteration
        // (10% faster on an H200 than the plain loop).
        for (var kk = 0u; kk < TK; kk += 4u) {
            let a0 = a_tile[kk * T + lid.y];
            let b0 = b_tile[kk * T + lid.x];
            let a1 = a_tile[(kk + 1u) * T + lid.y];
            let b1 = b_tile[(kk + 1u) * T + lid.x];
            let a2 = a_tile[(kk + 2u) * T + lid.y];
            let b2 = b_tile[(kk + 2u) * T + lid.x];
            let a3 = a_tile[(kk + 3u) * T + lid.y];
            let b3 = b_tile[(kk + 3u) * T + lid.x];
            s0 += a0.x * b0; s1 += a0.y * b0; s2 += a0.z * b0; s3 += a0.w * b0;
            s0 += a1.x * b1; s1 += a1.y * b1; s2 += a1.z * b1; s3 += a1.w * b1;
            s0 += a2.x * b2; s1 += a2.y * b2; s2 += a2.z * b2; s3 += a2.w * b2;
            s0 += a3.x * b3; s1 += a3.y * b3; s2 += a3.z * b3; s3 += a3.w * b3;
        }
        acc0 = select(vec4<f32>(s0), acc0 + vec4<f32>(s0), F16_MATH);
        acc1 = select(vec4<f32>(s1), acc1 + vec4<f32>(s1), F16_MATH);
        acc2 = select(vec4<f32>(s2), acc2 + vec4<f32>(s2), F16_MATH);
        acc3 = select(vec4<f32>(s3), acc3 + vec4<f32>(s3), F16_MATH);
        workgroupBarrier();
    }

    let split = (p.flags & SPLIT) != 0u;
    let row = m0 + lid.y * 4u;
    let col = n0 + lid.x * 4u;
    store_row(row, col, acc0, M, N, split, wg.z);
    store_row(row + 1u, col, acc1, M, N, split, wg.z);
    store_row(row + 2u, col, acc2, M, N, split, wg.z);
    store_row(row + 3u, col, acc3, M, N, split, wg.z);
}

// Epilogue for 4 pixels of output channel `co`: raw partial sums under
// split-K, else bias, F(x) copy, residual and ReLU.
fn store_row(co: u32, pix: u32, acc: vec4<f32>, M: u32, N: u32, split: bool, slice: u32) {
    if (co >= M) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (pix + j >= N) {
            return;
        }
        let o = co * N + pix + j;
        if (split) {
            output[slice * M * N + o] = out_t(acc[j]);
        } else {
            output[o] = out_t(conv_epilogue(acc[j], co, o));
        }
    }
}
