//! The training loop: examples kept as the trainable part needs them,
//! batches drawn from a seeded shuffle, a forward and backward pass and an
//! optimizer step each, the loss and accuracy per epoch, and accuracy on a
//! held-out share of the examples.
//!
//! What does not train is computed once: an example is kept as the frozen
//! ops' outputs that the trainable ones read ([`TrainPlan::frozen_outputs`]),
//! so training the head costs a dense layer per step, not a backbone, and
//! keeps 512 or 2048 values an example instead of an image.
//!
//! [`Trainer`] runs one step a call (the browser yields between them).

use std::rc::Rc;

use super::augment::Augment;
use super::gpu::GpuTrainPlan;
use super::{Grads, Optimizer, OptimConfig, TrainConfig, TrainPlan};
use crate::gpu::Gpu;
use crate::plan::{Plan, TensorId};
use crate::demo::Rng;
use crate::preprocess::Preprocess;
use crate::plan::BlockRole;
use crate::weights::{DenseWeights, Weights};
use crate::{bail, Error, ErrorKind, Result};

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

/// What one step did.
#[derive(Debug, Clone, PartialEq)]
pub struct StepReport {
    /// 1-based, over the whole run.
    pub step: usize,
    pub steps: usize,
    pub loss: f64,
    /// Set on an epoch's last step.
    pub epoch: Option<EpochReport>,
}

/// ‖∂L/∂W‖ of a block's tensors and ‖∂L/∂x‖ at its input, in the last step.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockGradNorm {
    pub name: String,
    /// `None` for a block that does not train.
    pub weights: Option<f64>,
    /// `None` where the gradient does not reach the block's input (the first trainable block).
    pub input: Option<f64>,
    /// A residual block that trains: ‖F(x)‖ and ‖x‖ (its shortcut) over the step's batch.
    pub residual: Option<(f64, f64)>,
}

/// A seeded permutation (Fisher–Yates).
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
    // A described network's description follows, so the saved file loads back.
    if let Some(n) = &mut weights.network {
        n.classes = classes;
    }
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

/// A run in progress: its optimizer, the split and the epoch's tallies.
struct Run {
    optimizer: Optimizer,
    rng: Rng,
    val: Vec<usize>,
    train: Vec<usize>,
    batch: usize,
    steps: usize,
    /// Position in the epoch's (shuffled) training examples.
    at: usize,
    epoch: usize,
    loss_sum: f64,
    correct: usize,
}

/// An example kept whole, to be augmented afresh each epoch.
enum Source {
    /// RGBA8 pixels.
    Pixels { w: usize, h: usize, rgba: Vec<u8> },
    /// A raw `3×H×W` input.
    Tensor(Vec<f32>),
}

impl Source {
    fn bytes(&self) -> usize {
        match self {
            Source::Pixels { rgba, .. } => rgba.len(),
            Source::Tensor(t) => t.len() * 4,
        }
    }
}

/// Where a trainer's passes run: the CPU backend or the GPU's kernels.
/// Both run the same plan; the GPU's calls wait for its readback.
enum Exec {
    Cpu(Box<TrainPlan>),
    Gpu(Box<GpuTrainPlan>),
}

impl Exec {
    fn plan(&self) -> &Plan {
        match self {
            Exec::Cpu(t) => &t.plan,
            Exec::Gpu(t) => &t.plan,
        }
    }

    fn shape(&self, t: TensorId) -> crate::model::Shape {
        self.plan().shape(t)
    }

    /// The trainable part and the batchnorm mode, which both plans share.
    fn part(&self) -> (&super::Part, super::BnMode) {
        match self {
            Exec::Cpu(t) => (t.part(), t.config().bn),
            Exec::Gpu(t) => (t.part(), t.config().bn),
        }
    }

    fn boundary(&self) -> &[TensorId] {
        &self.part().0.boundary
    }

    fn first_trainable(&self) -> usize {
        self.part().0.first
    }

    fn check_batch(&self, n: usize) -> Result<()> {
        let (part, bn) = self.part();
        part.check_batch(self.plan(), bn, n)
    }

    fn trainable_values(&self, weights: &Weights) -> usize {
        self.part().0.trainable_values(self.plan(), weights)
    }

    fn input_grad_norms(&self) -> &std::collections::HashMap<TensorId, f64> {
        match self {
            Exec::Cpu(t) => t.input_grad_norms(),
            Exec::Gpu(t) => t.input_grad_norms(),
        }
    }

    fn activation_norms(&self) -> &std::collections::HashMap<TensorId, f64> {
        match self {
            Exec::Cpu(t) => t.activation_norms(),
            Exec::Gpu(t) => t.activation_norms(),
        }
    }

    fn refresh(&mut self, weights: &Weights) {
        match self {
            Exec::Cpu(t) => t.refresh(weights, false),
            Exec::Gpu(t) => t.refresh(weights, false),
        }
    }

    fn set(&mut self, t: TensorId, n: usize, data: &[f32]) -> Result<()> {
        match self {
            Exec::Cpu(p) => {
                p.set(t, n, data);
                Ok(())
            }
            Exec::Gpu(p) => p.set(t, n, data),
        }
    }

    async fn frozen_outputs(&mut self, weights: &mut Weights) -> Result<Vec<Vec<f32>>> {
        match self {
            Exec::Cpu(t) => t.frozen_outputs(weights),
            Exec::Gpu(t) => t.frozen_outputs().await,
        }
    }

    /// A training forward and backward pass from op `from`: loss, logits, gradients.
    async fn train_step(&mut self, weights: &mut Weights, from: usize, labels: &[usize], momentum: f32) -> Result<(f64, Vec<f32>, Grads)> {
        match self {
            Exec::Cpu(t) => {
                t.forward(weights, from, true, Some(momentum))?;
                let logits = t.tensor(t.plan.logits).to_vec();
                let (loss, grads) = t.backward(weights, labels)?;
                Ok((loss, logits, grads))
            }
            Exec::Gpu(t) => t.step(weights, from, labels, Some(momentum)).await,
        }
    }

    /// The logits of the batch set, from op `from` as in inference.
    async fn logits(&mut self, weights: &mut Weights, from: usize) -> Result<Vec<f32>> {
        match self {
            Exec::Cpu(t) => {
                t.forward(weights, from, false, None)?;
                Ok(t.tensor(t.plan.logits).to_vec())
            }
            Exec::Gpu(t) => t.logits(from).await,
        }
    }
}

/// A model being trained: its weights, the training plan, the examples as
/// the trainable part reads them (or whole, with augmentation), and the run
/// in progress.
pub struct Trainer {
    pub weights: Weights,
    tp: Exec,
    /// The eval transform at the trainer's input size.
    pre: Preprocess,
    /// With augmentation: how, its random numbers, and the examples kept whole.
    augment: Option<(Augment, Rng)>,
    sources: Vec<Source>,
    /// Per [`TrainPlan::boundary`] tensor, every example's values one after another.
    kept: Vec<Vec<f32>>,
    lens: Vec<usize>,
    labels: Vec<usize>,
    /// The most bytes examples and training tensors may take.
    memory_limit: u64,
    run: Option<Run>,
    /// ‖∂L/∂W‖ and ‖∂L/∂x‖ per block in the last step.
    last_norms: Vec<BlockGradNorm>,
    /// The held-out examples after the last epoch: (example, label, predicted).
    last_validation: Vec<(usize, usize, usize)>,
}

impl Trainer {
    /// A trainer on the CPU backend.
    pub fn new(weights: Weights, height: usize, width: usize, config: TrainConfig) -> Result<Trainer> {
        let tp = Exec::Cpu(Box::new(TrainPlan::new(&weights, height, width, config)?));
        Ok(Self::with(weights, tp, height, width))
    }

    /// A trainer whose passes run on `gpu`'s kernels.
    pub fn new_gpu(gpu: Rc<Gpu>, weights: Weights, height: usize, width: usize, config: TrainConfig) -> Result<Trainer> {
        let tp = Exec::Gpu(Box::new(GpuTrainPlan::new(gpu, &weights, height, width, config)?));
        Ok(Self::with(weights, tp, height, width))
    }

    /// The training plan (the inspect plan with a batch dimension).
    pub fn plan(&self) -> &Plan {
        self.tp.plan()
    }

    /// Whether the passes run on the GPU.
    pub fn on_gpu(&self) -> bool {
        matches!(self.tp, Exec::Gpu(_))
    }

    fn with(weights: Weights, tp: Exec, height: usize, width: usize) -> Trainer {
        let lens: Vec<usize> = tp.boundary().iter().map(|&t| tp.shape(t).len()).collect();
        Trainer {
            weights,
            kept: vec![Vec::new(); lens.len()],
            lens,
            tp,
            pre: Preprocess::imagenet(height, width),
            augment: None,
            sources: Vec::new(),
            labels: Vec::new(),
            memory_limit: u64::MAX,
            run: None,
            last_norms: Vec::new(),
            last_validation: Vec::new(),
        }
    }

    /// Trains on augmented examples (seeded by `seed`), or not (`None`).
    /// Examples are then kept whole and the frozen part runs every step.
    /// Set before adding examples.
    pub fn set_augment(&mut self, augment: Option<Augment>, seed: u64) -> Result<()> {
        if !self.is_empty() {
            bail!(BadInput, "augmentation is chosen before examples are added");
        }
        self.augment = augment.map(|a| (a, Rng::new(seed ^ 0xA06)));
        Ok(())
    }

    /// Bytes the examples take now.
    fn kept_bytes(&self) -> u64 {
        (self.kept.iter().map(Vec::len).sum::<usize>() * 4 + self.sources.iter().map(Source::bytes).sum::<usize>()) as u64
    }

    /// Adds a `width`×`height` RGBA8 image as an example of class `label`,
    /// preprocessed as `classify` does (or kept, to be augmented).
    pub async fn add_pixels(&mut self, rgba: &[u8], width: usize, height: usize, label: usize) -> Result<()> {
        if width.checked_mul(height).and_then(|n| n.checked_mul(4)) != Some(rgba.len()) {
            bail!(BadInput, "expected {width}×{height}×4 bytes of RGBA pixels, got {}", rgba.len());
        }
        let params = self.pre.params(width, height)?;
        if self.augment.is_none() {
            let (h, w) = self.input_size();
            let mut x = vec![0.0; 3 * h * w];
            crate::engine::cpu::preprocess::preprocess(rgba, &params, &mut x)?;
            return self.add(&x, &[label]).await;
        }
        self.check_label(label)?;
        let bytes = self.kept_bytes() + rgba.len() as u64;
        if bytes > self.memory_limit {
            return Err(self.too_much(&format!("keeping {} examples", self.len() + 1), bytes));
        }
        let mut kept = Vec::new();
        kept.try_reserve_exact(rgba.len()).map_err(|_| Error::of(ErrorKind::InputTooLarge, "no memory left to keep more examples"))?;
        kept.extend_from_slice(rgba);
        self.sources.push(Source::Pixels { w: width, h: height, rgba: kept });
        self.labels.push(label);
        self.run = None;
        Ok(())
    }

    fn check_label(&self, y: usize) -> Result<()> {
        let classes = self.weights.model.classes();
        if y >= classes {
            bail!(BadInput, "class {y} is out of range: there are {classes} classes (0 to {})", classes - 1);
        }
        Ok(())
    }

    /// Caps what examples and training tensors may take, in bytes.
    pub fn set_memory_limit(&mut self, bytes: u64) {
        self.memory_limit = bytes;
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn input_size(&self) -> (usize, usize) {
        let s = self.tp.shape(self.tp.plan().input);
        (s.h, s.w)
    }

    /// Values kept per example.
    fn example_values(&self) -> usize {
        self.lens.iter().sum()
    }

    fn too_much(&self, what: &str, bytes: u64) -> Error {
        Error::of(ErrorKind::InputTooLarge, format!("{what} would take {} MB, over the training memory limit of {} MB", bytes >> 20, self.memory_limit >> 20))
    }

    /// Adds examples: `x` holds `labels.len()` raw `3×H×W` inputs at the
    /// trainer's input size. With part of the network frozen, only what the
    /// trainable part reads of them is kept.
    pub async fn add(&mut self, x: &[f32], labels: &[usize]) -> Result<()> {
        let n = labels.len();
        let input = self.tp.plan().input;
        let per = self.tp.shape(input).len();
        if x.len() != n * per {
            let (h, w) = self.input_size();
            bail!(BadInput, "{} values given for {n} examples of 3×{h}×{w} ({} values each)", x.len(), per);
        }
        for &y in labels {
            self.check_label(y)?;
        }
        let added = if self.augment.is_some() { n * per } else { n * self.example_values() };
        let bytes = self.kept_bytes() + added as u64 * 4;
        if bytes > self.memory_limit {
            return Err(self.too_much(&format!("keeping {} examples", self.len() + n), bytes));
        }
        if self.augment.is_some() {
            self.sources.extend(x.chunks_exact(per).map(|t| Source::Tensor(t.to_vec())));
            self.labels.extend_from_slice(labels);
            self.run = None;
            return Ok(());
        }
        for (v, &len) in self.kept.iter_mut().zip(&self.lens) {
            v.try_reserve(n * len).map_err(|_| Error::of(ErrorKind::InputTooLarge, "no memory left to keep more examples"))?;
        }
        if self.tp.first_trainable() == 0 {
            self.kept[0].extend_from_slice(x);
        } else {
            for chunk in (0..n).collect::<Vec<_>>().chunks(8) {
                self.tp.set(input, chunk.len(), &x[chunk[0] * per..(chunk[0] + chunk.len()) * per])?;
                for (k, out) in self.kept.iter_mut().zip(self.tp.frozen_outputs(&mut self.weights).await?) {
                    k.extend_from_slice(&out);
                }
            }
        }
        self.labels.extend_from_slice(labels);
        self.run = None;
        Ok(())
    }

    /// Removes example `i`.
    pub fn remove(&mut self, i: usize) -> Result<()> {
        if i >= self.len() {
            bail!(BadInput, "no example {i}: there are {}", self.len());
        }
        if self.augment.is_some() {
            self.sources.remove(i);
        } else {
            for (k, &len) in self.kept.iter_mut().zip(&self.lens) {
                k.drain(i * len..(i + 1) * len);
            }
        }
        self.labels.remove(i);
        self.run = None;
        Ok(())
    }

    /// Examples per class.
    pub fn counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.weights.model.classes()];
        self.labels.iter().for_each(|&y| c[y] += 1);
        c
    }

    /// Fails naming the first class without examples.
    pub fn check_every_class(&self) -> Result<()> {
        if let Some(c) = self.counts().iter().position(|&c| c == 0) {
            let name = self.weights.labels.as_ref().map_or_else(|| format!("class {c}"), |l| format!("class `{}`", l[c]));
            bail!(BadInput, "{name} has no examples: every class needs at least one");
        }
        Ok(())
    }

    /// Sets a batch's examples into the plan (`augmented`: drawn afresh,
    /// where the trainer augments); returns the op their forward pass starts at.
    fn set_batch(&mut self, idx: &[usize], augmented: bool) -> Result<usize> {
        if let Some((aug, rng)) = &mut self.augment {
            let input = self.tp.plan().input;
            let s = self.tp.shape(input);
            let per = s.len();
            let mut x = vec![0.0; idx.len() * per];
            for (&i, dst) in idx.iter().zip(x.chunks_exact_mut(per)) {
                match &self.sources[i] {
                    Source::Pixels { w, h, rgba } => {
                        let p = if augmented { aug.crop_params(&self.pre, *w, *h, rng)? } else { self.pre.params(*w, *h)? };
                        crate::engine::cpu::preprocess::preprocess(rgba, &p, dst)?;
                    }
                    Source::Tensor(t) => dst.copy_from_slice(t),
                }
                if augmented {
                    let clamp = matches!(self.sources[i], Source::Pixels { .. });
                    let (mean, inv) = (self.pre.mean, self.pre.std.map(|v| 1.0 / v));
                    aug.flip_jitter(dst, s.h, s.w, mean, inv, clamp, rng);
                }
            }
            self.tp.set(input, idx.len(), &x)?;
            return Ok(0);
        }
        for (b, (&len, k)) in self.lens.iter().zip(&self.kept).enumerate() {
            let x: Vec<f32> = idx.iter().flat_map(|&i| k[i * len..(i + 1) * len].iter().copied()).collect();
            let t = self.tp.boundary()[b];
            self.tp.set(t, idx.len(), &x)?;
        }
        Ok(self.tp.first_trainable())
    }

    /// The bytes a batch of `n` takes in the training plan: every tensor of
    /// the trainable part and its gradient.
    /// the trainable part and its gradient (with augmentation, the frozen
    /// part's tensors too), and the parameters' gradients and optimizer state.
    fn plan_bytes(&self, n: usize, kind: super::OptimizerKind) -> u64 {
        let first = self.tp.first_trainable();
        let values = |ops: &[crate::plan::Op]| ops.iter().flat_map(|op| op.outputs()).map(|t| self.tp.shape(t).len() as u64).sum::<u64>();
        let boundary = self.tp.boundary().iter().map(|&t| self.tp.shape(t).len() as u64).sum::<u64>();
        let trainable = values(&self.tp.plan().ops[first..]) + boundary;
        let frozen = if self.augment.is_some() { values(&self.tp.plan().ops[..first]) } else { 0 };
        let state = match kind {
            super::OptimizerKind::Sgd => 1,
            super::OptimizerKind::AdamW => 2,
        };
        let params = self.tp.trainable_values(&self.weights) as u64 * (1 + state);
        ((frozen + 2 * trainable) * n as u64 + params) * 4
    }

    /// Starts a run of `fit.epochs` epochs over the examples.
    pub fn begin(&mut self, optim: OptimConfig, fit: FitConfig) -> Result<()> {
        let n = self.len();
        if n == 0 {
            bail!(BadInput, "no examples to train on: add some first");
        }
        if !(0.0..1.0).contains(&fit.val_fraction) {
            bail!(BadInput, "the validation fraction must be at least 0 and below 1, not {}", fit.val_fraction);
        }
        if fit.batch == 0 || fit.epochs == 0 {
            bail!(BadInput, "the batch size and the number of epochs must be at least 1");
        }
        let mut rng = Rng::new(fit.seed);
        let mut order: Vec<usize> = (0..n).collect();
        shuffle(&mut rng, &mut order);
        let n_val = (fit.val_fraction * n as f64).floor() as usize;
        let (val, train) = order.split_at(n_val);
        if train.is_empty() {
            bail!(BadInput, "no examples left to train on ({n} examples, {n_val} held out for validation)");
        }
        let batch = fit.batch.min(train.len());
        // The last batch of an epoch may be smaller: a lone example must still make batch statistics.
        let last = train.len() % batch;
        self.tp.check_batch(if last == 0 { batch } else { last })?;
        let bytes = self.plan_bytes(batch, optim.kind) + self.kept_bytes();
        if bytes > self.memory_limit {
            return Err(self.too_much(&format!("training with batches of {batch}"), bytes));
        }
        let steps = train.len().div_ceil(batch) * fit.epochs;
        self.run = Some(Run {
            optimizer: Optimizer::new(OptimConfig { total_steps: steps, ..optim }),
            rng,
            val: val.to_vec(),
            train: train.to_vec(),
            batch,
            steps,
            at: 0,
            epoch: 1,
            loss_sum: 0.0,
            correct: 0,
        });
        Ok(())
    }

    /// One step of the run begun; `None` once it is over.
    pub async fn step(&mut self) -> Result<Option<StepReport>> {
        let Some(mut run) = self.run.take() else { return Ok(None) };
        let r = self.step_in(&mut run).await;
        // The run goes on after a step that failed (its batch can be drawn again), and ends after its last.
        if r.is_err() || run.optimizer.steps < run.steps {
            self.run = Some(run);
        }
        r
    }

    async fn step_in(&mut self, run: &mut Run) -> Result<Option<StepReport>> {
        if run.optimizer.steps >= run.steps {
            return Ok(None);
        }
        if run.at == 0 {
            shuffle(&mut run.rng, &mut run.train);
        }
        let end = (run.at + run.batch).min(run.train.len());
        let idx = run.train[run.at..end].to_vec();
        let classes = self.weights.model.classes();
        let from = self.set_batch(&idx, true)?;
        let momentum = super::bn_momentum(self.weights.model.scheme);
        let labels: Vec<usize> = idx.iter().map(|&i| self.labels[i]).collect();
        let (loss, logits, grads) = self.tp.train_step(&mut self.weights, from, &labels, momentum).await?;
        run.correct += argmax_rows(&logits, classes).zip(&labels).filter(|(p, y)| p == *y).count();
        run.optimizer.step(&mut self.weights, &grads);
        self.last_norms = self.norms(&grads);
        self.tp.refresh(&self.weights);
        run.loss_sum += loss * idx.len() as f64;
        run.at = end;
        let mut epoch = None;
        if run.at == run.train.len() {
            let val_accuracy = if run.val.is_empty() {
                None
            } else {
                let mut seen = Vec::with_capacity(run.val.len());
                for chunk in run.val.clone().chunks(run.batch) {
                    let from = self.set_batch(chunk, false)?;
                    let logits = self.tp.logits(&mut self.weights, from).await?;
                    seen.extend(argmax_rows(&logits, classes).zip(chunk).map(|(p, &i)| (i, self.labels[i], p)));
                }
                let right = seen.iter().filter(|(_, y, p)| y == p).count();
                self.last_validation = seen;
                Some(right as f64 / run.val.len() as f64)
            };
            let n = run.train.len() as f64;
            epoch = Some(EpochReport { epoch: run.epoch, loss: run.loss_sum / n, train_accuracy: run.correct as f64 / n, val_accuracy });
            run.epoch += 1;
            run.at = 0;
            run.loss_sum = 0.0;
            run.correct = 0;
        }
        Ok(Some(StepReport { step: run.optimizer.steps, steps: run.steps, loss, epoch }))
    }

    /// The class each of `x`'s raw `3×H×W` inputs gets, as in inference
    /// (batchnorms on the running statistics), in chunks of `batch`
    /// examples (the last one padded: a GPU plan keeps one batch size's buffers).
    pub async fn predict(&mut self, x: &[f32], batch: usize) -> Result<Vec<usize>> {
        let input = self.tp.plan().input;
        let per = self.tp.shape(input).len();
        if x.len() % per != 0 || batch == 0 {
            bail!(BadInput, "{} values are not whole examples of {} values", x.len(), per);
        }
        let classes = self.weights.model.classes();
        let mut out = Vec::with_capacity(x.len() / per);
        let mut padded = vec![0.0; batch * per];
        for chunk in x.chunks(batch * per) {
            padded[..chunk.len()].copy_from_slice(chunk);
            padded[chunk.len()..].fill(0.0);
            self.tp.set(input, batch, &padded)?;
            let logits = self.tp.logits(&mut self.weights, 0).await?;
            out.extend(argmax_rows(&logits, classes).take(chunk.len() / per));
        }
        Ok(out)
    }

    /// The held-out examples as the last epoch left them: (example index in
    /// the order added, less removed ones; its class; the predicted class).
    /// Empty without a validation share. What a confusion matrix is made of.
    pub fn validation(&self) -> &[(usize, usize, usize)] {
        &self.last_validation
    }

    /// Per block of the plan, ‖∂L/∂W‖ and ‖∂L/∂x‖ at its input in the last
    /// step (empty before the first).
    pub fn gradient_norms(&self) -> &[BlockGradNorm] {
        &self.last_norms
    }

    /// Per block: ‖∂L/∂W‖ of `grads` and ‖∂L/∂x‖ at its input in the last backward pass.
    fn norms(&self, grads: &Grads) -> Vec<BlockGradNorm> {
        let plan = self.tp.plan();
        let inputs = self.tp.input_grad_norms();
        plan.blocks
            .iter()
            .map(|b| {
                let weights = Some(grads).and_then(|g| {
                    let mut sum = 0.0;
                    let mut any = false;
                    for op in &plan.ops[b.ops.clone()] {
                        match op {
                            crate::plan::Op::Conv(c) => {
                                if let Some((w, bias)) = g.convs.get(&c.conv.name) {
                                    any = true;
                                    sum += crate::engine::cpu::ops::sum_squares(w) + bias.as_deref().map_or(0.0, crate::engine::cpu::ops::sum_squares);
                                }
                            }
                            crate::plan::Op::BatchNorm { bn, .. } => {
                                if let Some((gm, bt)) = g.bns.get(&bn.name) {
                                    any = true;
                                    sum += crate::engine::cpu::ops::sum_squares(gm) + crate::engine::cpu::ops::sum_squares(bt);
                                }
                            }
                            crate::plan::Op::Dense { .. } if b.role == BlockRole::Head && !g.dense.0.is_empty() => {
                                any = true;
                                sum += crate::engine::cpu::ops::sum_squares(&g.dense.0) + crate::engine::cpu::ops::sum_squares(&g.dense.1);
                            }
                            _ => {}
                        }
                    }
                    any.then(|| sum.sqrt())
                });
                let input = b.input.and_then(|t| inputs.get(&t).copied());
                let acts = self.tp.activation_norms();
                let residual = b.residual.and_then(|r| Some((*acts.get(&r.main)?, *acts.get(&r.shortcut)?)));
                BlockGradNorm { name: b.name.clone(), weights, input, residual }
            })
            .collect()
    }
}
