//! 3×3, stride-1, pad-1 convolutions by Winograd's F(2×2, 3×3): each 2×2
//! block of outputs from a 4×4 input patch with 16 multiplications per
//! (input, output) channel pair instead of 36, so 2.25× less GEMM work —
//! most of ResNet-18's and half of ResNet-50's arithmetic.
//!
//! `Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A`: the kernels are transformed once at
//! load (U), each tile's input patch per frame (V); the elementwise products
//! summed over input channels are 16 GEMMs `M_ξ = U_ξ · V_ξ`, one per
//! position ξ of the 4×4 transformed tile; the output transform folds each
//! tile's 16 values back to 2×2 outputs. F(2, 3)'s transforms use only
//! 0, ±1 and ±½, so the result stays within ~1e-6 of the direct sum.

use super::conv::{epilogue, gemm, Epilogue, COL_BUDGET};
use crate::model::Shape;

pub struct Winograd {
    /// U_ξ = (G g Gᵀ)_ξ for every (m, c): 16 matrices M×C, row-major.
    u: Vec<f32>,
    m: usize,
    c: usize,
}

/// Scratch for V (16×C×tiles) and the GEMMs' results (16×M×tiles).
#[derive(Default)]
pub struct Scratch {
    v: Vec<f32>,
    p: Vec<f32>,
}

impl Winograd {
    /// From OIHW 3×3 kernels of `m` output and `c` input channels.
    pub fn new(weight: &[f32], m: usize, c: usize) -> Winograd {
        let mut u = vec![0.0f32; 16 * m * c];
        for o in 0..m {
            for i in 0..c {
                let g = &weight[(o * c + i) * 9..(o * c + i) * 9 + 9];
                // G g (4×3), then (G g) Gᵀ (4×4). G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1].
                let mut gg = [[0.0f32; 3]; 4];
                for x in 0..3 {
                    let (a, b, d) = (g[x], g[3 + x], g[6 + x]);
                    gg[0][x] = a;
                    gg[1][x] = 0.5 * (a + b + d);
                    gg[2][x] = 0.5 * (a - b + d);
                    gg[3][x] = d;
                }
                for (r, row) in gg.iter().enumerate() {
                    let t = [row[0], 0.5 * (row[0] + row[1] + row[2]), 0.5 * (row[0] - row[1] + row[2]), row[2]];
                    for (col, v) in t.iter().enumerate() {
                        u[((r * 4 + col) * m + o) * c + i] = *v;
                    }
                }
            }
        }
        Winograd { u, m, c }
    }

    /// `output = epilogue(conv3×3(input))`, stride 1, padding 1.
    pub fn run(&self, input: &[f32], i: Shape, output: &mut [f32], o: Shape, bias: Option<&[f32]>, mut ep: Epilogue, s: &mut Scratch) {
        let (m, c) = (self.m, self.c);
        let (th, tw) = (o.h.div_ceil(2), o.w.div_ceil(2));
        let tiles = th * tw;
        // Tiles per block: V and the products for a block stay within budget.
        let block = (COL_BUDGET / (16 * (m + c))).clamp(16, tiles.max(16)).min(tiles);
        if s.v.len() < 16 * c * block {
            s.v.resize(16 * c * block, 0.0);
        }
        if s.p.len() < 16 * m * block {
            s.p.resize(16 * m * block, 0.0);
        }
        for t0 in (0..tiles).step_by(block) {
            let tb = block.min(tiles - t0);
            transform_input(input, i, tw, t0, tb, &mut s.v[..16 * c * tb]);
            for xi in 0..16 {
                let u = &self.u[xi * m * c..(xi + 1) * m * c];
                gemm(u, m, c, &s.v[xi * c * tb..(xi + 1) * c * tb], tb, tb, &mut s.p[xi * m * tb..(xi + 1) * m * tb], tb);
            }
            transform_output(&s.p[..16 * m * tb], m, tb, tw, t0, output, o);
        }
        epilogue(bias, output, o.h * o.w, 0..o.h * o.w, &mut ep);
    }
}

/// V for tiles `t0..t0+tb`: `Bᵀ d B` of each 4×4 input patch (zero outside
/// the input), laid out `[ξ][channel][tile]`. Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1].
/// A band of tiles at a time: `Bᵀ d` combines four whole padded input rows
/// (vectorisable), then `· B` each tile's four columns of them.
fn transform_input(input: &[f32], i: Shape, tw: usize, t0: usize, tb: usize, v: &mut [f32]) {
    let pw = 2 * tw + 2; // padded row: one zero on the left, zeros past the right edge
    let mut band = vec![0.0f32; 4 * pw];
    let mut bt = vec![0.0f32; 4 * pw];
    let (mut t, end) = (t0, t0 + tb);
    while t < end {
        let (ty, tx0) = (t / tw, t % tw);
        let run = (tw - tx0).min(end - t);
        for ci in 0..i.c {
            let plane = &input[ci * i.h * i.w..(ci + 1) * i.h * i.w];
            for r in 0..4 {
                let dst = &mut band[r * pw..(r + 1) * pw];
                dst.fill(0.0);
                let y = (2 * ty + r) as isize - 1;
                if y >= 0 && (y as usize) < i.h {
                    dst[1..1 + i.w].copy_from_slice(&plane[y as usize * i.w..(y as usize + 1) * i.w]);
                }
            }
            let (d0, rest) = band.split_at(pw);
            let (d1, rest) = rest.split_at(pw);
            let (d2, d3) = rest.split_at(pw);
            let (b0, rest) = bt.split_at_mut(pw);
            let (b1, rest) = rest.split_at_mut(pw);
            let (b2, b3) = rest.split_at_mut(pw);
            for x in 0..pw {
                b0[x] = d0[x] - d2[x];
                b1[x] = d1[x] + d2[x];
                b2[x] = d2[x] - d1[x];
                b3[x] = d1[x] - d3[x];
            }
            for (r, row) in [&*b0, &*b1, &*b2, &*b3].into_iter().enumerate() {
                let base = |q: usize| ((r * 4 + q) * i.c + ci) * tb + (t - t0);
                let (o0, o1, o2, o3) = (base(0), base(1), base(2), base(3));
                for k in 0..run {
                    let a = &row[2 * (tx0 + k)..2 * (tx0 + k) + 4];
                    v[o0 + k] = a[0] - a[2];
                    v[o1 + k] = a[1] + a[2];
                    v[o2 + k] = a[2] - a[1];
                    v[o3 + k] = a[1] - a[3];
                }
            }
        }
        t += run;
    }
}

/// `Aᵀ P A` for each tile's 16 products → its 2×2 outputs (those inside the
/// map). Aᵀ = [1 1 1 0; 0 1 −1 −1]. A band of tiles at a time, over contiguous runs.
fn transform_output(p: &[f32], m: usize, tb: usize, tw: usize, t0: usize, output: &mut [f32], o: Shape) {
    let (mut t, end) = (t0, t0 + tb);
    while t < end {
        let (ty, tx0) = (t / tw, t % tw);
        let run = (tw - tx0).min(end - t);
        let k0 = t - t0;
        for co in 0..m {
            let out = &mut output[co * o.h * o.w..(co + 1) * o.h * o.w];
            let s = |xi: usize| &p[(xi * m + co) * tb + k0..(xi * m + co) * tb + k0 + run];
            for dy in 0..2 {
                let y = 2 * ty + dy;
                if y >= o.h {
                    break;
                }
                // Row dy of Aᵀ P: P row 0 + 1 + 2, or P row 1 − 2 − 3; then · A.
                let (r, sign) = if dy == 0 { ([0, 1, 2], 1.0) } else { ([1, 2, 3], -1.0) };
                let row = |q: usize| -> Vec<f32> {
                    let (a, b, c) = (s(4 * r[0] + q), s(4 * r[1] + q), s(4 * r[2] + q));
                    a.iter().zip(b).zip(c).map(|((a, b), c)| a + sign * (b + c)).collect()
                };
                let (q0, q1, q2, q3) = (row(0), row(1), row(2), row(3));
                let dst = &mut out[y * o.w..(y + 1) * o.w];
                for k in 0..run {
                    let x = 2 * (tx0 + k);
                    dst[x] = q0[k] + q1[k] + q2[k];
                    if x + 1 < o.w {
                        dst[x + 1] = q1[k] - q2[k] - q3[k];
                    }
                }
            }
        }
        t += run;
    }
}
