// Convolution as an implicit GEMM on 16×16×16 matrix fragments (f16 × f16 →
// f32): tensor cores through cooperative matrices (wgpu's
// EXPERIMENTAL_COOPERATIVE_MATRIX: Vulkan VK_KHR_cooperative_matrix, Metal
// simdgroup matrices) where the adapter has them, and otherwise a portable
// twin in plain WGSL with the same tiles, fragments and offsets, which the
// tests run on any adapter. kernels/source.rs includes one of the two
// fragment files at `#include lib/coop_ops.wgsl`: lib/coop_native.wgsl or
// lib/coop_portable.wgsl.
//
// One workgroup of 32 invocations — one subgroup on the GPUs this is chosen
// for — computes a 64×64 output tile as 4×4 fragments of 16×16, f32
// accumulators. Per K step of 16 it gathers the weight tile (16×64, stored
// K×M) and the im2col tile (16×64) into workgroup memory as f16, then
// multiplies 4 A fragments by 4 B fragments. The epilogue (folded batchnorm
// bias, F(x) copy, residual, ReLU) runs per element after each row of
// fragments is stored through workgroup memory; under split-K the raw f32
// partial sums go out instead and conv_splitk.wgsl finishes.
//
// Activations and weights are f16 (the f16 path): `act` and `wt` are f16.

alias act = f32;
alias wt = f32;
alias out_t = act;
// The input: `act`, or f32: split-K partial sums when FOLDED
// (lib/gemm_loads.wgsl), or the network's input on the f16 path.
alias in_t = act;

// #include lib/conv_params.wgsl

// Flags HAS_BIAS, HAS_RESIDUAL, RELU, WRITE_MAIN and conv_epilogue():
// #include lib/conv_epilogue.wgsl

const TM: u32 = 64u;  // output channels per tile
const TN: u32 = 64u;  // output pixels per tile
const TK: u32 = 16u;  // reduction depth per step: one fragment
const LANES: u32 = 32u;

// input, weight, bias, residual, output, main_out, in_bias, p and SPLIT:
// #include lib/gemm_bindings.wgsl

var<workgroup> a_tile: array<f16, 1024>;   // [TK][TM]: a fragment is column-major, stride TM
var<workgroup> b_tile: array<f16, 1024>;   // [TK][TN]: row-major, stride TN
var<workgroup> c_stage: array<f32, 1024>;  // one row of fragments: [16][TN], row-major

// The invocation's index in its workgroup (the portable fragments use it).
var<private> lane: u32;

// FragA/B/C, frag_zero(), frag_load_a(), frag_load_b(), frag_mma(), frag_store_c():
// #include lib/coop_ops.wgsl

// Loader, weight_row(), input_row() and POINTWISE:
// #include lib/gemm_loads.wgsl

@compute @workgroup_size(32)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    lane = li;
    let m0 = wg.y * TM;
    let n0 = wg.x * TN;
    let N = p.out_h * p.out_w;
    let M = p.out_c;
    let k_all = p.in_c * p.k_h * p.k_w;
    let k_begin = wg.z * p.k_split;
    let K = min(k_all, k_begin + p.k_split);

    // Each invocation loads columns 4q..4q+3 of rows r, r + 2, …, r + 14 of both tiles.
    let q = li % 16u;
    let r = li / 16u;
    let ld = make_loader(r, m0 + 4u * q, n0 + 4u * q, N);

    var acc: array<FragC, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = frag_zero();
    }
    for (var k0 = k_begin; k0 < K; k0 += TK) {
        for (var j = 0u; j < 8u; j++) {
            let row = r + 2u * j;
            let a = vec4<f16>(weight_row(ld, k0 + row, K, M));
            let b = vec4<f16>(input_row(ld, k0 + row, K, N));
            let at = row * TM + 4u * q;
            a_tile[at] = a.x; a_tile[at + 1u] = a.y; a_tile[at + 2u] = a.z; a_tile[at + 3u] = a.w;
            b_tile[at] = b.x; b_tile[at + 1u] = b.y; b_tile[at + 2u] = b.z; b_tile[at + 3u] = b.w;
        }
        workgroupBarrier();
        var fa: array<FragA, 4>;
        var fb: array<FragB, 4>;
        for (var i = 0u; i < 4u; i++) {
            fa[i] = frag_load_a(16u * i);
            fb[i] = frag_load_b(16u * i);
        }
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                acc[4u * i + j] = frag_mma(fa[i], fb[j], acc[4u * i + j]);
            }
        }
        workgroupBarrier();
    }

    // Each row of fragments through workgroup memory, then the epilogue per element.
    let split = (p.flags & SPLIT) != 0u;
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            frag_store_c(acc[4u * i + j], 16u * j);
        }
        workgroupBarrier();
        for (var e = li; e < 16u * TN; e += LANES) {
            let co = m0 + 16u * i + e / TN;
            let px = n0 + e % TN;
            if (co < M && px < N) {
                let o = co * N + px;
                if (split) {
                    output[wg.z * M * N + o] = out_t(c_stage[e]);
                } else {
                    output[o] = out_t(conv_epilogue(c_stage[e], co, o));
                }
            }
        }
        workgroupBarrier();
    }
}
