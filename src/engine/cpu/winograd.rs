//! 3×3, stride-1, pad-1 convolutions by Winograd's minimal filtering
//! (Lavin & Gray 2015): F(4×4, 3×3) computes each 4×4 block of outputs from
//! a 6×6 input patch with 36 multiplications per (input, output) channel
//! pair instead of 144; F(2×2, 3×3) each 2×2 block with 16 instead of 36 —
//! most of ResNet-18's arithmetic and half of ResNet-50's.
//!
//! Which one a conv gets is fixed at load, from its width ([`Winograd::for_conv`]):
//! up to 128 input channels (ResNet's first two stages, whose maps are large)
//! F(4, 3); wider convs, on small maps where 4×4 tiles would leave the GEMMs
//! too few columns, F(2, 3) in WebAssembly and the plain GEMM natively.
//! Only the transformed kernels are kept: 4× (F(4, 3)) or 1.8× (F(2, 3)) the
//! 3×3 weights, instead of the weights themselves.
//!
//! `Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A`: the kernels are transformed once at
//! load (U), each tile's input patch per frame (V); the products summed over
//! input channels are α² GEMMs `M_ξ = U_ξ · V_ξ`, one per position ξ of the
//! α×α transformed tile; the output transform folds them back. F(4, 3)'s
//! transforms use the points 0, ±1, ±2: its results stay within ~1e-5 of the
//! direct sum relative to the largest output, well inside the tolerance the
//! tests hold every path to against ONNX Runtime.

use super::conv::{epilogue, gemm, Epilogue, COL_BUDGET};
use crate::model::Shape;

/// One of the two tile sizes: output tile m×m from an α×α input patch, α = m + 2.
struct Variant {
    m: usize,
    /// G (α×3), row-major, for the kernels.
    g: &'static [f32],
}

const F2: Variant = Variant { m: 2, g: &[1., 0., 0., 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0., 0., 1.] };

const F4: Variant = Variant {
    m: 4,
    g: &[
        1. / 4., 0., 0., //
        -1. / 6., -1. / 6., -1. / 6., //
        -1. / 6., 1. / 6., -1. / 6., //
        1. / 24., 1. / 12., 1. / 6., //
        1. / 24., -1. / 12., 1. / 6., //
        0., 0., 1.,
    ],
};

/// Bᵀ x for F(2, 3): Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1].
#[inline(always)]
fn bt4(x: [f32; 4]) -> [f32; 4] {
    [x[0] - x[2], x[1] + x[2], x[2] - x[1], x[1] - x[3]]
}

/// Bᵀ x for F(4, 3).
#[inline(always)]
fn bt6(x: [f32; 6]) -> [f32; 6] {
    [
        4.0 * x[0] - 5.0 * x[2] + x[4],
        -4.0 * (x[1] + x[2]) + x[3] + x[4],
        4.0 * (x[1] - x[2]) - x[3] + x[4],
        2.0 * (x[3] - x[1]) - x[2] + x[4],
        2.0 * (x[1] - x[3]) - x[2] + x[4],
        4.0 * x[1] - 5.0 * x[3] + x[5],
    ]
}

/// Aᵀ x for F(2, 3): Aᵀ = [1 1 1 0; 0 1 −1 −1].
#[inline(always)]
fn at4(x: [f32; 4]) -> [f32; 2] {
    [x[0] + x[1] + x[2], x[1] - x[2] - x[3]]
}

/// Aᵀ x for F(4, 3): points 0, ±1, ±2.
#[inline(always)]
fn at6(x: [f32; 6]) -> [f32; 4] {
    let (s1, d1, s2, d2) = (x[1] + x[2], x[1] - x[2], x[3] + x[4], x[3] - x[4]);
    [x[0] + s1 + s2, d1 + 2.0 * d2, s1 + 4.0 * s2, d1 + 8.0 * d2 + x[5]]
}

impl Variant {
    fn alpha(&self) -> usize {
        self.m + 2
    }
}

pub struct Winograd {
    f: &'static Variant,
    /// U_ξ = (G g Gᵀ)_ξ for every (m, c): α² matrices M×C.
    u: Vec<f32>,
    m: usize,
    c: usize,
}

/// Scratch for V (α²×C×tiles), the GEMMs' results (α²×M×tiles) and a band of input rows.
#[derive(Default)]
pub struct Scratch {
    v: Vec<f32>,
    p: Vec<f32>,
    band: Vec<f32>,
}

/// `G g Gᵀ` of every 3×3 kernel, laid out `[ξ][m][c]`.
fn transform_kernels(f: &Variant, weight: &[f32], m: usize, c: usize) -> Vec<f32> {
    let a = f.alpha();
    let mut u = vec![0.0f32; a * a * m * c];
    for o in 0..m {
        for i in 0..c {
            let g = &weight[(o * c + i) * 9..(o * c + i) * 9 + 9];
            for r in 0..a {
                for q in 0..a {
                    // (G g Gᵀ)[r][q] = Σ_{y,x} G[r][y] g[y][x] G[q][x]
                    let mut s = 0.0f64;
                    for y in 0..3 {
                        for x in 0..3 {
                            s += f.g[r * 3 + y] as f64 * g[y * 3 + x] as f64 * f.g[q * 3 + x] as f64;
                        }
                    }
                    u[((r * a + q) * m + o) * c + i] = s as f32;
                }
            }
        }
    }
    u
}

impl Winograd {
    /// The Winograd form of a 3×3, stride-1, pad-1 conv with OIHW kernels
    /// `weight` (`m` outputs, `c` inputs), or `None` where the GEMM is
    /// faster. Measured on ResNet-18/50 at 224: F(4, 3) on the first two
    /// stages 1.2× faster than the GEMM natively and 1.3× in wasm; F(2, 3) on
    /// the 14×14 and 7×7 stages 1.1–1.4× faster in wasm, but 1.1–1.5× slower
    /// natively, where the AVX GEMM is five times as fast and the 16 small
    /// GEMMs cost more than the multiplications they save.
    pub fn for_conv(weight: &[f32], m: usize, c: usize) -> Option<Winograd> {
        match c {
            0..=128 => Some(Winograd::new(weight, m, c, 4)),
            _ if cfg!(target_arch = "wasm32") => Some(Winograd::new(weight, m, c, 2)),
            _ => None,
        }
    }

    /// F(`tile`×`tile`, 3×3), `tile` 2 or 4, whatever the conv's width.
    pub fn new(weight: &[f32], m: usize, c: usize, tile: usize) -> Winograd {
        let f = if tile == 4 { &F4 } else { &F2 };
        Winograd { f, u: transform_kernels(f, weight, m, c), m, c }
    }

    /// `output = epilogue(conv3×3(input))`, stride 1, padding 1.
    #[allow(clippy::too_many_arguments)]
    pub fn run(&self, input: &[f32], i: Shape, output: &mut [f32], o: Shape, bias: Option<&[f32]>, mut ep: Epilogue, s: &mut Scratch) {
        let (f, u) = (self.f, &self.u);
        let (m, c, a) = (self.m, self.c, f.alpha());
        let (th, tw) = (o.h.div_ceil(f.m), o.w.div_ceil(f.m));
        let tiles = th * tw;
        // Tiles per block: V and the products for a block stay within budget.
        let block = (COL_BUDGET / (a * a * (m + c))).clamp(16, tiles.max(16)).min(tiles);
        grow(&mut s.v, a * a * c * block);
        grow(&mut s.p, a * a * m * block);
        for t0 in (0..tiles).step_by(block) {
            let tb = block.min(tiles - t0);
            let v = &mut s.v[..a * a * c * tb];
            if f.m == 4 {
                transform_input::<6, 4>(bt6, input, i, tw, t0, tb, v, &mut s.band);
            } else {
                transform_input::<4, 2>(bt4, input, i, tw, t0, tb, v, &mut s.band);
            }
            for xi in 0..a * a {
                let uk = &u[xi * m * c..(xi + 1) * m * c];
                gemm(uk, m, c, &s.v[xi * c * tb..(xi + 1) * c * tb], tb, tb, &mut s.p[xi * m * tb..(xi + 1) * m * tb], tb);
            }
            let p = &s.p[..a * a * m * tb];
            if f.m == 4 {
                transform_output::<6, 4>(at6, p, m, tb, tw, t0, output, o);
            } else {
                transform_output::<4, 2>(at4, p, m, tb, tw, t0, output, o);
            }
        }
        epilogue(bias, output, o.h * o.w, 0..o.h * o.w, &mut ep);
    }
}

fn grow(v: &mut Vec<f32>, n: usize) {
    if v.len() < n {
        v.resize(n, 0.0);
    }
}

/// V for tiles `t0..t0+tb`: `Bᵀ d B` of each A×A input patch (zero outside
/// the input), laid out `[ξ][channel][tile]`. A band of tiles at a time: the
/// band's A input rows are copied into zero-padded rows, so every tile reads
/// its patch without bounds logic; `bt` transforms the columns, then the rows.
#[allow(clippy::too_many_arguments)]
fn transform_input<const A: usize, const M: usize>(bt: fn([f32; A]) -> [f32; A], input: &[f32], i: Shape, tw: usize, t0: usize, tb: usize, v: &mut [f32], band: &mut Vec<f32>) {
    let pw = M * tw + 2; // one zero on the left, zeros past the right edge
    grow(band, A * pw);
    let (mut t, end) = (t0, t0 + tb);
    while t < end {
        let (ty, tx0) = (t / tw, t % tw);
        let run = (tw - tx0).min(end - t);
        for ci in 0..i.c {
            let plane = &input[ci * i.h * i.w..(ci + 1) * i.h * i.w];
            for r in 0..A {
                let dst = &mut band[r * pw..(r + 1) * pw];
                dst.fill(0.0);
                let y = (M * ty + r) as isize - 1;
                if y >= 0 && (y as usize) < i.h {
                    dst[1..1 + i.w].copy_from_slice(&plane[y as usize * i.w..(y as usize + 1) * i.w]);
                }
            }
            let base = ci * tb + (t - t0);
            let stride = i.c * tb;
            for k in 0..run {
                let x0 = M * (tx0 + k);
                // Bᵀ d: the columns.
                let mut cols = [[0.0f32; A]; A];
                for j in 0..A {
                    let mut col = [0.0f32; A];
                    for r in 0..A {
                        col[r] = band[r * pw + x0 + j];
                    }
                    cols[j] = bt(col);
                }
                // (Bᵀ d) B: the rows.
                for r in 0..A {
                    let mut row = [0.0f32; A];
                    for j in 0..A {
                        row[j] = cols[j][r];
                    }
                    for (q, val) in bt(row).into_iter().enumerate() {
                        v[(r * A + q) * stride + base + k] = val;
                    }
                }
            }
        }
        t += run;
    }
}

/// `Aᵀ P A` for each tile's A² products → its M×M outputs (those inside the map).
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
fn transform_output<const A: usize, const M: usize>(at: fn([f32; A]) -> [f32; M], p: &[f32], m: usize, tb: usize, tw: usize, t0: usize, output: &mut [f32], o: Shape) {
    for co in 0..m {
        let out = &mut output[co * o.h * o.w..(co + 1) * o.h * o.w];
        for t in 0..tb {
            let (ty, tx) = ((t0 + t) / tw, (t0 + t) % tw);
            // Aᵀ P: the columns, then · A: the rows.
            let mut cols = [[0.0f32; M]; A];
            for (q, c) in cols.iter_mut().enumerate() {
                let mut col = [0.0f32; A];
                for (r, x) in col.iter_mut().enumerate() {
                    *x = p[((r * A + q) * m + co) * tb + t];
                }
                *c = at(col);
            }
            for dy in 0..M {
                let y = M * ty + dy;
                if y >= o.h {
                    break;
                }
                let row: [f32; A] = std::array::from_fn(|q| cols[q][dy]);
                let vals = at(row);
                let x0 = M * tx;
                let n = M.min(o.w - x0);
                out[y * o.w + x0..y * o.w + x0 + n].copy_from_slice(&vals[..n]);
            }
        }
    }
}
