//! The training plan on the GPU: the same inspect plan with a batch
//! dimension as [`super::TrainPlan`] on the CPU, its ops and their backward
//! passes run by the f32 WGSL kernels in `shaders/` (`*_backward.wgsl`
//! beside each forward kernel).
//!
//! Everything a step needs stays on the GPU: the batch's activations, each
//! tensor's gradient (zeroed, then added into by every op that reads the
//! tensor, so a block's input gets both paths' shares), the batchnorms'
//! coefficients. One submission runs the forward pass, the loss and the
//! backward pass; one readback brings the loss, the logits, the parameter
//! gradients, the batch statistics and the gradient norms at block inputs.
//! The optimizer runs on the host (the trained tensors go back up after
//! each step): the gradients come back anyway, for the CLI and the
//! per-block norms the page shows.
//!
//! The buffers and dispatches are built for a batch size and kept while it
//! stays (an epoch's smaller last batch rebuilds them).

use std::collections::HashMap;
use std::rc::Rc;

use super::{BnMode, Grads, Part, TrainConfig};
use crate::gpu::{map_bytes, Gpu, OwnedBuffer};
use crate::kernels::{conv_weights_km, conv_weights_oihw, pack_batchnorm, ConvBuffers, ConvParams, Dispatch, Kernels, PoolParams, Precision, STORAGE};
use crate::plan::{Mode, Op, Plan, TensorId};
use crate::weights::Weights;
use crate::{bail, Result};

fn buffer(device: &wgpu::Device, label: &str, floats: usize) -> OwnedBuffer {
    OwnedBuffer(device.create_buffer(&wgpu::BufferDescriptor { label: Some(label), size: (floats.max(1) * 4) as u64, usage: STORAGE, mapped_at_creation: false }))
}

/// A batchnorm's parameters as the kernels read them.
struct BnParamBuffers {
    /// (γ, β, running mean, running var) per channel ([`pack_batchnorm`]), for batch statistics.
    packed: OwnedBuffer,
    /// (scale, shift, mean, 1/σ) per channel from the running statistics,
    /// computed on the host when the parameters change: inference's form,
    /// what the frozen part and validation normalise with.
    running: OwnedBuffer,
}

/// The running statistics' coefficients, as the CPU plan computes them (in f32).
fn running_coefficients(p: &crate::weights::BatchNormWeights, eps: f32) -> Vec<f32> {
    (0..p.gamma.len())
        .flat_map(|c| {
            let inv = 1.0 / (p.var[c] + eps).sqrt();
            let scale = p.gamma[c] * inv;
            [scale, p.beta[c] - p.mean[c] * scale, p.mean[c], inv]
        })
        .collect()
}

/// A conv's parameters as the kernels read them.
struct ConvParamBuffers {
    /// K×M ([`conv_weights_km`]).
    weight: OwnedBuffer,
    bias: Option<OwnedBuffer>,
}

/// What comes back after a step, where in the staging buffer (in f32s).
#[derive(Default)]
struct Readback {
    floats: usize,
    loss: usize,
    logits: usize,
    /// Conv name, output channels → (K×M weight gradient, bias gradient).
    convs: Vec<(String, usize, usize, Option<usize>)>,
    /// Batchnorm name → dγ then dβ.
    bns: Vec<(String, usize)>,
    dense: usize,
    /// Batch-mode batchnorm op → its (mean, var) pairs.
    moments: Vec<(usize, usize)>,
    /// Block input → (first slice sum, slices).
    norms: Vec<(TensorId, usize, usize)>,
    /// A residual block's F(x) or shortcut (in the trainable part) → (first slice sum, slices).
    act_norms: Vec<(TensorId, usize, usize)>,
}

/// The buffers and dispatches of one batch size.
struct Batch {
    n: usize,
    acts: Vec<OwnedBuffer>,
    /// Per tensor whose gradient the backward pass needs.
    grads: Vec<Option<OwnedBuffer>>,
    /// Per op: its dispatches as in inference (the frozen part, validation),
    /// and, for a trainable batch-mode batchnorm, those on batch statistics.
    forward: Vec<Vec<Dispatch>>,
    batch_stats: HashMap<usize, Vec<Dispatch>>,
    loss: Vec<Dispatch>,
    backward: Vec<Dispatch>,
    labels: OwnedBuffer,
    /// Every buffer the step's readback copies from, with its offset (f32s) and length.
    copies: Vec<(wgpu::Buffer, usize, usize)>,
    readback: Readback,
    staging: OwnedBuffer,
    /// The buffers only the dispatches use, kept alive with them.
    _keep: Vec<OwnedBuffer>,
}

/// A batched forward and backward pass over the inspect plan, on the GPU.
pub struct GpuTrainPlan {
    pub plan: Plan,
    config: TrainConfig,
    part: Part,
    gpu: Rc<Gpu>,
    kernels: Kernels,
    convs: HashMap<String, ConvParamBuffers>,
    bns: HashMap<String, BnParamBuffers>,
    dense: (OwnedBuffer, OwnedBuffer),
    batch: Option<Batch>,
    grad_norms: HashMap<TensorId, f64>,
    /// ‖t‖ over the batch of the last step, for the F(x) and shortcut of each residual block that trains.
    act_norms: HashMap<TensorId, f64>,
}

impl GpuTrainPlan {
    pub fn new(gpu: Rc<Gpu>, weights: &Weights, height: usize, width: usize, config: TrainConfig) -> Result<GpuTrainPlan> {
        let plan = Plan::new(&weights.model, height, width, Mode::Inspect)?;
        let part = Part::of(&plan, config.train);
        let device = &gpu.device;
        let kernels = Kernels::new(device, &gpu.queue, Precision::F32);
        // Sized here, filled by `refresh`.
        let mut convs = HashMap::new();
        let mut bns = HashMap::new();
        for op in &plan.ops {
            match op {
                Op::Conv(c) => {
                    let p = &weights.convs[&c.conv.name];
                    let weight = buffer(device, &c.conv.name, p.weight.len());
                    let bias = p.bias.as_ref().map(|b| buffer(device, &c.conv.name, b.len()));
                    convs.insert(c.conv.name.clone(), ConvParamBuffers { weight, bias });
                }
                Op::BatchNorm { bn, .. } => {
                    let (packed, running) = (buffer(device, &bn.name, 4 * bn.channels), buffer(device, &bn.name, 4 * bn.channels));
                    bns.insert(bn.name.clone(), BnParamBuffers { packed, running });
                }
                _ => {}
            }
        }
        let dense = (buffer(device, "dense weight", weights.dense.weight.len()), buffer(device, "dense bias", weights.dense.bias.len()));
        let mut tp = GpuTrainPlan { plan, config, part, gpu, kernels, convs, bns, dense, batch: None, grad_norms: HashMap::new(), act_norms: HashMap::new() };
        tp.refresh(weights, true);
        Ok(tp)
    }

    pub fn config(&self) -> TrainConfig {
        self.config
    }

    /// The trainable part (shared with the CPU plan's bookkeeping).
    pub(crate) fn part(&self) -> &Part {
        &self.part
    }

    /// ‖∂L/∂x‖ at each block input the last backward pass reached.
    pub fn input_grad_norms(&self) -> &HashMap<TensorId, f64> {
        &self.grad_norms
    }

    /// ‖F(x)‖ and ‖shortcut‖ over the batch of the last step, per residual block that trains (by tensor).
    pub fn activation_norms(&self) -> &HashMap<TensorId, f64> {
        &self.act_norms
    }

    /// Uploads the parameters from `weights` (all, or only the trainable ones).
    pub fn refresh(&mut self, weights: &Weights, all: bool) {
        let q = &self.gpu.queue;
        for (oi, op) in self.plan.ops.iter().enumerate() {
            if !all && oi < self.part.first {
                continue;
            }
            match op {
                Op::Conv(c) => {
                    let (p, b) = (&weights.convs[&c.conv.name], &self.convs[&c.conv.name]);
                    q.write_buffer(&b.weight, 0, bytemuck::cast_slice(&conv_weights_km(&p.weight, c.conv.out_channels)));
                    if let (Some(buf), Some(bias)) = (&b.bias, &p.bias) {
                        q.write_buffer(buf, 0, bytemuck::cast_slice(bias));
                    }
                }
                Op::BatchNorm { bn, .. } => {
                    let (p, b) = (&weights.bns[&bn.name], &self.bns[&bn.name]);
                    q.write_buffer(&b.packed, 0, bytemuck::cast_slice(&pack_batchnorm(&p.gamma, &p.beta, &p.mean, &p.var)));
                    q.write_buffer(&b.running, 0, bytemuck::cast_slice(&running_coefficients(p, bn.eps)));
                }
                Op::Dense { .. } => {
                    q.write_buffer(&self.dense.0, 0, bytemuck::cast_slice(&weights.dense.weight));
                    q.write_buffer(&self.dense.1, 0, bytemuck::cast_slice(&weights.dense.bias));
                }
                _ => {}
            }
        }
    }

    /// Sets tensor `t` (the input, or one of [`GpuTrainPlan::boundary`])
    /// for a batch of `n` examples, one after another.
    pub fn set(&mut self, t: TensorId, n: usize, data: &[f32]) -> Result<()> {
        self.sized(n)?;
        let len = n * self.plan.shape(t).len();
        if data.len() < len {
            bail!(BadInput, "{} values for {n} examples of {} each", data.len(), self.plan.shape(t).len());
        }
        let b = self.batch.as_ref().expect("sized above");
        self.gpu.queue.write_buffer(&b.acts[t], 0, bytemuck::cast_slice(&data[..len]));
        Ok(())
    }

    /// The buffers and dispatches for batches of `n` (kept while `n` stays).
    fn sized(&mut self, n: usize) -> Result<()> {
        if self.batch.as_ref().is_some_and(|b| b.n == n) {
            return Ok(());
        }
        // The old batch's buffers go first: two batches of activations may not fit.
        // (A failed allocation surfaces at the next readback, as the device's error.)
        self.batch = None;
        self.batch = Some(self.build(n)?);
        Ok(())
    }

    fn build(&self, n: usize) -> Result<Batch> {
        let (plan, part, k, device) = (&self.plan, &self.part, &self.kernels, &self.gpu.device);
        let first = part.first;
        let batch_bn = self.config.bn == BnMode::Batch;
        let acts: Vec<OwnedBuffer> = plan.tensors.iter().map(|t| buffer(device, &t.name, n * t.shape.len())).collect();
        let grads: Vec<Option<OwnedBuffer>> =
            plan.tensors.iter().enumerate().map(|(i, t)| part.needs_grad(i).then(|| buffer(device, &format!("∂{}", t.name), n * t.shape.len()))).collect();
        let mut keep = Vec::new();
        let mut forward = Vec::new();
        let mut batch_stats = HashMap::new();
        // Per batchnorm op: the coefficients its training forward pass used (the backward pass reads them).
        let mut train_coef: HashMap<usize, wgpu::Buffer> = HashMap::new();
        let mut rb = Readback::default();
        let mut copies: Vec<(wgpu::Buffer, usize, usize)> = Vec::new();
        let mut slot = |rb: &mut Readback, buf: &wgpu::Buffer, len: usize| {
            let at = rb.floats;
            copies.push((buf.clone(), at, len));
            rb.floats += len;
            at
        };
        for (oi, op) in plan.ops.iter().enumerate() {
            let label = op.label(&plan.tensors);
            let d = match op {
                Op::Conv(c) => {
                    let (i, o) = (plan.shape(c.input), plan.shape(c.output));
                    let p = &self.convs[&c.conv.name];
                    let b = ConvBuffers { input: &acts[c.input], weight: &p.weight, bias: p.bias.as_deref(), residual: None, output: &acts[c.output], main_out: None, fold: None, f32_input: false };
                    vec![k.conv2d_batch(&label, n, ConvParams::of(&c.conv, i, o, false), &b)?]
                }
                Op::BatchNorm { bn, input, output } => {
                    let s = plan.shape(*input);
                    let params = &self.bns[&bn.name];
                    let (len, plane) = (n * s.len(), s.h * s.w);
                    if oi >= first && batch_bn {
                        let coef = buffer(device, "bn batch coefficients", 4 * s.c);
                        let moments = buffer(device, "bn moments", 2 * s.c);
                        let stats = k.batchnorm_stats(&label, n, s.c, plane, bn.eps, &acts[*input], &params.packed, &coef, &moments)?;
                        batch_stats.insert(oi, vec![stats, k.scale_shift(&label, len, s.c, plane, &acts[*input], &coef, &acts[*output])?]);
                        let at = slot(&mut rb, &moments, 2 * s.c);
                        rb.moments.push((oi, at));
                        train_coef.insert(oi, coef.0.clone());
                        keep.extend([coef, moments]);
                    } else {
                        train_coef.insert(oi, params.running.0.clone());
                    }
                    vec![k.scale_shift(&label, len, s.c, plane, &acts[*input], &params.running, &acts[*output])?]
                }
                Op::Relu { input, output } => vec![k.relu(&label, n * plan.shape(*input).len(), &acts[*input], &acts[*output])?],
                Op::AddRelu { main, shortcut, output } => vec![k.add_relu(&label, n * plan.shape(*output).len(), &acts[*main], &acts[*shortcut], &acts[*output])?],
                Op::MaxPool { pool, input, output } => {
                    let mut p = PoolParams::of(pool, plan.shape(*input), plan.shape(*output));
                    p.channels *= n as u32;
                    vec![k.maxpool(&label, p, &acts[*input], &acts[*output])?]
                }
                Op::GlobalAvgPool { input, output } => {
                    let s = plan.shape(*input);
                    vec![k.global_avg_pool(&label, n * s.c, s.h * s.w, &acts[*input], &acts[*output])?]
                }
                Op::Dense { input, output } => {
                    let (i, o) = (plan.shape(*input).len(), plan.shape(*output).len());
                    vec![k.dense_batch(&label, n, i, o, &acts[*input], &self.dense.0, &self.dense.1, &acts[*output])?]
                }
                // The probabilities are not needed to train: the loss reads the logits.
                Op::Softmax { .. } => Vec::new(),
            };
            forward.push(d);
        }

        // The loss and the gradient of the logits.
        let classes = plan.shape(plan.logits).len();
        let labels = buffer(device, "labels", n);
        let loss_buf = buffer(device, "loss", n);
        let dlogits = grads[plan.logits].as_ref().expect("the logits always have a gradient");
        let loss = vec![k.cross_entropy("cross-entropy", n, classes, &acts[plan.logits], &labels, &loss_buf, dlogits)?];
        rb.loss = slot(&mut rb, &loss_buf, n);
        rb.logits = slot(&mut rb, &acts[plan.logits], n * classes);
        keep.push(loss_buf);

        // The backward pass, ops in reverse from the logits to the first trainable one.
        let blocks_inputs: Vec<TensorId> = plan.blocks.iter().filter_map(|b| b.input).collect();
        // ‖F(x)‖ and ‖x‖ of the residual blocks that train, from the forward pass's tensors.
        let residuals: Vec<TensorId> =
            plan.blocks.iter().filter(|b| b.ops.start >= first).filter_map(|b| b.residual).flat_map(|r| [r.main, r.shortcut]).collect();
        let chunks = |t: TensorId| (n * plan.shape(t).len()).div_ceil(Kernels::SQUARES_CHUNK);
        let norms_len: usize = blocks_inputs.iter().filter(|&&t| part.needs_grad(t)).map(|&t| chunks(t)).sum::<usize>() + residuals.iter().map(|&t| chunks(t)).sum::<usize>();
        let norms = buffer(device, "gradient norms", norms_len);
        let mut norms_at = 0;
        let mut backward = Vec::new();
        for &t in &residuals {
            backward.push(k.sum_squares(&format!("‖{}‖", plan.tensors[t].name), n * plan.shape(t).len(), &acts[t], &norms, norms_at)?);
            rb.act_norms.push((t, norms_at, chunks(t)));
            norms_at += chunks(t);
        }
        let mut scratch_len = 0;
        for op in &plan.ops[first..] {
            if let Op::Conv(c) = op {
                let (o, kk) = (plan.shape(c.output), c.conv.in_channels * c.conv.kernel.0 * c.conv.kernel.1);
                let slices = Kernels::weight_grad_slices(kk, o.c, n * o.h * o.w);
                if slices > 1 {
                    scratch_len = scratch_len.max(slices * kk * o.c);
                }
            }
        }
        let scratch = buffer(device, "weight gradient slices", scratch_len);
        let grad = |t: TensorId| grads[t].as_deref();
        for (oi, op) in plan.ops.iter().enumerate().skip(first).rev() {
            if matches!(op, Op::Softmax { .. }) {
                continue;
            }
            let label = format!("∂ {}", op.label(&plan.tensors));
            let out = op.output();
            let dy = grad(out).expect("a trainable op's output has a gradient");
            if blocks_inputs.contains(&out) {
                let len = n * plan.shape(out).len();
                backward.push(k.sum_squares(&label, len, dy, &norms, norms_at)?);
                let slices = len.div_ceil(Kernels::SQUARES_CHUNK);
                rb.norms.push((out, norms_at, slices));
                norms_at += slices;
            }
            match op {
                Op::Conv(c) => {
                    let (i, o) = (plan.shape(c.input), plan.shape(c.output));
                    let p = ConvParams::of(&c.conv, i, o, false);
                    let kk = c.conv.in_channels * c.conv.kernel.0 * c.conv.kernel.1;
                    let dw = buffer(device, "∂ kernel", kk * o.c);
                    backward.push(k.conv2d_backward_weight(&label, n, p, &acts[c.input], dy, &dw, Some(&scratch))?);
                    let at = slot(&mut rb, &dw, kk * o.c);
                    let bias_at = match &self.convs[&c.conv.name].bias {
                        Some(_) => {
                            let db = buffer(device, "∂ bias", o.c);
                            backward.push(k.channel_sums(&label, n, o.c, o.h * o.w, dy, &db)?);
                            let at = slot(&mut rb, &db, o.c);
                            keep.push(db);
                            Some(at)
                        }
                        None => None,
                    };
                    rb.convs.push((c.conv.name.clone(), o.c, at, bias_at));
                    keep.push(dw);
                    if let Some(dx) = grad(c.input) {
                        backward.push(k.conv2d_backward_input(&label, n, p, dy, &self.convs[&c.conv.name].weight, dx)?);
                    }
                }
                Op::BatchNorm { bn, input, .. } => {
                    let s = plan.shape(*input);
                    let dparams = buffer(device, "∂ γ β", 2 * s.c);
                    backward.push(k.batchnorm_backward(&label, n, s.c, s.h * s.w, batch_bn, &acts[*input], dy, &train_coef[&oi], &dparams, grad(*input))?);
                    let at = slot(&mut rb, &dparams, 2 * s.c);
                    rb.bns.push((bn.name.clone(), at));
                    keep.push(dparams);
                }
                Op::Relu { input, output } => {
                    if let Some(dx) = grad(*input) {
                        backward.push(k.relu_backward(&label, n * plan.shape(*output).len(), &acts[*output], dy, dx, None)?);
                    }
                }
                Op::AddRelu { main, shortcut, output } => {
                    let mut dx = [grad(*main), grad(*shortcut)].into_iter().flatten();
                    if let Some(a) = dx.next() {
                        backward.push(k.relu_backward(&label, n * plan.shape(*output).len(), &acts[*output], dy, a, dx.next())?);
                    }
                }
                Op::MaxPool { pool, input, output } => {
                    if let Some(dx) = grad(*input) {
                        let mut p = PoolParams::of(pool, plan.shape(*input), plan.shape(*output));
                        p.channels *= n as u32;
                        backward.push(k.maxpool_backward(&label, p, &acts[*input], dy, dx)?);
                    }
                }
                Op::GlobalAvgPool { input, .. } => {
                    if let Some(dx) = grad(*input) {
                        let s = plan.shape(*input);
                        backward.push(k.global_avg_pool_backward(&label, n * s.c, s.h * s.w, dy, dx)?);
                    }
                }
                Op::Dense { input, output } => {
                    let (i, o) = (plan.shape(*input).len(), plan.shape(*output).len());
                    let (dw, db) = (buffer(device, "∂ dense weight", i * o), buffer(device, "∂ dense bias", o));
                    backward.push(k.dense_backward(&label, n, i, o, &acts[*input], &self.dense.0, dy, &dw, &db, grad(*input))?);
                    rb.dense = slot(&mut rb, &dw, i * o);
                    slot(&mut rb, &db, o);
                    keep.push(dw);
                    keep.push(db);
                }
                Op::Softmax { .. } => {}
            }
        }
        if norms_len > 0 {
            slot(&mut rb, &norms, norms_len);
        }
        keep.push(norms);
        keep.push(scratch);
        let staging = OwnedBuffer(device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("training readback"),
            size: (rb.floats.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }));
        // The norms were pushed last: their offsets start there.
        let norms_base = rb.floats - norms_len;
        for e in rb.norms.iter_mut().chain(&mut rb.act_norms) {
            e.1 += norms_base;
        }
        Ok(Batch { n, acts, grads, forward, batch_stats, loss, backward, labels, copies, readback: rb, staging, _keep: keep })
    }

    fn batch(&self) -> Result<&Batch> {
        match &self.batch {
            Some(b) => Ok(b),
            None => bail!("no batch was set"),
        }
    }

    /// Records ops `range` into `enc`: `training`, the trainable batch-mode
    /// batchnorms on batch statistics; else everything as in inference.
    fn record(&self, enc: &mut wgpu::CommandEncoder, range: std::ops::Range<usize>, training: bool) -> Result<()> {
        let b = self.batch()?;
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("training forward"), timestamp_writes: None });
        for oi in range {
            let ds = if training { b.batch_stats.get(&oi).unwrap_or(&b.forward[oi]) } else { &b.forward[oi] };
            for d in ds {
                d.record(&mut pass);
            }
        }
        Ok(())
    }

    /// The outputs of the frozen ops that the trainable ones read, for the
    /// batch set: runs only the frozen ops. One vector per boundary tensor.
    pub async fn frozen_outputs(&mut self) -> Result<Vec<Vec<f32>>> {
        let b = self.batch()?;
        let n = b.n;
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        self.record(&mut enc, 0..self.part.first, false)?;
        let lens: Vec<usize> = self.part.boundary.iter().map(|&t| n * self.plan.shape(t).len()).collect();
        let bufs: Vec<wgpu::Buffer> = self.part.boundary.iter().map(|&t| b.acts[t].0.clone()).collect();
        let bytes = self.read(enc, &bufs, &lens).await?;
        Ok(split(&bytes, &lens))
    }

    /// The logits of the batch set, ops from `from` on as in inference.
    pub async fn logits(&mut self, from: usize) -> Result<Vec<f32>> {
        let b = self.batch()?;
        let len = b.n * self.plan.shape(self.plan.logits).len();
        let logits = b.acts[self.plan.logits].0.clone();
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        self.record(&mut enc, from..self.plan.ops.len(), false)?;
        let bytes = self.read(enc, &[logits], &[len]).await?;
        Ok(split(&bytes, &[len]).remove(0))
    }

    /// Copies `lens[i]` floats of each of `bufs` to a staging buffer after
    /// `enc`'s work, submits, and reads them back.
    async fn read(&self, mut enc: wgpu::CommandEncoder, bufs: &[wgpu::Buffer], lens: &[usize]) -> Result<Vec<u8>> {
        let total: usize = lens.iter().sum();
        let staging = OwnedBuffer(self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: (total.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        }));
        let mut at = 0;
        for (b, &len) in bufs.iter().zip(lens) {
            enc.copy_buffer_to_buffer(b, 0, &staging, (at * 4) as u64, (len * 4) as u64);
            at += len;
        }
        let scopes = self.gpu.error_scopes();
        self.gpu.queue.submit([enc.finish()]);
        let bytes = map_bytes(&self.gpu, &staging, (total * 4) as u64).await;
        scopes.check("training on the GPU").await?;
        bytes
    }

    /// A forward pass from op `from` (the batch set there with
    /// [`GpuTrainPlan::set`]) with the trainable batchnorms in the
    /// configured mode, the mean cross-entropy against `labels`, and the
    /// backward pass: the loss, the logits (`N×classes`) and every
    /// trainable tensor's gradient. `momentum`: the running statistics of
    /// batch-mode batchnorms follow the batch's (in `weights`).
    pub async fn step(&mut self, weights: &mut Weights, from: usize, labels: &[usize], momentum: Option<f32>) -> Result<(f64, Vec<f32>, Grads)> {
        let b = self.batch()?;
        let n = b.n;
        self.part.check_batch(&self.plan, self.config.bn, n)?;
        let classes = weights.model.classes();
        if labels.len() != n {
            bail!(BadInput, "{} labels for a batch of {n}", labels.len());
        }
        if let Some(&y) = labels.iter().find(|&&y| y >= classes) {
            bail!(BadInput, "label {y} is out of range: the network has {classes} classes (0 to {})", classes - 1);
        }
        let l: Vec<u32> = labels.iter().map(|&y| y as u32).collect();
        self.gpu.queue.write_buffer(&b.labels, 0, bytemuck::cast_slice(&l));
        let mut enc = self.gpu.device.create_command_encoder(&Default::default());
        for g in b.grads.iter().flatten() {
            enc.clear_buffer(g, 0, None);
        }
        self.record(&mut enc, from..self.plan.ops.len(), true)?;
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("training backward"), timestamp_writes: None });
            for d in b.loss.iter().chain(&b.backward) {
                d.record(&mut pass);
            }
        }
        for (buf, at, len) in &b.copies {
            enc.copy_buffer_to_buffer(buf, 0, &b.staging, (*at * 4) as u64, (*len * 4) as u64);
        }
        let scopes = self.gpu.error_scopes();
        self.gpu.queue.submit([enc.finish()]);
        let bytes = map_bytes(&self.gpu, &b.staging, (b.readback.floats * 4) as u64).await;
        scopes.check("training on the GPU").await?;
        let bytes = bytes?;
        let f = floats(&bytes);
        let rb = &b.readback;
        let loss = f[rb.loss..rb.loss + n].iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let logits = f[rb.logits..rb.logits + n * classes].to_vec();
        let mut grads = Grads::default();
        for (name, o, at, bias) in &rb.convs {
            let (o, len) = (*o, weights.convs[name].weight.len());
            grads.convs.insert(name.clone(), (conv_weights_oihw(&f[*at..*at + len], o), bias.map(|b| f[b..b + o].to_vec())));
        }
        for (name, at) in &rb.bns {
            let c = weights.bns[name].gamma.len();
            grads.bns.insert(name.clone(), (f[*at..*at + c].to_vec(), f[*at + c..*at + 2 * c].to_vec()));
        }
        // The dense layer always trains.
        let (w, bl) = (weights.dense.weight.len(), weights.dense.bias.len());
        grads.dense = (f[rb.dense..rb.dense + w].to_vec(), f[rb.dense + w..rb.dense + w + bl].to_vec());
        let norm = |&(t, at, len): &(TensorId, usize, usize)| (t, f[at..at + len].iter().map(|&v| v as f64).sum::<f64>().sqrt());
        let norms = rb.norms.iter().map(norm).collect();
        let act_norms = rb.act_norms.iter().map(norm).collect();
        if let Some(k) = momentum {
            // The running variance follows the unbiased batch variance, as on the CPU.
            for &(oi, at) in &rb.moments {
                let Op::BatchNorm { bn, input, .. } = &self.plan.ops[oi] else { continue };
                let s = self.plan.shape(*input);
                let count = (n * s.h * s.w) as f64;
                let p = weights.bns.get_mut(&bn.name).expect("every batchnorm has weights");
                let k = k as f64;
                for c in 0..s.c {
                    let (m, v) = (f[at + 2 * c] as f64, f[at + 2 * c + 1] as f64);
                    p.mean[c] = ((1.0 - k) * p.mean[c] as f64 + k * m) as f32;
                    p.var[c] = ((1.0 - k) * p.var[c] as f64 + k * v * count / (count - 1.0)) as f32;
                }
            }
        }
        self.grad_norms = norms;
        self.act_norms = act_norms;
        Ok((loss, logits, grads))
    }
}

/// Little-endian f32 bytes (a byte vector need not be aligned for a cast).
fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Little-endian f32 bytes cut into vectors of `lens`.
fn split(bytes: &[u8], lens: &[usize]) -> Vec<Vec<f32>> {
    let f = floats(bytes);
    let mut at = 0;
    lens.iter()
        .map(|&len| {
            at += len;
            f[at - len..at].to_vec()
        })
        .collect()
}

/// [`super::gradients`] on the GPU: the loss, logits and gradients of one batch.
#[allow(clippy::too_many_arguments)]
pub async fn gradients(gpu: Rc<Gpu>, weights: &Weights, x: &[f32], n: usize, height: usize, width: usize, labels: &[usize], config: TrainConfig) -> Result<(f64, Vec<f32>, Grads)> {
    let mut w = weights.clone();
    let mut tp = GpuTrainPlan::new(gpu, &w, height, width, config)?;
    let input = tp.plan.input;
    if x.len() != n * tp.plan.shape(input).len() {
        bail!(BadInput, "the input holds {} values, not {n} examples of 3×{height}×{width}", x.len());
    }
    tp.set(input, n, x)?;
    tp.step(&mut w, 0, labels, None).await
}
