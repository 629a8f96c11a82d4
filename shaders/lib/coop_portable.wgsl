// The fragments of conv2d_coop.wgsl in plain WGSL, for adapters without
// cooperative matrices (and for the tests on any adapter): the same tiles,
// offsets and layouts as lib/coop_native.wgsl. A and B fragments are their
// offsets in workgroup memory; each of the 32 invocations holds 8 of a C
// fragment's 256 values: row lane / 2, columns (lane % 2)·8 … +7. Products of
// f16 values are exact in f32, so this sums what the tensor cores sum, in
// another order.

alias FragA = u32;
alias FragB = u32;
alias FragC = array<f32, 8>;

fn frag_zero() -> FragC {
    return FragC();
}

fn frag_load_a(off: u32) -> FragA {
    return off;
}

fn frag_load_b(off: u32) -> FragB {
    return off;
}

fn frag_mma(a: FragA, b: FragB, c: FragC) -> FragC {
    var out = c;
    let row = lane / 2u;
    let col = (lane % 2u) * 8u;
    for (var k = 0u; k < 16u; k++) {
        // A(row, k): column-major, stride TM; B(k, col + e): row-major, stride TN.
        let x = f32(a_tile[k * TM + a + row]);
        for (var e = 0u; e < 8u; e++) {
            out[e] += x * f32(b_tile[k * TN + b + col + e]);
        }
    }
    return out;
}

fn frag_store_c(c: FragC, off: u32) {
    let row = lane / 2u;
    let col = (lane % 2u) * 8u;
    for (var e = 0u; e < 8u; e++) {
        c_stage[row * TN + off + col + e] = c[e];
    }
}
