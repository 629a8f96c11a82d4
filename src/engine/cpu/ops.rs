//! The network's other operations on the CPU, NCHW like the shaders:
//! inference batchnorm, ReLU, residual add + ReLU, max pool, global average
//! pool, the dense layer and softmax.

use crate::model::{PoolSpec, Shape};
use crate::weights::BatchNormWeights;

pub fn batchnorm(input: &[f32], s: Shape, bn: &BatchNormWeights, eps: f32, output: &mut [f32]) {
    let plane = s.h * s.w;
    for c in 0..s.c {
        let scale = bn.gamma[c] / (bn.var[c] + eps).sqrt();
        let (mean, beta) = (bn.mean[c], bn.beta[c]);
        for (y, x) in output[c * plane..(c + 1) * plane].iter_mut().zip(&input[c * plane..(c + 1) * plane]) {
            *y = (x - mean) * scale + beta;
        }
    }
}

/// `max(x, 0)` as a compare-and-select, which vectorises (f32::max's NaN
/// rules keep it scalar in wasm).
#[inline(always)]
fn relu1(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

pub fn relu(input: &[f32], output: &mut [f32]) {
    output.iter_mut().zip(input).for_each(|(y, &x)| *y = relu1(x));
}

pub fn add_relu(main: &[f32], shortcut: &[f32], output: &mut [f32]) {
    for ((y, a), b) in output.iter_mut().zip(main).zip(shortcut) {
        *y = relu1(a + b);
    }
}

/// Taps outside the input never win (-inf padding, as in PyTorch and ONNX).
/// Separable, one tap at a time over whole rows: a max over each window's
/// columns, then over its rows, in loops without per-element bounds logic.
/// `scratch` (the convs' own, kept across frames) holds the phased input and
/// the row maxima, so a frame allocates nothing here.
pub fn maxpool(input: &[f32], i: Shape, p: &PoolSpec, output: &mut [f32], o: Shape, scratch: &mut super::conv::Scratch) {
    let (k, s, pad) = (p.kernel, p.stride, p.padding);
    // The outputs a tap at offset `d` (from the window's start) reaches inside
    // an axis of `n` inputs: `lo..hi`, reading input `o·s + d − pad`.
    let reach = |d: usize, n: usize, outs: usize| {
        let lo = pad.saturating_sub(d).div_ceil(s);
        let hi = if n + pad > d { ((n + pad - d - 1) / s + 1).min(outs) } else { 0 };
        (lo.min(hi), hi)
    };
    let (phased, rows) = scratch.pool_buffers();
    rows.clear();
    rows.resize(i.h * o.w, f32::MIN);
    // Each input row split into its stride phases: a tap then reads a contiguous run.
    super::conv::split_phases(&input[..i.len()], i.w, s, phased);
    let phase_start: Vec<usize> = (0..s).scan(0, |at, p| {
        let start = *at;
        *at += i.w.saturating_sub(p).div_ceil(s);
        Some(start)
    }).collect();
    for c in 0..i.c {
        let plane = &phased[c * i.h * i.w..(c + 1) * i.h * i.w];
        rows.fill(f32::MIN);
        for kx in 0..k {
            let (lo, hi) = reach(kx, i.w, o.w);
            if lo >= hi {
                continue;
            }
            // Output lo reads input column c0 = lo·s + kx − pad (≥ 0 by
            // `reach`) = j0·s + r: phase r, from index j0, one per output.
            let c0 = lo * s + kx - pad;
            let (j0, r) = (c0 / s, c0 % s);
            for y in 0..i.h {
                let src = &plane[y * i.w + phase_start[r] + j0..];
                let dst = &mut rows[y * o.w + lo..y * o.w + hi];
                for (m, &v) in dst.iter_mut().zip(src) {
                    *m = if v > *m { v } else { *m };
                }
            }
        }
        let dst = &mut output[c * o.h * o.w..(c + 1) * o.h * o.w];
        dst.fill(f32::MIN);
        for ky in 0..k {
            let (lo, hi) = reach(ky, i.h, o.h);
            for oy in lo..hi {
                let y = oy * s + ky - pad;
                for (m, &v) in dst[oy * o.w..(oy + 1) * o.w].iter_mut().zip(&rows[y * o.w..(y + 1) * o.w]) {
                    *m = if v > *m { v } else { *m };
                }
            }
        }
    }
}

/// The mean of each channel's plane.
pub fn global_avg_pool(input: &[f32], s: Shape, output: &mut [f32]) {
    let plane = s.h * s.w;
    for (c, y) in output[..s.c].iter_mut().enumerate() {
        *y = (input[c * plane..(c + 1) * plane].iter().map(|&v| v as f64).sum::<f64>() / plane as f64) as f32;
    }
}

/// `out[o] = bias[o] + Σ_i weight[o, i] · input[i]`, weight `(out, in)` row-major.
pub fn dense(input: &[f32], weight: &[f32], bias: &[f32], output: &mut [f32]) {
    let n = input.len();
    for (o, y) in output.iter_mut().enumerate() {
        let row = &weight[o * n..(o + 1) * n];
        // Four partial sums: independent chains the compiler can vectorise.
        let mut acc = [0.0f32; 4];
        let chunks = row.chunks_exact(4).zip(input.chunks_exact(4));
        for (w, x) in chunks {
            for l in 0..4 {
                acc[l] += w[l] * x[l];
            }
        }
        let tail: f32 = row[n / 4 * 4..].iter().zip(&input[n / 4 * 4..]).map(|(w, x)| w * x).sum();
        *y = bias[o] + acc.iter().sum::<f32>() + tail;
    }
}

/// Max-subtracted for stability.
pub fn softmax(input: &[f32], output: &mut [f32]) {
    let m = input.iter().fold(f32::MIN, |a, &b| a.max(b));
    let mut total = 0.0f32;
    for (y, &x) in output.iter_mut().zip(input) {
        *y = (x - m).exp();
        total += *y;
    }
    output.iter_mut().for_each(|y| *y /= total);
}

/// Σ v², in f64 for long tensors.
pub fn sum_squares(v: &[f32]) -> f64 {
    v.iter().map(|&x| (x as f64) * (x as f64)).sum()
}

// ---------------------------------------------------------------------------
// Training: batch statistics and the backward of each op. Batched tensors
// are `N` examples one after another, each NCHW.
// ---------------------------------------------------------------------------

/// Each channel's mean and biased variance over the batch's `N×H×W` values
/// (two passes in f64, so a large mean does not eat the variance).
pub fn batch_moments(x: &[f32], n: usize, s: Shape) -> (Vec<f64>, Vec<f64>) {
    let (plane, len) = (s.h * s.w, s.len());
    let count = (n * plane) as f64;
    let planes = |c: usize| (0..n).map(move |e| e * len + c * plane..e * len + (c + 1) * plane);
    let mut means = vec![0.0; s.c];
    let mut vars = vec![0.0; s.c];
    for c in 0..s.c {
        let mean = planes(c).map(|r| x[r].iter().map(|&v| v as f64).sum::<f64>()).sum::<f64>() / count;
        let var = planes(c).map(|r| x[r].iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>()).sum::<f64>() / count;
        means[c] = mean;
        vars[c] = var;
    }
    (means, vars)
}

/// `y = x·scale[c] + shift[c]` over a batch: batchnorm with its statistics
/// and affine folded into one scale and shift per channel.
pub fn scale_shift(x: &[f32], s: Shape, scale: &[f32], shift: &[f32], y: &mut [f32]) {
    let plane = s.h * s.w;
    for ((yc, xc), c) in y.chunks_exact_mut(plane).zip(x.chunks_exact(plane)).zip((0..s.c).cycle()) {
        let (a, b) = (scale[c], shift[c]);
        yc.iter_mut().zip(xc).for_each(|(y, &x)| *y = x * a + b);
    }
}

/// Batchnorm's backward over a batch, `x̂ = (x − mean)·inv_std`, `y = γ·x̂ + β`.
/// `batch`: the mean and variance are the batch's own, so they depend on x
/// too: `dx = γ·inv_std·(dy − mean(dy) − x̂·mean(dy·x̂))`; otherwise they
/// are constants and `dx = γ·inv_std·dy`. dγ, dβ and dx are accumulated.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward(
    x: &[f32], n: usize, s: Shape, mean: &[f32], inv_std: &[f32], gamma: &[f32], batch: bool, dy: &[f32],
    dgamma: Option<&mut [f32]>, dbeta: Option<&mut [f32]>, dx: Option<&mut [f32]>,
) {
    let (plane, len) = (s.h * s.w, s.len());
    let count = (n * plane) as f64;
    let range = |e: usize, c: usize| e * len + c * plane..e * len + (c + 1) * plane;
    // Σ dy and Σ dy·x̂ per channel, in f64.
    let mut sums = vec![(0.0f64, 0.0f64); s.c];
    for (c, sum) in sums.iter_mut().enumerate() {
        let (m, is) = (mean[c] as f64, inv_std[c] as f64);
        for e in 0..n {
            let r = range(e, c);
            for (&g, &v) in dy[r.clone()].iter().zip(&x[r]) {
                sum.0 += g as f64;
                sum.1 += g as f64 * (v as f64 - m) * is;
            }
        }
    }
    if let Some(dg) = dgamma {
        dg.iter_mut().zip(&sums).for_each(|(d, s)| *d += s.1 as f32);
    }
    if let Some(db) = dbeta {
        db.iter_mut().zip(&sums).for_each(|(d, s)| *d += s.0 as f32);
    }
    let Some(dx) = dx else { return };
    for (c, &(sdy, sdyx)) in sums.iter().enumerate() {
        let k = gamma[c] * inv_std[c];
        let (m, is) = (mean[c], inv_std[c]);
        let (mdy, mdyx) = if batch { ((sdy / count) as f32, (sdyx / count) as f32) } else { (0.0, 0.0) };
        for e in 0..n {
            let r = range(e, c);
            for ((d, &g), &v) in dx[r.clone()].iter_mut().zip(&dy[r.clone()]).zip(&x[r]) {
                *d += k * (g - mdy - (v - m) * is * mdyx);
            }
        }
    }
}

/// ReLU's backward from its output: the gradient passes where `y > 0`.
/// Accumulates `dy·[y > 0]` into each of `dx`.
pub fn relu_backward(y: &[f32], dy: &[f32], dx: &mut [&mut [f32]]) {
    for d in dx.iter_mut() {
        for ((d, &g), &v) in d.iter_mut().zip(dy).zip(y) {
            if v > 0.0 {
                *d += g;
            }
        }
    }
}

/// Max pool's backward for one example: each output's gradient goes to the
/// first maximum of its window (the tap the forward pass took).
pub fn maxpool_backward(input: &[f32], i: Shape, p: &PoolSpec, dy: &[f32], o: Shape, dx: &mut [f32]) {
    let (k, s, pad) = (p.kernel as isize, p.stride as isize, p.padding as isize);
    for c in 0..i.c {
        let x = &input[c * i.h * i.w..(c + 1) * i.h * i.w];
        let d = &mut dx[c * i.h * i.w..(c + 1) * i.h * i.w];
        for oy in 0..o.h {
            for ox in 0..o.w {
                let (mut best, mut at) = (f32::NEG_INFINITY, None);
                for ky in 0..k {
                    let iy = oy as isize * s + ky - pad;
                    if iy < 0 || iy >= i.h as isize {
                        continue;
                    }
                    for kx in 0..k {
                        let ix = ox as isize * s + kx - pad;
                        if ix >= 0 && ix < i.w as isize {
                            let j = iy as usize * i.w + ix as usize;
                            if x[j] > best || at.is_none() {
                                (best, at) = (x[j], Some(j));
                            }
                        }
                    }
                }
                if let Some(j) = at {
                    d[j] += dy[(c * o.h + oy) * o.w + ox];
                }
            }
        }
    }
}

/// Global average pool's backward for one example: each pixel gets `dy[c] / (H·W)`.
pub fn global_avg_pool_backward(dy: &[f32], s: Shape, dx: &mut [f32]) {
    let plane = s.h * s.w;
    for (c, d) in dx.chunks_exact_mut(plane).enumerate().take(s.c) {
        let g = dy[c] / plane as f32;
        d.iter_mut().for_each(|v| *v += g);
    }
}

/// The dense layer's backward over a batch of `n` rows: `dW += dYᵀ·X`,
/// `db += Σ dY`, `dX += dY·W`; weight `(out, in)` row-major.
pub fn dense_backward(x: &[f32], weight: &[f32], dy: &[f32], n: usize, dw: Option<&mut [f32]>, db: Option<&mut [f32]>, dx: Option<&mut [f32]>) {
    let classes = dy.len() / n.max(1);
    let features = x.len() / n.max(1);
    if let Some(dw) = dw {
        for (o, row) in dw.chunks_exact_mut(features).enumerate() {
            for e in 0..n {
                let g = dy[e * classes + o];
                row.iter_mut().zip(&x[e * features..(e + 1) * features]).for_each(|(w, &v)| *w += g * v);
            }
        }
    }
    if let Some(db) = db {
        for (o, b) in db.iter_mut().enumerate() {
            *b += (0..n).map(|e| dy[e * classes + o]).sum::<f32>();
        }
    }
    if let Some(dx) = dx {
        for e in 0..n {
            let d = &mut dx[e * features..(e + 1) * features];
            for o in 0..classes {
                let g = dy[e * classes + o];
                d.iter_mut().zip(&weight[o * features..(o + 1) * features]).for_each(|(v, &w)| *v += g * w);
            }
        }
    }
}

/// Mean softmax cross-entropy of `n` rows of logits against `labels`, and
/// its gradient `(softmax − onehot)/n` (in f64, then rounded).
pub fn cross_entropy(logits: &[f32], labels: &[usize], dlogits: &mut [f32]) -> f64 {
    let n = labels.len();
    let classes = logits.len() / n.max(1);
    let mut loss = 0.0;
    for (e, &y) in labels.iter().enumerate() {
        let row = &logits[e * classes..(e + 1) * classes];
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
        let total: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        loss += total.ln() + m - row[y] as f64;
        for (o, d) in dlogits[e * classes..(e + 1) * classes].iter_mut().enumerate() {
            let p = (row[o] as f64 - m).exp() / total;
            *d = ((p - if o == y { 1.0 } else { 0.0 }) / n as f64) as f32;
        }
    }
    loss / n as f64
}
