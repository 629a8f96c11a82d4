//! Training: the backward pass of every op of the forward pass, on the CPU
//! backend (here) and on the GPU ([`gpu`]: the same plan on WGSL kernels),
//! and the loop that trains with either ([`Trainer`]).
//!
//! The training plan is the inference plan in inspect mode (every conv,
//! batchnorm, ReLU and residual add its own op, every intermediate kept)
//! with a batch dimension: each tensor holds `N` examples one after another.
//! The forward pass runs the plan's ops over the batch, then the backward
//! pass walks them in reverse, each op adding its output's gradient into
//! its inputs' (a block's input gets the shortcut's share and the main
//! path's). Only the ops from the first trainable one on are walked back:
//! with `head` that is the dense layer alone.
//!
//! What is frozen is frozen whole: ops before the trainable part run as in
//! inference (their batchnorms on the running statistics), so their
//! outputs can be computed once per example and kept ([`fit`] does).

use std::collections::HashMap;

use crate::engine::cpu::conv::{conv_backward, ConvGrads, CpuConv, Epilogue, Scratch};
use crate::engine::cpu::ops;
use crate::model::Shape;
use crate::plan::{BlockRole, Mode, Op, Plan, TensorId};
use crate::weights::Weights;
use crate::{bail, Result};

pub mod augment;
pub mod experiment;
pub mod fit;
pub mod gpu;
pub mod optim;

pub use augment::Augment;
pub use fit::{BlockGradNorm, EpochReport, FitConfig, StepReport, Trainer};
pub use optim::{OptimConfig, Optimizer, OptimizerKind, Schedule};

/// How batchnorm normalises while training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BnMode {
    /// The running statistics, as in inference; γ and β train.
    Frozen,
    /// The batch's mean and biased variance over N×H×W (PyTorch's and
    /// Keras' training mode); the running statistics follow the batch.
    Batch,
}

crate::named_enum!(BnMode { Frozen = "frozen", Batch = "batch" });

/// Which parameters train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trainable {
    /// The dense layer only.
    Head,
    /// The last stage's blocks and the dense layer.
    LastStage,
    /// Everything.
    All,
}

crate::named_enum!(Trainable { Head = "head", LastStage = "last-stage", All = "all" });

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainConfig {
    pub bn: BnMode,
    pub train: Trainable,
}

/// Gradients of the trainable tensors, in the canonical layouts (OIHW
/// kernels, dense `(classes, in)`), keyed by layer name.
#[derive(Debug, Clone, Default)]
pub struct Grads {
    /// Conv name → (kernel, bias if the conv has one).
    pub convs: HashMap<String, (Vec<f32>, Option<Vec<f32>>)>,
    /// Batchnorm name → (γ, β).
    pub bns: HashMap<String, (Vec<f32>, Vec<f32>)>,
    /// (weight, bias).
    pub dense: (Vec<f32>, Vec<f32>),
}

impl Grads {
    /// Σ g² over every tensor.
    pub fn sum_squares(&self) -> f64 {
        let sq = |v: &[f32]| ops::sum_squares(v);
        self.convs.values().map(|(w, b)| sq(w) + b.as_deref().map_or(0.0, sq)).sum::<f64>()
            + self.bns.values().map(|(g, b)| sq(g) + sq(b)).sum::<f64>()
            + sq(&self.dense.0)
            + sq(&self.dense.1)
    }
}

/// The momentum of the running statistics: the share of the batch's, as
/// the weights' framework does it (PyTorch 0.1, Keras 0.01).
pub fn bn_momentum(scheme: crate::model::Scheme) -> f32 {
    match scheme {
        crate::model::Scheme::Torchvision => 0.1,
        crate::model::Scheme::Keras => 0.01,
    }
}

/// Where the trainable part of an inspect plan starts, and what it reads
/// from the frozen part: shared by the CPU and GPU training plans.
pub(crate) struct Part {
    /// The first op whose parameters train.
    pub first: usize,
    /// The op that writes each tensor (`None` for the input).
    pub producer: Vec<Option<usize>>,
    /// The tensors the trainable ops read that the frozen ops (or the input) produce.
    pub boundary: Vec<TensorId>,
}

impl Part {
    pub fn of(plan: &Plan, train: Trainable) -> Part {
        let first = match train {
            Trainable::All => 0,
            Trainable::Head => plan.ops.iter().position(|op| matches!(op, Op::Dense { .. })).expect("a plan has a dense layer"),
            Trainable::LastStage => {
                let last = plan.blocks.iter().filter(|b| matches!(b.role, BlockRole::Identity | BlockRole::Convolutional | BlockRole::Plain)).map(|b| b.stage).max();
                plan.blocks.iter().filter(|b| Some(b.stage) == last && b.role != BlockRole::Head).map(|b| b.ops.start).min().unwrap_or(0)
            }
        };
        let mut producer = vec![None; plan.tensors.len()];
        for (oi, op) in plan.ops.iter().enumerate() {
            for t in op.outputs() {
                producer[t] = Some(oi);
            }
        }
        let mut boundary = Vec::new();
        for op in &plan.ops[first..] {
            for t in op.inputs() {
                if producer[t].is_none_or(|p| p < first) && !boundary.contains(&t) {
                    boundary.push(t);
                }
            }
        }
        Part { first, producer, boundary }
    }

    /// Whether the backward pass needs tensor `t`'s gradient: a trainable op wrote it.
    pub fn needs_grad(&self, t: TensorId) -> bool {
        self.producer[t].is_some_and(|p| p >= self.first)
    }

    /// Refuses a batch of `n` where a batch-mode batchnorm would see one value per channel.
    pub fn check_batch(&self, plan: &Plan, bn_mode: BnMode, n: usize) -> Result<()> {
        if bn_mode != BnMode::Batch {
            return Ok(());
        }
        for op in &plan.ops[self.first..] {
            if let Op::BatchNorm { bn, input, .. } = op {
                let s = plan.shape(*input);
                if n * s.h * s.w <= 1 {
                    bail!(BadInput, "batchnorm `{}` in batch mode needs more than one value per channel, but a batch of {n} on its {}×{} map gives {}: use a larger batch (or one that leaves no example alone at an epoch's end) or input, or --bn frozen", bn.name, s.h, s.w, n * s.h * s.w);
                }
            }
        }
        Ok(())
    }

    /// Values in the trainable part's parameters.
    pub fn trainable_values(&self, plan: &Plan, weights: &Weights) -> usize {
        plan.ops[self.first..]
            .iter()
            .map(|op| match op {
                Op::Conv(c) => weights.convs[&c.conv.name].weight.len() + weights.convs[&c.conv.name].bias.as_ref().map_or(0, Vec::len),
                Op::BatchNorm { bn, .. } => 2 * bn.channels,
                Op::Dense { .. } => weights.dense.weight.len() + weights.dense.bias.len(),
                _ => 0,
            })
            .sum()
    }
}

/// A batched forward and backward pass over the inspect plan.
pub struct TrainPlan {
    pub plan: Plan,
    config: TrainConfig,
    /// The trainable part; its boundary is what [`TrainPlan::frozen_outputs`] returns.
    part: Part,
    /// Examples in the tensors now.
    n: usize,
    acts: Vec<Vec<f32>>,
    grads: Vec<Vec<f32>>,
    /// ‖∂L/∂x‖ at each block's input in the last backward pass.
    grad_norms: HashMap<TensorId, f64>,
    /// ‖F(x)‖ and ‖shortcut‖ of each residual block that trains, in the last backward pass's batch.
    act_norms: HashMap<TensorId, f64>,
    /// Per batchnorm op of the last forward pass: (mean, 1/√(var+ε)).
    bn_stats: HashMap<usize, (Vec<f32>, Vec<f32>)>,
    /// The convs as the forward pass runs them (rebuilt after each update).
    convs: HashMap<String, CpuConv>,
    scratch: Scratch,
}

impl TrainPlan {
    pub fn new(weights: &Weights, height: usize, width: usize, config: TrainConfig) -> Result<TrainPlan> {
        let plan = Plan::new(&weights.model, height, width, Mode::Inspect)?;
        let part = Part::of(&plan, config.train);
        let tensors = plan.tensors.len();
        let mut tp = TrainPlan {
            plan,
            config,
            part,
            n: 0,
            acts: vec![Vec::new(); tensors],
            grads: vec![Vec::new(); tensors],
            grad_norms: HashMap::new(),
            act_norms: HashMap::new(),
            bn_stats: HashMap::new(),
            convs: HashMap::new(),
            scratch: Scratch::default(),
        };
        tp.refresh(weights, true);
        Ok(tp)
    }

    pub fn config(&self) -> TrainConfig {
        self.config
    }

    /// Rebuilds the forward convs from `weights` (all, or only the trainable ones).
    pub fn refresh(&mut self, weights: &Weights, all: bool) {
        for (oi, op) in self.plan.ops.iter().enumerate() {
            if let Op::Conv(c) = op {
                if all || oi >= self.part.first {
                    let p = &weights.convs[&c.conv.name];
                    self.convs.insert(c.conv.name.clone(), CpuConv::new(c.conv.clone(), p.weight.clone(), p.bias.clone()));
                }
            }
        }
    }

    /// Makes tensor `t` hold `n` examples.
    fn act_mut(&mut self, t: TensorId) -> &mut Vec<f32> {
        let len = self.n * self.plan.shape(t).len();
        let a = &mut self.acts[t];
        a.resize(len, 0.0);
        a
    }

    /// Sets tensor `t` (the input, or one of [`TrainPlan::boundary`]) for a
    /// batch of `n` examples, one after another.
    pub fn set(&mut self, t: TensorId, n: usize, data: &[f32]) {
        self.n = n;
        let a = self.act_mut(t);
        let len = a.len();
        a.copy_from_slice(&data[..len]);
    }

    /// A tensor of the last forward pass, all `n` examples.
    pub fn tensor(&self, t: TensorId) -> &[f32] {
        &self.acts[t][..self.n * self.plan.shape(t).len()]
    }

    /// Runs ops `from..` over the batch set with [`TrainPlan::set`].
    /// `training`: the trainable part's batchnorms in the configured mode
    /// (else all on the running statistics, as in inference); `momentum`:
    /// update the running statistics of batch-mode batchnorms.
    pub fn forward(&mut self, weights: &mut Weights, from: usize, training: bool, momentum: Option<f32>) -> Result<()> {
        let end = self.plan.ops.len();
        self.run(weights, from..end, training, momentum)
    }

    /// Runs ops `range` (see [`TrainPlan::forward`]).
    fn run(&mut self, weights: &mut Weights, range: std::ops::Range<usize>, training: bool, momentum: Option<f32>) -> Result<()> {
        // Refuse what batch statistics cannot be taken of before anything runs.
        if training {
            self.check_batch(self.n)?;
        }
        let n = self.n;
        // The ops are read while the tensors change: out of the plan for the loop, not cloned op by op.
        let ops = std::mem::take(&mut self.plan.ops);
        for (oi, op) in ops.iter().enumerate().take(range.end).skip(range.start) {
            let out_t = op.output();
            let mut out = std::mem::take(self.act_mut(out_t));
            let (acts, plan) = (&self.acts, &self.plan);
            let per = |t: TensorId| plan.shape(t).len();
            let example = |t: TensorId, e: usize| &acts[t][e * per(t)..(e + 1) * per(t)];
            match op {
                Op::Conv(c) => {
                    let (i, o) = (plan.shape(c.input), plan.shape(c.output));
                    let conv = &self.convs[&c.conv.name];
                    for (e, y) in out.chunks_exact_mut(o.len()).enumerate() {
                        conv.run(example(c.input, e), i, y, o, Epilogue { residual: None, relu: false, main_out: None }, &mut self.scratch);
                    }
                }
                Op::BatchNorm { bn, input, .. } => {
                    let s = plan.shape(*input);
                    let p = weights.bns.get_mut(&bn.name).expect("every batchnorm has weights");
                    let (mean, var): (Vec<f32>, Vec<f32>) = if training && self.config.bn == BnMode::Batch && oi >= self.part.first {
                        let (m, v) = ops::batch_moments(&acts[*input], n, s);
                        if let Some(k) = momentum {
                            // The running variance follows the unbiased batch variance.
                            let count = (n * s.h * s.w) as f64;
                            for c in 0..s.c {
                                p.mean[c] = ((1.0 - k as f64) * p.mean[c] as f64 + k as f64 * m[c]) as f32;
                                p.var[c] = ((1.0 - k as f64) * p.var[c] as f64 + k as f64 * v[c] * count / (count - 1.0)) as f32;
                            }
                        }
                        (m.iter().map(|&x| x as f32).collect(), v.iter().map(|&x| x as f32).collect())
                    } else {
                        (p.mean.clone(), p.var.clone())
                    };
                    let inv: Vec<f32> = var.iter().map(|v| 1.0 / (v + bn.eps).sqrt()).collect();
                    let scale: Vec<f32> = p.gamma.iter().zip(&inv).map(|(g, i)| g * i).collect();
                    let shift: Vec<f32> = p.beta.iter().zip(&scale).zip(&mean).map(|((b, s), m)| b - m * s).collect();
                    ops::scale_shift(&acts[*input], s, &scale, &shift, &mut out);
                    self.bn_stats.insert(oi, (mean, inv));
                }
                Op::Relu { input, .. } => ops::relu(&acts[*input], &mut out),
                Op::AddRelu { main, shortcut, .. } => ops::add_relu(&acts[*main], &acts[*shortcut], &mut out),
                Op::MaxPool { pool, input, output } => {
                    let (i, o) = (plan.shape(*input), plan.shape(*output));
                    for (e, y) in out.chunks_exact_mut(o.len()).enumerate() {
                        ops::maxpool(example(*input, e), i, pool, y, o, &mut self.scratch);
                    }
                }
                Op::GlobalAvgPool { input, output } => {
                    let (i, o) = (plan.shape(*input), plan.shape(*output));
                    for (e, y) in out.chunks_exact_mut(o.len()).enumerate() {
                        ops::global_avg_pool(example(*input, e), i, y);
                    }
                }
                Op::Dense { input, output } => {
                    for (e, y) in out.chunks_exact_mut(per(*output)).enumerate() {
                        ops::dense(example(*input, e), &weights.dense.weight, &weights.dense.bias, y);
                    }
                }
                Op::Softmax { input, output } => {
                    for (e, y) in out.chunks_exact_mut(per(*output)).enumerate() {
                        ops::softmax(example(*input, e), y);
                    }
                }
            }
            self.acts[out_t] = out;
        }
        self.plan.ops = ops;
        Ok(())
    }

    /// Refuses a batch of `n` where a batch-mode batchnorm would see one value per channel.
    pub fn check_batch(&self, n: usize) -> Result<()> {
        self.part.check_batch(&self.plan, self.config.bn, n)
    }

    /// The tensors the trainable ops read that the frozen ops (or the input) produce.
    pub fn boundary(&self) -> &[TensorId] {
        &self.part.boundary
    }

    /// The trainable part (shared with the GPU plan's bookkeeping).
    pub(crate) fn part(&self) -> &Part {
        &self.part
    }

    /// The outputs of the frozen ops that the trainable ones read, for the
    /// batch set: runs only the frozen ops. One vector per
    /// [`TrainPlan::boundary`] tensor, `n` examples each.
    pub fn frozen_outputs(&mut self, weights: &mut Weights) -> Result<Vec<Vec<f32>>> {
        let first = self.part.first;
        self.run(weights, 0..first, false, None)?;
        let out = self.part.boundary.iter().map(|&t| self.tensor(t).to_vec()).collect();
        // The frozen part's tensors are not kept: a batch of them can take gigabytes.
        for (t, p) in self.part.producer.iter().enumerate() {
            if p.is_none_or(|p| p < first) {
                self.acts[t] = Vec::new();
            }
        }
        Ok(out)
    }

    /// The first op of the trainable part (where a batch of
    /// [`TrainPlan::frozen_outputs`] starts its forward pass).
    pub fn first_trainable(&self) -> usize {
        self.part.first
    }

    /// The backward pass of the last forward pass (run with `training`):
    /// the mean cross-entropy against `labels` and every trainable tensor's gradient.
    pub fn backward(&mut self, weights: &Weights, labels: &[usize]) -> Result<(f64, Grads)> {
        let n = self.n;
        let classes = weights.model.classes();
        if labels.len() != n {
            bail!(BadInput, "{} labels for a batch of {n}", labels.len());
        }
        if let Some(&y) = labels.iter().find(|&&y| y >= classes) {
            bail!(BadInput, "label {y} is out of range: the network has {classes} classes (0 to {})", classes - 1);
        }
        for g in &mut self.grads {
            g.clear();
        }
        let logits = self.plan.logits;
        let mut dlogits = vec![0.0; n * classes];
        let loss = ops::cross_entropy(self.tensor(logits), labels, &mut dlogits);
        self.grads[logits] = dlogits;
        let mut grads = Grads::default();
        self.grad_norms.clear();
        self.act_norms.clear();
        for b in self.plan.blocks.iter().filter(|b| b.ops.start >= self.part.first) {
            for t in b.residual.iter().flat_map(|r| [r.main, r.shortcut]) {
                self.act_norms.insert(t, ops::sum_squares(self.tensor(t)).sqrt());
            }
        }
        // Out of the plan for the loop, as in `run`.
        let ops = std::mem::take(&mut self.plan.ops);
        for (oi, op) in ops.iter().enumerate().skip(self.part.first).rev() {
            if matches!(op, Op::Softmax { .. }) {
                continue;
            }
            let dy = std::mem::take(&mut self.grads[op.output()]);
            if dy.is_empty() {
                continue;
            }
            if self.plan.blocks.iter().any(|b| b.input == Some(op.output())) {
                self.grad_norms.insert(op.output(), ops::sum_squares(&dy).sqrt());
            }
            self.op_backward(oi, op, &dy, weights, &mut grads);
        }
        self.plan.ops = ops;
        Ok((loss, grads))
    }

    /// Tensor `t`'s gradient buffer, zeroed at first use, or `None` when the
    /// backward pass does not need it.
    fn take_grad(&mut self, t: TensorId) -> Option<Vec<f32>> {
        if !self.part.needs_grad(t) {
            return None;
        }
        let mut g = std::mem::take(&mut self.grads[t]);
        g.resize(self.n * self.plan.shape(t).len(), 0.0);
        Some(g)
    }

    fn put_grad(&mut self, t: TensorId, g: Option<Vec<f32>>) {
        if let Some(g) = g {
            self.grads[t] = g;
        }
    }

    /// One op's backward: `dy` is its output's gradient; parameter
    /// gradients go to `grads`, input gradients into the tensors' buffers.
    fn op_backward(&mut self, oi: usize, op: &Op, dy: &[f32], weights: &Weights, grads: &mut Grads) {
        let n = self.n;
        match op {
            Op::Conv(c) => {
                let (i, o) = (self.plan.shape(c.input), self.plan.shape(c.output));
                let p = &weights.convs[&c.conv.name];
                let (gw, gb) = grads.convs.entry(c.conv.name.clone()).or_insert_with(|| (vec![0.0; p.weight.len()], p.bias.as_ref().map(|b| vec![0.0; b.len()])));
                let mut dx = self.take_grad(c.input);
                for e in 0..n {
                    let x = &self.acts[c.input][e * i.len()..(e + 1) * i.len()];
                    let g = ConvGrads { weight: Some(gw), bias: gb.as_deref_mut(), input: dx.as_mut().map(|d| &mut d[e * i.len()..(e + 1) * i.len()]) };
                    conv_backward(&c.conv, &p.weight, x, i, &dy[e * o.len()..(e + 1) * o.len()], o, g, &mut self.scratch);
                }
                self.put_grad(c.input, dx);
            }
            Op::BatchNorm { bn, input, .. } => {
                let s = self.plan.shape(*input);
                let p = &weights.bns[&bn.name];
                let (gg, gb) = grads.bns.entry(bn.name.clone()).or_insert_with(|| (vec![0.0; s.c], vec![0.0; s.c]));
                let mut dx = self.take_grad(*input);
                let (mean, inv) = &self.bn_stats[&oi];
                let batch = self.config.bn == BnMode::Batch;
                ops::batchnorm_backward(&self.acts[*input], n, s, mean, inv, &p.gamma, batch, dy, Some(gg), Some(gb), dx.as_deref_mut());
                self.put_grad(*input, dx);
            }
            Op::Relu { input, output } => {
                if let Some(mut dx) = self.take_grad(*input) {
                    ops::relu_backward(&self.acts[*output], dy, &mut [&mut dx]);
                    self.put_grad(*input, Some(dx));
                }
            }
            Op::AddRelu { main, shortcut, output } => {
                let (mut a, mut b) = (self.take_grad(*main), self.take_grad(*shortcut));
                let mut outs: Vec<&mut [f32]> = a.iter_mut().chain(b.iter_mut()).map(|v| v.as_mut_slice()).collect();
                ops::relu_backward(&self.acts[*output], dy, &mut outs);
                self.put_grad(*main, a);
                self.put_grad(*shortcut, b);
            }
            Op::MaxPool { pool, input, output } => {
                let (i, o) = (self.plan.shape(*input), self.plan.shape(*output));
                if let Some(mut dx) = self.take_grad(*input) {
                    for e in 0..n {
                        let x = &self.acts[*input][e * i.len()..(e + 1) * i.len()];
                        ops::maxpool_backward(x, i, pool, &dy[e * o.len()..(e + 1) * o.len()], o, &mut dx[e * i.len()..(e + 1) * i.len()]);
                    }
                    self.put_grad(*input, Some(dx));
                }
            }
            Op::GlobalAvgPool { input, .. } => {
                let i = self.plan.shape(*input);
                if let Some(mut dx) = self.take_grad(*input) {
                    for e in 0..n {
                        ops::global_avg_pool_backward(&dy[e * i.c..(e + 1) * i.c], i, &mut dx[e * i.len()..(e + 1) * i.len()]);
                    }
                    self.put_grad(*input, Some(dx));
                }
            }
            Op::Dense { input, .. } => {
                let d = &weights.dense;
                let (gw, gb) = &mut grads.dense;
                gw.resize(d.weight.len(), 0.0);
                gb.resize(d.bias.len(), 0.0);
                let mut dx = self.take_grad(*input);
                ops::dense_backward(&self.acts[*input], &d.weight, dy, n, Some(gw), Some(gb), dx.as_deref_mut());
                self.put_grad(*input, dx);
            }
            Op::Softmax { .. } => {}
        }
    }

    /// ‖∂L/∂x‖ at each block input the last backward pass reached.
    pub fn input_grad_norms(&self) -> &HashMap<TensorId, f64> {
        &self.grad_norms
    }

    /// ‖F(x)‖ and ‖shortcut‖ over the last backward pass's batch, per residual block that trains (by tensor).
    pub fn activation_norms(&self) -> &HashMap<TensorId, f64> {
        &self.act_norms
    }

    pub fn shape(&self, t: TensorId) -> Shape {
        self.plan.shape(t)
    }
}

/// The loss, logits (`N×classes`) and gradients of one batch: `x` holds
/// `N` raw `3×H×W` inputs, `labels` their classes.
pub fn gradients(weights: &Weights, x: &[f32], n: usize, height: usize, width: usize, labels: &[usize], config: TrainConfig) -> Result<(f64, Vec<f32>, Grads)> {
    let mut w = weights.clone();
    let mut tp = TrainPlan::new(&w, height, width, config)?;
    let input = tp.plan.input;
    if x.len() != n * tp.shape(input).len() {
        bail!(BadInput, "the input holds {} values, not {n} examples of 3×{height}×{width}", x.len());
    }
    tp.set(input, n, x);
    tp.forward(&mut w, 0, true, None)?;
    let (loss, grads) = tp.backward(&w, labels)?;
    Ok((loss, tp.tensor(tp.plan.logits).to_vec(), grads))
}
