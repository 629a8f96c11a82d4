// The uniform block of the conv kernels (conv2d.wgsl, conv2d_gemm.wgsl):
// kernels/conv.rs `ConvParams` writes it, and tests/kernels.rs checks the two
// agree field for field. `in_splits` and `in_flags` describe a folded input
// (lib/gemm_loads.wgsl, FOLDED).

struct Params {
    in_c: u32, in_h: u32, in_w: u32, out_c: u32,
    out_h: u32, out_w: u32, k_h: u32, k_w: u32,
    stride: u32, pad_y: u32, pad_x: u32, flags: u32,
    co_groups: u32, k_split: u32, in_splits: u32, in_flags: u32,
}
