// The fragments of conv2d_coop.wgsl as cooperative matrices (subgroup scope:
// each is spread over the 32 invocations of the workgroup). naga's `coopLoad`
// reads column-major (element (r, c) at ptr[c·stride + r]), `coopLoadT` and
// `coopStoreT` row-major. kernels/source.rs adds `enable wgpu_cooperative_matrix;`.

alias FragA = coop_mat16x16<f16, A>;
alias FragB = coop_mat16x16<f16, B>;
alias FragC = coop_mat16x16<f32, C>;

fn frag_zero() -> FragC {
    return FragC();
}

// Rows m (16), columns k (16) of the weight tile from column `off`.
fn frag_load_a(off: u32) -> FragA {
    return coopLoad<FragA>(&a_tile[off], TM);
}

// Rows k (16), columns n (16) of the im2col tile from column `off`.
fn frag_load_b(off: u32) -> FragB {
    return coopLoadT<FragB>(&b_tile[off], TN);
}

fn frag_mma(a: FragA, b: FragB, c: FragC) -> FragC {
    return coopMultiplyAdd(a, b, c);
}

// The 16×16 result at column `off` of the staging row.
fn frag_store_c(c: FragC, off: u32) {
    coopStoreT(c, &c_stage[off], TN);
}
