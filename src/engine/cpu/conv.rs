//! Convolution on the CPU as a GEMM: `out[M×N] = W[M×K] · X[K×N]` with
//! M = output channels, K = in_channels·kh·kw, N = output pixels, then the
//! fused epilogue (bias, F(x) copy, residual, ReLU) while the block is in cache.
//!
//! W is the OIHW kernel as it is (rows: output channels, columns: (ci, ky, kx)).
//! X is the NCHW input itself for a 1×1, stride-1, unpadded conv (most of
//! ResNet-50's work); otherwise im2col fills it a block of pixel columns at a
//! time, so the whole K×N matrix is never built for big layers. The GEMM is
//! `matrixmultiply::sgemm` (packing, register blocking, AVX2/FMA natively and
//! simd128 in the browser, with strides, so a block's result lands straight
//! in the NCHW output).

use super::winograd::{self, Winograd};
use crate::model::{ConvSpec, Shape};

/// im2col blocks hold at most this many values (16 MB): ResNet-50's largest
/// layers at 224 fit in one block, bigger inputs are cut into column blocks.
pub(super) const COL_BUDGET: usize = 4 << 20;

/// A conv's parameters as the CPU runs it.
pub struct CpuConv {
    pub spec: ConvSpec,
    /// `M×K` row-major: the OIHW kernel (folded with its batchnorm in fast mode).
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    /// 3×3, stride-1, pad-1 convs: the kernels transformed for Winograd.
    winograd: Option<Winograd>,
}

/// Scratch kept across convs and frames: the im2col block and Winograd's tiles.
#[derive(Default)]
pub struct Scratch {
    col: Vec<f32>,
    /// The input with its rows split into stride phases.
    phases: Vec<f32>,
    /// The max pool's row maxima (its own: sharing `col` would shrink and
    /// zero-fill the im2col block each frame).
    pool_rows: Vec<f32>,
    winograd: winograd::Scratch,
}

impl Scratch {
    /// Max pooling's buffers: the phased input and the row maxima.
    pub(super) fn pool_buffers(&mut self) -> (&mut Vec<f32>, &mut Vec<f32>) {
        (&mut self.phases, &mut self.pool_rows)
    }

    /// What im2col reads and fills for a conv with `k` rows and `n` output
    /// pixels: the input (with a stride and `phase`, its rows split into
    /// phases first, so im2col only copies runs), the column block and its
    /// width in columns.
    fn im2col_setup<'a>(&'a mut self, input: &'a [f32], i: Shape, stride: usize, phase: bool, k: usize, n: usize) -> (&'a [f32], &'a mut [f32], usize) {
        let input = if stride > 1 && phase {
            split_phases(&input[..i.len()], i.w, stride, &mut self.phases);
            &self.phases[..i.len()]
        } else {
            input
        };
        let block = (COL_BUDGET / k.max(1)).clamp(64, n.max(64)).min(n);
        // Only ever grown: a resize down and up again would zero-fill it each time.
        if self.col.len() < k * block {
            self.col.resize(k * block, 0.0);
        }
        (input, &mut self.col, block)
    }

    /// Room for the phased copy of a strided op's input of up to `n`
    /// values (the max pool's, the largest), reserved fallibly up front.
    pub(super) fn reserve_pool(&mut self, n: usize) -> Result<(), std::collections::TryReserveError> {
        self.phases.try_reserve(n.saturating_sub(self.phases.len()))
    }
}

/// What the epilogue does after the GEMM.
pub struct Epilogue<'a> {
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
    /// Receives F(x): conv + bias, before the residual and the ReLU.
    pub main_out: Option<&'a mut [f32]>,
}

impl CpuConv {
    pub fn new(spec: ConvSpec, weight: Vec<f32>, bias: Option<Vec<f32>>) -> CpuConv {
        let wino = spec.kernel == (3, 3) && spec.stride == 1 && spec.padding == (1, 1);
        let winograd = if wino { Winograd::for_conv(&weight, spec.out_channels, spec.in_channels) } else { None };
        // Winograd convs keep only their transformed kernels.
        let weight = if winograd.is_some() { Vec::new() } else { weight };
        CpuConv { spec, weight, bias, winograd }
    }

    fn pointwise(&self) -> bool {
        let c = &self.spec;
        c.kernel == (1, 1) && c.stride == 1 && c.padding == (0, 0)
    }

    /// `output = epilogue(conv(input))`; `scratch` is kept by the caller.
    pub fn run(&self, input: &[f32], i: Shape, output: &mut [f32], o: Shape, mut ep: Epilogue, scratch: &mut Scratch) {
        let (m, n) = (o.c, o.h * o.w);
        let bias = self.bias.as_deref();
        if let Some(w) = &self.winograd {
            w.run(input, i, output, o, bias, ep, &mut scratch.winograd);
            return;
        }
        let k = self.weight.len() / m;
        if self.pointwise() {
            // X is the input: K×N row-major already.
            gemm(&self.weight, m, k, input, n, n, &mut output[..m * n], n);
            epilogue(bias, output, n, 0..n, &mut ep);
            return;
        }
        let (input, col, block) = scratch.im2col_setup(input, i, self.spec.stride, true, k, n);
        for n0 in (0..n).step_by(block) {
            let nb = block.min(n - n0);
            im2col(&self.spec, input, i, o, n0, nb, &mut col[..k * nb]);
            gemm(&self.weight, m, k, &col[..k * nb], nb, nb, &mut output[n0..], n);
            epilogue(bias, output, n, n0..n0 + nb, &mut ep);
        }
    }
}

/// Bias, F(x) copy, residual and ReLU over columns `cols` of the M×N output,
/// in one pass per row (one loop per combination, so each vectorises).
pub(super) fn epilogue(bias: Option<&[f32]>, out: &mut [f32], n: usize, cols: std::ops::Range<usize>, ep: &mut Epilogue) {
    // ReLU as a floor: 0, or −∞ (no ReLU). A compare-and-select, which
    // vectorises (f32::max's NaN rules keep it scalar in wasm).
    let floor = if ep.relu { 0.0 } else { f32::NEG_INFINITY };
    let relu = |v: f32| if v < floor { floor } else { v };
    for co in 0..out.len() / n {
        let row = co * n + cols.start..co * n + cols.end;
        let b = bias.map_or(0.0, |b| b[co]);
        let y = &mut out[row.clone()];
        match (ep.main_out.as_deref_mut(), ep.residual) {
            (Some(main), Some(r)) => {
                for ((v, m), r) in y.iter_mut().zip(&mut main[row.clone()]).zip(&r[row]) {
                    *m = *v + b;
                    *v = relu(*m + r);
                }
            }
            (None, Some(r)) => y.iter_mut().zip(&r[row]).for_each(|(v, r)| *v = relu(*v + b + r)),
            (Some(main), None) => {
                for (v, m) in y.iter_mut().zip(&mut main[row]) {
                    *m = *v + b;
                    *v = relu(*m);
                }
            }
            (None, None) => y.iter_mut().for_each(|v| *v = relu(*v + b)),
        }
    }
}

/// `c[M×N] = a[M×K] · b[K×N]`; b's rows are `ldb` apart, c's `ldc`.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm(a: &[f32], m: usize, k: usize, b: &[f32], n: usize, ldb: usize, c: &mut [f32], ldc: usize) {
    assert!(a.len() >= m * k && (k == 0 || b.len() >= (k - 1) * ldb + n) && (m == 0 || c.len() >= (m - 1) * ldc + n), "GEMM operands too small");
    // SAFETY: the assertion above keeps every access sgemm makes in bounds:
    // a is M×K with row stride K, b K×N with row stride ldb, c M×N with row stride ldc.
    unsafe {
        matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), k as isize, 1, b.as_ptr(), ldb as isize, 1, 0.0, c.as_mut_ptr(), ldc as isize, 1);
    }
}

/// Columns `n0..n0+nb` of the im2col matrix: row `(ci, ky, kx)` holds the
/// input value each output pixel's window sees at that tap (0 in the padding).
fn im2col(c: &ConvSpec, input: &[f32], i: Shape, o: Shape, n0: usize, nb: usize, col: &mut [f32]) {
    let (kh, kw) = c.kernel;
    let (ph, pw) = (c.padding.0 as isize, c.padding.1 as isize);
    let s = c.stride;
    // With a stride, `input` holds each row split into its s phases (see
    // `split_phases`): every tap then reads a contiguous run of one phase.
    let phases = Phases::new(i.w, s);
    let mut row = 0;
    for ci in 0..i.c {
        let plane = &input[ci * i.h * i.w..(ci + 1) * i.h * i.w];
        for ky in 0..kh {
            for kx in 0..kw {
                let dst = &mut col[row * nb..(row + 1) * nb];
                row += 1;
                let off = kx as isize - pw;
                let (p, base) = (off.rem_euclid(s as isize) as usize, off.div_euclid(s as isize));
                // Walk the block one output row segment at a time.
                let (mut j, mut d) = (n0, 0);
                while d < nb {
                    let (oy, ox0) = (j / o.w, j % o.w);
                    let run = (o.w - ox0).min(nb - d);
                    let seg = &mut dst[d..d + run];
                    let iy = (oy * s + ky) as isize - ph;
                    if iy < 0 || iy >= i.h as isize {
                        seg.fill(0.0);
                    } else {
                        let src = &plane[iy as usize * i.w..(iy as usize + 1) * i.w];
                        gather_row(phases.row(src, p), seg, ox0 as isize + base);
                    }
                    j += run;
                    d += run;
                }
            }
        }
    }
}

/// A row of `w` values split into `s` phases: phase p holds columns
/// p, p+s, p+2s, …, one after another.
struct Phases {
    offsets: Vec<usize>,
    w: usize,
}

impl Phases {
    fn new(w: usize, s: usize) -> Phases {
        let mut offsets = vec![0];
        for p in 0..s {
            offsets.push(offsets[p] + w.saturating_sub(p).div_ceil(s));
        }
        Phases { offsets, w }
    }
    fn row<'a>(&self, row: &'a [f32], p: usize) -> &'a [f32] {
        &row[self.offsets[p].min(self.w)..self.offsets[p + 1].min(self.w)]
    }
}

/// Every `w`-long row of `input` rearranged into its `s` phases, into `out`.
pub(super) fn split_phases(input: &[f32], w: usize, s: usize, out: &mut Vec<f32>) {
    if out.len() < input.len() {
        out.resize(input.len(), 0.0);
    }
    let ph = Phases::new(w, s);
    for (src, dst) in input.chunks_exact(w).zip(out.chunks_exact_mut(w)) {
        for p in 0..s {
            for (d, &x) in dst[ph.offsets[p]..ph.offsets[p + 1]].iter_mut().zip(src[p..].iter().step_by(s)) {
                *d = x;
            }
        }
    }
}

/// `seg[t] = src[start + t]`, 0 outside `src`: zeros, a copy, zeros.
fn gather_row(src: &[f32], seg: &mut [f32], start: isize) {
    let w = src.len() as isize;
    let lo = (-start).clamp(0, seg.len() as isize) as usize;
    let hi = (w - start).clamp(lo as isize, seg.len() as isize) as usize;
    seg[..lo].fill(0.0);
    if hi > lo {
        let a = (start + lo as isize) as usize;
        seg[lo..hi].copy_from_slice(&src[a..a + hi - lo]);
    }
    seg[hi..].fill(0.0);
}

// ---------------------------------------------------------------------------
// Backward (training): the same GEMM machinery, operands read transposed.
// ---------------------------------------------------------------------------

/// `c = beta·c + a·b` (M×K times K×N) with a (row, column) stride for each
/// operand, so the backward GEMMs read transposes where they lie.
#[allow(clippy::too_many_arguments)]
fn gemm_strided(m: usize, k: usize, n: usize, a: &[f32], sa: (usize, usize), b: &[f32], sb: (usize, usize), beta: f32, c: &mut [f32], sc: (usize, usize)) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, s: (usize, usize)| (rows - 1) * s.0 + (cols.max(1) - 1) * s.1;
    assert!(k == 0 || (a.len() > last(m, k, sa) && b.len() > last(k, n, sb)), "GEMM operands too small");
    assert!(c.len() > last(m, n, sc), "GEMM result too small");
    // SAFETY: the assertions keep every index sgemm forms, (i·rs + j·cs) for
    // i, j inside each operand's rows and columns, within its slice.
    unsafe {
        matrixmultiply::sgemm(
            m, k, n, 1.0,
            a.as_ptr(), sa.0 as isize, sa.1 as isize,
            b.as_ptr(), sb.0 as isize, sb.1 as isize,
            beta, c.as_mut_ptr(), sc.0 as isize, sc.1 as isize,
        );
    }
}

/// Where a conv's gradients go, each accumulated into (`+=`), each optional.
pub struct ConvGrads<'a> {
    /// `M×K`, the OIHW kernel's layout.
    pub weight: Option<&'a mut [f32]>,
    pub bias: Option<&'a mut [f32]>,
    /// The input's gradient, `i.c×i.h×i.w`.
    pub input: Option<&'a mut [f32]>,
}

/// One example's conv gradients (the conv alone, no epilogue): with
/// `dY` (M×N) the output's gradient and `col` (K×N) the im2col of the input,
/// `dW += dY·colᵀ`, `db += Σ_pixels dY` and `dx += col2im(Wᵀ·dY)`: the
/// weight gradient is an implicit GEMM over the pixels, the input gradient a
/// transposed convolution. `weight` is the plain OIHW kernel.
#[allow(clippy::too_many_arguments)]
pub fn conv_backward(spec: &ConvSpec, weight: &[f32], input: &[f32], i: Shape, dy: &[f32], o: Shape, g: ConvGrads, scratch: &mut Scratch) {
    let (m, n) = (o.c, o.h * o.w);
    let k = weight.len() / m.max(1);
    if let Some(db) = g.bias {
        for (co, b) in db.iter_mut().enumerate() {
            *b += dy[co * n..(co + 1) * n].iter().map(|&v| v as f64).sum::<f64>() as f32;
        }
    }
    let (mut dw, mut dx) = (g.weight, g.input);
    if spec.kernel == (1, 1) && spec.stride == 1 && spec.padding == (0, 0) {
        // The input is the K×N matrix itself.
        if let Some(dw) = dw {
            gemm_strided(m, n, k, dy, (n, 1), input, (1, n), 1.0, dw, (k, 1));
        }
        if let Some(dx) = dx {
            gemm_strided(k, m, n, weight, (1, k), dy, (n, 1), 1.0, dx, (n, 1));
        }
        return;
    }
    // The phased input only where im2col reads it (the weight gradient).
    let (phased, col, block) = scratch.im2col_setup(input, i, spec.stride, dw.is_some(), k, n);
    for n0 in (0..n).step_by(block) {
        let nb = block.min(n - n0);
        let col = &mut col[..k * nb];
        if let Some(dw) = dw.as_deref_mut() {
            im2col(spec, phased, i, o, n0, nb, col);
            gemm_strided(m, nb, k, &dy[n0..], (n, 1), col, (1, nb), 1.0, dw, (k, 1));
        }
        if let Some(dx) = dx.as_deref_mut() {
            gemm_strided(k, m, nb, weight, (1, k), &dy[n0..], (n, 1), 0.0, col, (nb, 1));
            col2im(spec, col, i, o, n0, nb, dx);
        }
    }
}

/// im2col's transpose: each column value added back to the input pixel it
/// was read from (nothing for the padding).
fn col2im(c: &ConvSpec, col: &[f32], i: Shape, o: Shape, n0: usize, nb: usize, dx: &mut [f32]) {
    let (kh, kw) = c.kernel;
    let (ph, pw, s) = (c.padding.0 as isize, c.padding.1 as isize, c.stride as isize);
    let mut row = 0;
    for ci in 0..i.c {
        let plane = &mut dx[ci * i.h * i.w..(ci + 1) * i.h * i.w];
        for ky in 0..kh {
            for kx in 0..kw {
                let src = &col[row * nb..(row + 1) * nb];
                row += 1;
                let (mut j, mut d) = (n0, 0);
                while d < nb {
                    let (oy, ox0) = (j / o.w, j % o.w);
                    let run = (o.w - ox0).min(nb - d);
                    let iy = oy as isize * s + ky as isize - ph;
                    if iy >= 0 && iy < i.h as isize {
                        let dst = &mut plane[iy as usize * i.w..(iy as usize + 1) * i.w];
                        for (t, &v) in src[d..d + run].iter().enumerate() {
                            let ix = (ox0 + t) as isize * s + kx as isize - pw;
                            if ix >= 0 && ix < i.w as isize {
                                dst[ix as usize] += v;
                            }
                        }
                    }
                    j += run;
                    d += run;
                }
            }
        }
    }
}
