//! Optimizers with PyTorch's conventions, so a step here is a step there:
//!
//! * SGD: `g += wd·w`; `buf = momentum·buf + g` (the first step `buf = g`);
//!   `w −= lr·buf`;
//! * AdamW: `w −= lr·wd·w` (decoupled), then Adam with bias correction:
//!   `m = β₁m + (1−β₁)g`, `v = β₂v + (1−β₂)g²`,
//!   `w −= lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)`.
//!
//! The learning rate is constant or follows a cosine from `lr` to 0 over
//! the run (PyTorch's `CosineAnnealingLR` stepped once per step).

use std::collections::HashMap;

use super::Grads;
use crate::weights::Weights;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    Sgd,
    AdamW,
}

crate::named_enum!(OptimizerKind { Sgd = "sgd", AdamW = "adamw" });

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    Constant,
    Cosine,
}

crate::named_enum!(Schedule { Constant = "constant", Cosine = "cosine" });

#[derive(Debug, Clone, Copy)]
pub struct OptimConfig {
    pub kind: OptimizerKind,
    pub lr: f32,
    /// SGD's momentum (0: plain SGD).
    pub momentum: f32,
    pub weight_decay: f32,
    pub schedule: Schedule,
    /// Steps in the whole run (for the cosine).
    pub total_steps: usize,
    pub betas: (f32, f32),
    pub eps: f32,
}

impl OptimConfig {
    /// PyTorch's defaults for `kind`: SGD momentum 0.9 and no weight decay,
    /// AdamW betas (0.9, 0.999), ε 1e-8 and weight decay 0.01.
    pub fn new(kind: OptimizerKind, lr: f32) -> OptimConfig {
        let weight_decay = if kind == OptimizerKind::AdamW { 0.01 } else { 0.0 };
        OptimConfig { kind, lr, momentum: 0.9, weight_decay, schedule: Schedule::Constant, total_steps: 1, betas: (0.9, 0.999), eps: 1e-8 }
    }

    /// The learning rate of step `t` (0-based).
    pub fn lr_at(&self, t: usize) -> f32 {
        match self.schedule {
            Schedule::Constant => self.lr,
            Schedule::Cosine => {
                let x = (t.min(self.total_steps) as f64 / self.total_steps.max(1) as f64) * std::f64::consts::PI;
                (self.lr as f64 * 0.5 * (1.0 + x.cos())) as f32
            }
        }
    }
}

/// An optimizer and its state (momentum buffers, Adam's moments), per tensor.
pub struct Optimizer {
    pub config: OptimConfig,
    /// Steps taken.
    pub steps: usize,
    state: HashMap<String, (Vec<f32>, Vec<f32>)>,
}

impl Optimizer {
    pub fn new(config: OptimConfig) -> Optimizer {
        Optimizer { config, steps: 0, state: HashMap::new() }
    }

    /// One step on every tensor `grads` has.
    pub fn step(&mut self, weights: &mut Weights, grads: &Grads) {
        let lr = self.config.lr_at(self.steps);
        self.steps += 1;
        let t = self.steps as i32;
        let c = self.config;
        let state = &mut self.state;
        let mut update = |key: String, w: &mut [f32], g: &[f32]| {
            let (a, b) = state.entry(key).or_insert_with(|| (Vec::new(), Vec::new()));
            match c.kind {
                OptimizerKind::Sgd => {
                    let first = a.is_empty();
                    a.resize(w.len(), 0.0);
                    for ((w, &g), buf) in w.iter_mut().zip(g).zip(a.iter_mut()) {
                        let g = g + c.weight_decay * *w;
                        let d = if c.momentum == 0.0 {
                            g
                        } else {
                            *buf = if first { g } else { c.momentum * *buf + g };
                            *buf
                        };
                        *w -= lr * d;
                    }
                }
                OptimizerKind::AdamW => {
                    a.resize(w.len(), 0.0);
                    b.resize(w.len(), 0.0);
                    let (b1, b2) = c.betas;
                    let bc1 = 1.0 - b1.powi(t);
                    let bc2 = (1.0 - b2.powi(t)).sqrt();
                    for (((w, &g), m), v) in w.iter_mut().zip(g).zip(a.iter_mut()).zip(b.iter_mut()) {
                        *w *= 1.0 - lr * c.weight_decay;
                        *m = b1 * *m + (1.0 - b1) * g;
                        *v = b2 * *v + (1.0 - b2) * g * g;
                        *w -= lr / bc1 * *m / (v.sqrt() / bc2 + c.eps);
                    }
                }
            }
        };
        // In a fixed order (names sorted), so a run is the same run every time.
        let mut convs: Vec<&String> = grads.convs.keys().collect();
        convs.sort();
        for name in convs {
            let (gw, gb) = &grads.convs[name];
            let p = weights.convs.get_mut(name).expect("a gradient of a known conv");
            update(format!("{name}/weight"), &mut p.weight, gw);
            if let (Some(b), Some(gb)) = (p.bias.as_mut(), gb) {
                update(format!("{name}/bias"), b, gb);
            }
        }
        let mut bns: Vec<&String> = grads.bns.keys().collect();
        bns.sort();
        for name in bns {
            let (gg, gb) = &grads.bns[name];
            let p = weights.bns.get_mut(name).expect("a gradient of a known batchnorm");
            update(format!("{name}/gamma"), &mut p.gamma, gg);
            update(format!("{name}/beta"), &mut p.beta, gb);
        }
        if !grads.dense.0.is_empty() {
            update("dense/weight".into(), &mut weights.dense.weight, &grads.dense.0);
            update("dense/bias".into(), &mut weights.dense.bias, &grads.dense.1);
        }
    }
}
