//! The training loop: batches drawn from a seeded shuffle, a forward and
//! backward pass and an optimizer step each, the loss and accuracy per
//! epoch, and accuracy on a held-out share of the examples.
//!
//! What does not train is computed once: the frozen ops' outputs for every
//! example are kept ([`TrainPlan::frozen_outputs`]), so training the head
//! costs a dense layer per step, not a backbone.

use super::{Optimizer, OptimConfig, TrainConfig, TrainPlan};
use crate::demo::Rng;
use crate::weights::{DenseWeights, Weights};
use crate::{bail, Result};

/// Examples: `N` raw `3×H×W` inputs one after another, and their classes.
pub struct Dataset {
    pub x: Vec<f32>,
    pub labels: Vec<usize>,
    pub height: usize,
    pub width: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    fn example_len(&self) -> usize {
        3 * self.height * self.width
    }
}

#[derive(Debug, Clone, Copy)]
pub struct FitConfig {
    pub epochs: usize,
    /// Examples per step (the last batch of an epoch may be smaller).
    pub batch: usize,
    /// The share of the examples held out for validation (0 to < 1).
    pub val_fraction: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    /// The mean loss of the epoch's steps, weighted by their batch sizes.
    pub loss: f64,
    /// The share of training examples the forward passes of the epoch got right.
    pub train_accuracy: f64,
    /// After the epoch, on the held-out examples, as in inference.
    pub val_accuracy: Option<f64>,
}

/// A seeded permutation of `0..n` (Fisher–Yates).
fn shuffle(rng: &mut Rng, v: &mut [usize]) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// Replaces the dense layer with a new one of `labels.len()` classes,
/// seeded as PyTorch initialises `nn.Linear` (uniform in ±1/√in), and names
/// the classes. Everything else is kept.
pub fn new_head(weights: &mut Weights, labels: Vec<String>, seed: u64) {
    let classes = labels.len();
    let features = weights.model.head.in_features;
    let mut rng = Rng::new(seed ^ 0x4EAD);
    let bound = 1.0 / (features as f32).sqrt();
    weights.dense = DenseWeights { weight: rng.scaled(classes * features, bound, 0.0), bias: rng.scaled(classes, bound, 0.0) };
    weights.model.head.classes = classes;
    if weights.model.scheme == crate::model::Scheme::Keras {
        // Keras names the classifier after its class count.
        weights.model.head.name = format!("fc{classes}");
    }
    weights.labels = Some(labels);
}

/// The index of each row's largest logit.
fn argmax_rows(logits: &[f32], classes: usize) -> impl Iterator<Item = usize> + '_ {
    logits.chunks_exact(classes).map(|r| r.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0)
}

/// Trains `weights` on `data`; `on_step(step, steps, loss)` after each step.
pub fn fit(
    weights: &mut Weights, data: &Dataset, config: TrainConfig, optim: OptimConfig, fit: FitConfig, mut on_step: impl FnMut(usize, usize, f64),
) -> Result<Vec<EpochReport>> {
    let n = data.len();
    if data.x.len() != n * data.example_len() {
        bail!(BadInput, "the inputs hold {} values, not {n} examples of 3×{}×{}", data.x.len(), data.height, data.width);
    }
    if !(0.0..1.0).contains(&fit.val_fraction) {
        bail!(BadInput, "the validation fraction must be at least 0 and below 1, not {}", fit.val_fraction);
    }
    if fit.batch == 0 || fit.epochs == 0 {
        bail!(BadInput, "the batch size and the number of epochs must be at least 1");
    }
    let classes = weights.model.classes();
    if let Some(&y) = data.labels.iter().find(|&&y| y >= classes) {
        bail!(BadInput, "label {y} is out of range: the network has {classes} classes (0 to {})", classes - 1);
    }
    let mut rng = Rng::new(fit.seed);
    let mut order: Vec<usize> = (0..n).collect();
    shuffle(&mut rng, &mut order);
    let n_val = (fit.val_fraction * n as f64).floor() as usize;
    let (val, train) = order.split_at(n_val);
    let (val, mut train) = (val.to_vec(), train.to_vec());
    if train.is_empty() {
        bail!(BadInput, "no examples left to train on ({n} examples, {n_val} held out for validation)");
    }
    let mut tp = TrainPlan::new(weights, data.height, data.width, config)?;
    let batch = fit.batch.min(train.len());
    let first = tp.first_trainable();
    let input = tp.plan.input;
    let ex = data.example_len();

    // The frozen part's outputs, once per example.
    let boundary: Vec<(usize, usize)> = tp.boundary.iter().map(|&t| (t, tp.shape(t).len())).collect();
    let mut cache: Vec<Vec<f32>> = boundary.iter().map(|_| Vec::new()).collect();
    if first > 0 {
        for chunk in (0..n).collect::<Vec<_>>().chunks(batch) {
            let x: Vec<f32> = chunk.iter().flat_map(|&i| data.x[i * ex..(i + 1) * ex].iter().copied()).collect();
            tp.set(input, chunk.len(), &x);
            for (c, out) in cache.iter_mut().zip(tp.frozen_outputs(weights)?) {
                c.extend_from_slice(&out);
            }
        }
    }
    // Sets a batch's inputs: the raw examples, or their frozen outputs.
    let set_batch = |tp: &mut TrainPlan, idx: &[usize]| {
        if first == 0 {
            let x: Vec<f32> = idx.iter().flat_map(|&i| data.x[i * ex..(i + 1) * ex].iter().copied()).collect();
            tp.set(input, idx.len(), &x);
        } else {
            for ((t, len), c) in boundary.iter().zip(&cache) {
                let x: Vec<f32> = idx.iter().flat_map(|&i| c[i * len..(i + 1) * len].iter().copied()).collect();
                tp.set(*t, idx.len(), &x);
            }
        }
    };

    let steps_per_epoch = train.len().div_ceil(batch);
    let total = steps_per_epoch * fit.epochs;
    let mut optimizer = Optimizer::new(OptimConfig { total_steps: total, ..optim });
    let momentum = super::bn_momentum(weights.model.scheme);
    let mut reports = Vec::new();
    for epoch in 1..=fit.epochs {
        shuffle(&mut rng, &mut train);
        let (mut loss_sum, mut correct) = (0.0, 0);
        for idx in train.chunks(batch) {
            set_batch(&mut tp, idx);
            tp.forward(weights, first, true, Some(momentum))?;
            let labels: Vec<usize> = idx.iter().map(|&i| data.labels[i]).collect();
            correct += argmax_rows(tp.tensor(tp.plan.logits), classes).zip(&labels).filter(|(p, y)| p == *y).count();
            let (loss, grads) = tp.backward(weights, &labels)?;
            optimizer.step(weights, &grads);
            tp.refresh(weights, false);
            loss_sum += loss * idx.len() as f64;
            on_step(optimizer.steps, total, loss);
        }
        let val_accuracy = if val.is_empty() {
            None
        } else {
            let mut right = 0;
            for idx in val.chunks(batch) {
                set_batch(&mut tp, idx);
                tp.forward(weights, first, false, None)?;
                right += argmax_rows(tp.tensor(tp.plan.logits), classes).zip(idx).filter(|(p, &i)| *p == data.labels[i]).count();
            }
            Some(right as f64 / val.len() as f64)
        };
        reports.push(EpochReport { epoch, loss: loss_sum / train.len() as f64, train_accuracy: correct as f64 / train.len() as f64, val_accuracy });
    }
    Ok(reports)
}
