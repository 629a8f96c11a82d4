//! Batchnorm folding, for fast mode: a conv followed by an inference
//! batchnorm is one conv with scaled weights and a bias,
//!
//! `y = (conv(x) + b − mean) · γ/√(var+ε) + β  =  conv'(x) + b'`,
//!
//! with `conv'` = conv scaled by `γ/√(var+ε)` per output channel. Pure CPU
//! math on the weights, done once at load.

use super::{BatchNormWeights, ConvWeights, Weights};
use crate::model::ConvBn;

/// The conv of `cb` with its batchnorm folded in: (OIHW weights, bias).
pub fn fold_batchnorm(conv: &ConvWeights, bn: &BatchNormWeights, eps: f32) -> (Vec<f32>, Vec<f32>) {
    let o = bn.gamma.len();
    let per = conv.weight.len() / o;
    let mut weight = conv.weight.clone();
    let mut bias = vec![0.0; o];
    for co in 0..o {
        let scale = bn.gamma[co] / (bn.var[co] + eps).sqrt();
        weight[co * per..(co + 1) * per].iter_mut().for_each(|v| *v *= scale);
        let b0 = conv.bias.as_ref().map_or(0.0, |b| b[co]);
        bias[co] = (b0 - bn.mean[co]) * scale + bn.beta[co];
    }
    (weight, bias)
}

/// Whether [`fold_batchnorm`] stays finite, without folding: a channel's
/// weights are read only where its scale exceeds 1 (finite weights times a
/// scale of at most 1 are finite), so a load with ordinary statistics pays
/// almost nothing.
pub fn folds_finite(conv: &ConvWeights, bn: &BatchNormWeights, eps: f32) -> bool {
    let o = bn.gamma.len();
    let per = conv.weight.len() / o;
    (0..o).all(|co| {
        let scale = bn.gamma[co] / (bn.var[co] + eps).sqrt();
        let b0 = conv.bias.as_ref().map_or(0.0, |b| b[co]);
        let bias = (b0 - bn.mean[co]) * scale + bn.beta[co];
        scale.is_finite() && bias.is_finite() && (scale.abs() <= 1.0 || conv.weight[co * per..(co + 1) * per].iter().all(|w| (w * scale).is_finite()))
    })
}

impl Weights {
    /// Conv + batchnorm `cb` as one conv: (OIHW weights, bias).
    pub fn folded(&self, cb: &ConvBn) -> (Vec<f32>, Vec<f32>) {
        fold_batchnorm(&self.convs[&cb.conv.name], &self.bns[&cb.bn.name], cb.bn.eps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain 3×3, stride-1, pad-1 conv of `x` (ci×h×w), OIHW weights.
    fn conv3(x: &[f32], w: &[f32], bias: Option<&[f32]>, ci: usize, co: usize, h: usize, wd: usize) -> Vec<f32> {
        let mut out = vec![0.0; co * h * wd];
        for o in 0..co {
            for y in 0..h {
                for xx in 0..wd {
                    let mut s = bias.map_or(0.0, |b| b[o]) as f64;
                    for i in 0..ci {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) = ((y + ky) as isize - 1, (xx + kx) as isize - 1);
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    s += (x[(i * h + iy as usize) * wd + ix as usize] * w[((o * ci + i) * 3 + ky) * 3 + kx]) as f64;
                                }
                            }
                        }
                    }
                    out[(o * h + y) * wd + xx] = s as f32;
                }
            }
        }
        out
    }

    #[test]
    fn folded_conv_equals_conv_then_batchnorm() {
        let (ci, co, h, w, eps) = (3, 5, 4, 6, 1e-3);
        let mut seed = 7u32;
        let mut rnd = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 8) as f32 / (1 << 24) as f32 * 2.0 - 1.0
                })
                .collect()
        };
        let x = rnd(ci * h * w);
        let conv = ConvWeights { weight: rnd(co * ci * 9), bias: Some(rnd(co)) };
        let var: Vec<f32> = rnd(co).iter().map(|v| v.abs() + 0.1).collect();
        let bn = BatchNormWeights { gamma: rnd(co), beta: rnd(co), mean: rnd(co), var };
        let y = conv3(&x, &conv.weight, conv.bias.as_deref(), ci, co, h, w);
        let want: Vec<f32> =
            y.iter().enumerate().map(|(i, v)| { let c = i / (h * w); (v - bn.mean[c]) / (bn.var[c] + eps).sqrt() * bn.gamma[c] + bn.beta[c] }).collect();
        let (fw, fb) = fold_batchnorm(&conv, &bn, eps);
        let got = conv3(&x, &fw, Some(&fb), ci, co, h, w);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-5, "{g} vs {w}");
        }
    }
}
