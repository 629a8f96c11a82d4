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
