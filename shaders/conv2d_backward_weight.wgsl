// The weight gradient of a convolution as an implicit GEMM over the batch's
// pixels: with q running over (example, oy, ox) and k over (ci, ky, kx),
//   dW[k][co] = Σ_q X[q][k] · dY[q][co]
// where X[q][k] is the input the forward pass multiplied by w[k][co] (the
// im2col matrix, gathered on the fly, zero in the padding). dW comes out in
// the forward kernels' K×M layout.
//
// 64×64 output tiles, 16×16 invocations of 4×4 accumulators each, q in
// steps of 16 through workgroup memory. Grid: x = K tiles, y = M tiles,
// z = slices of q (`k_split` q's each): slice s writes its partial sums to
// output[s·K·M ..], added up by conv_splitk.wgsl in slice order, so the
// result does not depend on scheduling. `co_groups` holds the batch size.

// #include lib/conv_params.wgsl

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

// [q][k / 4] and [q][co / 4] of the current 16 q's.
var<workgroup> xs: array<vec4<f32>, 256>;
var<workgroup> ds: array<vec4<f32>, 256>;

// X[q][k], zero outside the input.
fn im2col(q: u32, k: u32, kk: u32) -> f32 {
    let pixels = p.out_h * p.out_w;
    if (k >= p.in_c * kk || q >= p.co_groups * pixels) {
        return 0.0;
    }
    let e = q / pixels;
    let pix = q % pixels;
    let ci = k / kk;
    let t = k % kk;
    let iy = i32((pix / p.out_w) * p.stride + t / p.k_w) - i32(p.pad_y);
    let ix = i32((pix % p.out_w) * p.stride + t % p.k_w) - i32(p.pad_x);
    if (iy < 0 || ix < 0 || iy >= i32(p.in_h) || ix >= i32(p.in_w)) {
        return 0.0;
    }
    return x[((e * p.in_c + ci) * p.in_h + u32(iy)) * p.in_w + u32(ix)];
}

fn dy_at(q: u32, co: u32) -> f32 {
    let pixels = p.out_h * p.out_w;
    if (co >= p.out_c || q >= p.co_groups * pixels) {
        return 0.0;
    }
    return dy[((q / pixels) * p.out_c + co) * pixels + q % pixels];
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let kk = p.k_h * p.k_w;
    let k_len = p.in_c * kk;
    let k0 = wg.x * 64u;
    let m0 = wg.y * 64u;
    let q_len = p.co_groups * p.out_h * p.out_w;
    let q_begin = wg.z * p.k_split;
    let q_end = min(q_begin + p.k_split, q_len);

    var acc: array<vec4<f32>, 4>;
    for (var q0 = q_begin; q0 < q_end; q0 += 16u) {
        // 256 invocations fill 256 vec4s of each tile: row li / 16, column group li % 16.
        let row = li / 16u;
        let col = (li % 16u) * 4u;
        let q = select(q_len, q0 + row, q0 + row < q_end);
        xs[li] = vec4<f32>(im2col(q, k0 + col, kk), im2col(q, k0 + col + 1u, kk), im2col(q, k0 + col + 2u, kk), im2col(q, k0 + col + 3u, kk));
        ds[li] = vec4<f32>(dy_at(q, m0 + col), dy_at(q, m0 + col + 1u), dy_at(q, m0 + col + 2u), dy_at(q, m0 + col + 3u));
        workgroupBarrier();
        for (var r = 0u; r < 16u; r++) {
            let a = xs[r * 16u + lid.x];
            let b = ds[r * 16u + lid.y];
            acc[0] += a.x * b;
            acc[1] += a.y * b;
            acc[2] += a.z * b;
            acc[3] += a.w * b;
        }
        workgroupBarrier();
    }

    let base = wg.z * k_len * p.out_c;
    for (var i = 0u; i < 4u; i++) {
        let k = k0 + lid.x * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let co = m0 + lid.y * 4u + j;
            if (k < k_len && co < p.out_c) {
                output[base + k * p.out_c + co] = acc[i][j];
            }
        }
    }
}
