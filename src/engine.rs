//! The engine: a plan instantiated on a GPU. Weights are uploaded once;
//! buffers, bind groups and dispatches are made once per input size; a frame
//! is one command buffer (optional preprocessing, every layer, a copy of the
//! logits and probabilities to a staging buffer) and one small readback.

use std::collections::HashMap;
use std::rc::Rc;

use crate::gpu::{map_bytes, map_into, Gpu};
use crate::kernels::{conv_weights_km, gemm_splits, pack_batchnorm, storage_buffer, storage_buffer_as, ConvBuffers, ConvParams, Dispatch, Kernels, PoolParams, Precision};
use crate::model::{Model, Shape};
use crate::plan::{BlockInfo, Mode, Op, Plan};
use crate::preprocess::Preprocess;
use crate::weights::Weights;
use crate::{bail, Error, Result};

/// The parameters as GPU buffers, in the layout a mode's kernels read.
struct GpuParams {
    /// Conv name → (packed weights, bias). Folded with the BN in fast mode.
    convs: HashMap<String, (wgpu::Buffer, Option<wgpu::Buffer>)>,
    /// BN name → packed (gamma, beta, mean, var); inspect mode only.
    bns: HashMap<String, wgpu::Buffer>,
    dense_w: wgpu::Buffer,
    dense_b: wgpu::Buffer,
}

impl GpuParams {
    fn upload(device: &wgpu::Device, w: &Weights, mode: Mode, precision: Precision) -> GpuParams {
        let mut convs = HashMap::new();
        let mut bns = HashMap::new();
        for cb in w.model.conv_bns() {
            let c = &cb.conv;
            let p = &w.convs[&c.name];
            let bn = &w.bns[&cb.bn.name];
            let (o, i, (kh, kw)) = (c.out_channels, c.in_channels, c.kernel);
            // Fast mode folds the BN into a copy; inspect mode uploads the weights as they are.
            let folded;
            let (weight, bias): (&[f32], Option<Vec<f32>>) = match mode {
                Mode::Fast => {
                    // y = (conv(x) + b - mean) · γ/√(var+ε) + β  =  conv'(x) + b'
                    let per = i * kh * kw;
                    let mut wt = p.weight.clone();
                    let mut bias = vec![0.0; o];
                    for co in 0..o {
                        let scale = bn.gamma[co] / (bn.var[co] + cb.bn.eps).sqrt();
                        wt[co * per..(co + 1) * per].iter_mut().for_each(|v| *v *= scale);
                        let b0 = p.bias.as_ref().map_or(0.0, |b| b[co]);
                        bias[co] = (b0 - bn.mean[co]) * scale + bn.beta[co];
                    }
                    folded = wt;
                    (&folded, Some(bias))
                }
                Mode::Inspect => {
                    bns.insert(cb.bn.name.clone(), storage_buffer(device, &cb.bn.name, &pack_batchnorm(&bn.gamma, &bn.beta, &bn.mean, &bn.var)));
                    (&p.weight, p.bias.clone())
                }
            };
            let wb = storage_buffer_as(device, &c.name, &conv_weights_km(weight, o), precision);
            let bb = bias.map(|b| storage_buffer(device, &format!("{}.bias", c.name), &b));
            convs.insert(c.name.clone(), (wb, bb));
        }
        GpuParams {
            convs,
            bns,
            dense_w: storage_buffer(device, "dense.weight", &w.dense.weight),
            dense_b: storage_buffer(device, "dense.bias", &w.dense.bias),
        }
    }
}

/// Which conv kernels fast mode runs (inspect mode always uses the direct one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvKernels {
    /// The direct kernel everywhere (the reference point for benchmarks).
    Direct,
    /// The tiled implicit GEMM where its tiles fill, with K split so a layer
    /// has about `split_target` workgroups (0: never split) in slices of at
    /// least `min_slice` (see [`crate::kernels::gemm_splits`]).
    Gemm { split_target: usize, min_slice: usize },
}

impl ConvKernels {
    /// The default for an adapter: split-K only pays on a GPU with many cores;
    /// a CPU adapter (lavapipe, SwiftShader) runs the plain GEMM.
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> ConvKernels {
        let split_target = if info.device_type == wgpu::DeviceType::Cpu { 0 } else { 256 };
        ConvKernels::Gemm { split_target, min_slice: 128 }
    }

    /// `direct`, `gemm` (no split) or `splitk[:N[:S]]` (about N workgroups per
    /// layer, 256 by default; K slices of at least S, 128 by default).
    pub fn parse(s: &str) -> Result<ConvKernels> {
        let mut parts = s.split(':');
        let kind = parts.next().unwrap_or_default();
        let mut num = |default: usize| -> Result<usize> {
            match parts.next() {
                None => Ok(default),
                Some(n) => n.parse().map_err(|_| Error::new(format!("bad number `{n}` in conv kernels `{s}`"))),
            }
        };
        let k = match kind {
            "direct" => ConvKernels::Direct,
            "gemm" => ConvKernels::Gemm { split_target: 0, min_slice: 128 },
            "splitk" => ConvKernels::Gemm { split_target: num(256)?, min_slice: num(128)? },
            _ => bail!("unknown conv kernels `{s}`: use direct, gemm or splitk[:N[:S]]"),
        };
        if parts.next().is_some() {
            bail!("too many parts in conv kernels `{s}`");
        }
        Ok(k)
    }

    /// The form [`ConvKernels::parse`] reads.
    pub fn name(&self) -> String {
        match *self {
            ConvKernels::Direct => "direct".into(),
            ConvKernels::Gemm { split_target: 0, .. } => "gemm".into(),
            ConvKernels::Gemm { split_target, min_slice } => format!("splitk:{split_target}:{min_slice}"),
        }
    }
}

/// Buffers and dispatches for one input size.
struct Frame {
    plan: Plan,
    slots: Vec<wgpu::Buffer>,
    dispatches: Vec<Dispatch>,
    /// Identity blocks only: relu(input) → output, recorded instead of the
    /// block's ops when the block is switched off (the main path skipped).
    bypass: Vec<Option<Dispatch>>,
    /// Per-frame statistics: each block's channel means and, for residual
    /// blocks, ‖F(x)‖² and ‖shortcut‖².
    stats: Vec<Dispatch>,
    means: Vec<Option<wgpu::Buffer>>,
    norms: wgpu::Buffer,
    /// Consecutive blocks of one stage, each run as one timed compute pass.
    stages: Vec<(String, std::ops::Range<usize>)>,
    timer: Option<(wgpu::QuerySet, wgpu::Buffer)>,
    layout: StagingLayout,
    /// Logits, probabilities, stats and timestamps, copied here every frame.
    staging: wgpu::Buffer,
    /// RGBA8 source pixels and the preprocessing dispatch, made on first use
    /// and remade only when a larger image arrives.
    image: Option<ImageInput>,
    /// Readback buffers for `read`, made on first use of each size.
    read_staging: HashMap<usize, wgpu::Buffer>,
    /// Partial sums of split-K convs (one buffer, reused by every such layer).
    _scratch: Option<wgpu::Buffer>,
    /// Tensors stored as f32 whatever the precision: the pooled vector, logits, probabilities.
    f32_tensors: std::collections::HashSet<usize>,
    /// One timestamp pair per op, for [`Engine::profile_layers`]; made on first use.
    layer_timer: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
}

struct ImageInput {
    pixels: wgpu::Buffer,
    capacity: usize,
    dispatch: Dispatch,
}

/// What one frame produced.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub logits: Vec<f32>,
    pub probs: Vec<f32>,
}

/// What one frame measured besides its output, per block of
/// [`Engine::blocks`] (for the head, its means are the pooled vector).
#[derive(Debug, Clone, Default)]
pub struct FrameStats {
    /// Mean of each channel of the block's output.
    pub channel_means: Vec<Vec<f32>>,
    /// Residual blocks: (‖F(x)‖, ‖x‖), main path against shortcut (fast
    /// mode's fused last conv writes F(x) aside for this).
    pub norms: Vec<Option<(f32, f32)>>,
    /// GPU time per stage (`stem`, `stage1`…, `head`) in milliseconds, where
    /// the adapter has timestamp queries.
    pub stage_ms: Option<Vec<(String, f64)>>,
}

/// Byte offsets in the per-frame staging buffer.
#[derive(Debug, Clone, Default)]
struct StagingLayout {
    classes: usize,
    /// Per block: (offset in f32s, channels).
    means: Vec<Option<(usize, usize)>>,
    norms_at: usize,
    blocks: usize,
    floats: usize,
    timestamps: usize,
}

impl Output {
    /// The `k` most probable classes, highest first: (index, probability).
    pub fn top(&self, k: usize) -> Vec<(usize, f32)> {
        let mut idx: Vec<usize> = (0..self.probs.len()).collect();
        idx.sort_by(|&a, &b| self.logits[b].total_cmp(&self.logits[a]).then(a.cmp(&b)));
        idx.into_iter().take(k).map(|i| (i, self.probs[i])).collect()
    }
}

pub struct Engine {
    gpu: Rc<Gpu>,
    kernels: Kernels,
    model: Model,
    mode: Mode,
    params: GpuParams,
    frame: Frame,
    /// Dense weights on the CPU, for class activation maps.
    dense_weight: Vec<f32>,
    disabled: std::collections::HashSet<String>,
    stats: FrameStats,
    /// Whether frames compute channel means and residual norms.
    with_stats: bool,
    /// Whether the frame last submitted computed them (what `output` reads).
    submitted_stats: std::cell::Cell<bool>,
    conv: ConvKernels,
    /// The last frame's readback and output, kept so a frame allocates nothing.
    readback: Vec<u8>,
    out: Output,
    /// The input tensor converted to the engine's precision (f16), kept.
    upload: Vec<u8>,
}

impl Engine {
    /// Uploads the weights and plans for a `height`×`width` input (f32).
    pub async fn new(gpu: Rc<Gpu>, weights: &Weights, mode: Mode, height: usize, width: usize) -> Result<Engine> {
        Self::with_precision(gpu, weights, mode, Precision::F32, height, width).await
    }

    /// [`Engine::new`] storing activations and conv weights in `precision`:
    /// f16 is a fast-mode path and needs the adapter's `shader-f16`.
    pub async fn with_precision(gpu: Rc<Gpu>, weights: &Weights, mode: Mode, precision: Precision, height: usize, width: usize) -> Result<Engine> {
        if precision == Precision::F16 {
            if mode != Mode::Fast {
                bail!("f16 is a fast-mode path; inspect mode computes and keeps everything in f32");
            }
            if !gpu.features.contains(wgpu::Features::SHADER_F16) {
                bail!("this GPU adapter ({}) has no shader-f16: use f32", gpu.adapter_name());
            }
        }
        let plan = Plan::new(&weights.model, height, width, mode)?;
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let kernels = Kernels::with_precision(&gpu.device, precision);
        let params = GpuParams::upload(&gpu.device, weights, mode, precision);
        let conv = ConvKernels::for_adapter(&gpu.adapter_info);
        let frame = Frame::new(&gpu, &kernels, &params, &weights.model, plan, conv)?;
        check_scopes(oom, scope).await?;
        let dense_weight = weights.dense.weight.clone();
        Ok(Engine {
            gpu,
            kernels,
            model: weights.model.clone(),
            mode,
            params,
            frame,
            dense_weight,
            disabled: Default::default(),
            stats: Default::default(),
            with_stats: true,
            submitted_stats: std::cell::Cell::new(false),
            conv,
            readback: Vec::new(),
            out: Output::default(),
            upload: Vec::new(),
        })
    }

    pub fn precision(&self) -> Precision {
        self.kernels.precision()
    }

    /// Bytes per value of a tensor: activations take the engine's precision;
    /// the pooled vector, logits and probabilities are always f32.
    fn value_bytes(&self, tensor: usize) -> usize {
        if self.frame.f32_tensors.contains(&tensor) {
            4
        } else {
            self.precision().bytes()
        }
    }

    /// Reads `(first value, count)` ranges of a tensor of the last frame,
    /// decoded to f32. Copies move whole 4-byte words, so f16 ranges are
    /// widened to word boundaries and trimmed after.
    async fn read_ranges(&mut self, tensor: usize, ranges: &[(usize, usize)]) -> Result<Vec<f32>> {
        let vb = self.value_bytes(tensor);
        let mut copies = Vec::with_capacity(ranges.len());
        let mut at = 0u64;
        for &(first, count) in ranges {
            let (start, end) = (first * vb, (first + count) * vb);
            let (a, b) = (start / 4 * 4, end.div_ceil(4) * 4);
            copies.push((a as u64, at, (b - a) as u64, start - a));
            at += (b - a) as u64;
        }
        let f = &mut self.frame;
        let device = &self.gpu.device;
        let words = (at as usize).div_ceil(4);
        let staging = f.read_staging.entry(words).or_insert_with(|| read_buffer(device, words));
        let src = &f.slots[f.plan.slot_of[tensor]];
        let mut enc = device.create_command_encoder(&Default::default());
        for &(from, to, size, _) in &copies {
            enc.copy_buffer_to_buffer(src, from, staging, to, size);
        }
        self.gpu.queue.submit([enc.finish()]);
        let bytes = map_bytes(&self.gpu, staging, at).await?;
        let mut out = Vec::with_capacity(ranges.iter().map(|r| r.1).sum());
        for (&(_, count), &(_, to, _, skip)) in ranges.iter().zip(&copies) {
            let b = &bytes[to as usize + skip..to as usize + skip + count * vb];
            match vb {
                2 => out.extend(b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())),
                _ => out.extend(b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()))),
            }
        }
        Ok(out)
    }

    /// Chooses the fast mode's conv kernels (benchmarks compare them); re-plans.
    pub async fn set_conv_kernels(&mut self, conv: ConvKernels) -> Result<()> {
        self.conv = conv;
        let (h, w) = self.input_size();
        self.set_input_size(h, w).await
    }

    pub fn conv_kernels(&self) -> ConvKernels {
        self.conv
    }

    /// Switches the per-frame statistics (channel means, ‖F(x)‖ and ‖x‖ per
    /// block) on or off: off, a frame is the network alone, and
    /// [`Engine::stats`] keeps only the stage times.
    pub fn set_stats(&mut self, on: bool) {
        self.with_stats = on;
    }

    /// Re-plans for another input size, keeping the uploaded weights.
    pub async fn set_input_size(&mut self, height: usize, width: usize) -> Result<()> {
        let plan = Plan::new(&self.model, height, width, self.mode)?;
        let scope = self.gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let frame = Frame::new(&self.gpu, &self.kernels, &self.params, &self.model, plan, self.conv)?;
        check_scopes(oom, scope).await?;
        self.frame = frame;
        Ok(())
    }

    pub fn input_size(&self) -> (usize, usize) {
        let s = self.frame.plan.tensors[self.frame.plan.input].shape;
        (s.h, s.w)
    }

    pub fn model(&self) -> &Model {
        &self.model
    }
    pub fn mode(&self) -> Mode {
        self.mode
    }
    pub fn plan(&self) -> &Plan {
        &self.frame.plan
    }
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    /// Stem, residual blocks and head, in order.
    pub fn blocks(&self) -> &[BlockInfo] {
        &self.frame.plan.blocks
    }

    /// Runs the network on a `3×H×W` NCHW tensor at the planned size.
    pub fn run_tensor(&mut self, input: &[f32]) -> Result<()> {
        let plan = &self.frame.plan;
        let shape = plan.tensors[plan.input].shape;
        if input.len() != shape.len() {
            bail!("the input tensor has {} values, the network is planned for {}×{}×{} = {}", input.len(), shape.c, shape.h, shape.w, shape.len());
        }
        if input.iter().any(|v| !v.is_finite()) {
            bail!("the input tensor contains NaN or infinite values");
        }
        let buf = &self.frame.slots[plan.slot_of[plan.input]];
        match self.kernels.precision() {
            Precision::F32 => self.gpu.queue.write_buffer(buf, 0, bytemuck::cast_slice(input)),
            Precision::F16 => {
                self.upload.clear();
                self.upload.extend(input.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()));
                self.upload.resize(self.upload.len().div_ceil(4) * 4, 0);
                self.gpu.queue.write_buffer(buf, 0, &self.upload);
            }
        }
        self.submit(false);
        Ok(())
    }

    /// Runs the network on RGBA8 pixels (`width`×`height`, row-major), with
    /// preprocessing on the GPU; `pre`'s crop must be the planned input size.
    pub fn run_rgba(&mut self, pixels: &[u8], width: usize, height: usize, pre: &Preprocess) -> Result<()> {
        if pixels.len() != width * height * 4 {
            bail!("expected {}×{}×4 = {} bytes of RGBA pixels, got {}", width, height, width * height * 4, pixels.len());
        }
        if (pre.crop_h, pre.crop_w) != self.input_size() {
            bail!("the preprocessing crop {}×{} differs from the planned input {:?}", pre.crop_h, pre.crop_w, self.input_size());
        }
        let params = pre.params(width, height)?;
        let words = width * height;
        let max_binding = self.gpu.limits.max_storage_buffer_binding_size as usize;
        if words * 4 > max_binding {
            bail!("the image ({width}×{height}) is larger than this GPU can take in one buffer ({max_binding} bytes)");
        }
        let f = &mut self.frame;
        if f.image.as_ref().is_none_or(|i| i.capacity < words) {
            let pixels = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("pixels"),
                size: (words * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let out = &f.slots[f.plan.slot_of[f.plan.input]];
            let dispatch = self.kernels.preprocess(&self.gpu.device, "preprocess", params, &pixels, out);
            f.image = Some(ImageInput { pixels, capacity: words, dispatch });
        }
        let img = f.image.as_ref().unwrap();
        self.gpu.queue.write_buffer(&img.pixels, 0, pixels);
        self.gpu.queue.write_buffer(img.dispatch.params(), 0, bytemuck::bytes_of(&params));
        self.submit(true);
        Ok(())
    }

    fn submit(&self, with_preprocess: bool) {
        let f = &self.frame;
        let blocks = &f.plan.blocks;
        let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("frame") });
        for (si, (name, range)) in f.stages.iter().enumerate() {
            let timestamp_writes = f.timer.as_ref().map(|(set, _)| wgpu::ComputePassTimestampWrites {
                query_set: set,
                beginning_of_pass_write_index: Some(2 * si as u32),
                end_of_pass_write_index: Some(2 * si as u32 + 1),
            });
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(name), timestamp_writes });
            if si == 0 && with_preprocess {
                if let Some(img) = &f.image {
                    img.dispatch.record(&mut pass);
                }
            }
            for bi in range.clone() {
                match &f.bypass[bi] {
                    Some(bypass) if self.disabled.contains(&blocks[bi].name) => bypass.record(&mut pass),
                    _ => f.dispatches[blocks[bi].ops.clone()].iter().for_each(|d| d.record(&mut pass)),
                }
            }
        }
        self.submitted_stats.set(self.with_stats);
        if self.with_stats {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("stats"), timestamp_writes: None });
            f.stats.iter().for_each(|d| d.record(&mut pass));
        }
        let l = &f.layout;
        let n = (l.classes * 4) as u64;
        enc.copy_buffer_to_buffer(&f.slots[f.plan.slot_of[f.plan.logits]], 0, &f.staging, 0, n);
        enc.copy_buffer_to_buffer(&f.slots[f.plan.slot_of[f.plan.probs]], 0, &f.staging, n, n);
        if self.with_stats {
            for ((buf, at), b) in f.means.iter().zip(&l.means).zip(&f.plan.blocks) {
                let src = buf.as_ref().unwrap_or(&f.slots[f.plan.slot_of[b.tensor]]);
                if let Some((at, c)) = at {
                    enc.copy_buffer_to_buffer(src, 0, &f.staging, (*at * 4) as u64, (*c * 4) as u64);
                }
            }
            enc.copy_buffer_to_buffer(&f.norms, 0, &f.staging, (l.norms_at * 4) as u64, (l.blocks * 8) as u64);
        }
        if let Some((set, resolve)) = &f.timer {
            let count = 2 * f.stages.len() as u32;
            enc.resolve_query_set(set, 0..count, resolve, 0);
            enc.copy_buffer_to_buffer(resolve, 0, &f.staging, (l.floats * 4) as u64, (count * 8) as u64);
        }
        self.gpu.queue.submit([enc.finish()]);
    }

    /// Logits and probabilities of the last frame; also updates [`Engine::stats`].
    /// Reads into buffers kept from frame to frame: after the first frame of
    /// a size, this allocates nothing.
    pub async fn output(&mut self) -> Result<&Output> {
        let l = &self.frame.layout;
        map_into(&self.gpu, &self.frame.staging, (l.floats * 4 + l.timestamps * 8) as u64, &mut self.readback).await?;
        let float = |i: usize| f32::from_le_bytes(self.readback[4 * i..4 * i + 4].try_into().unwrap());
        let n = l.classes;
        self.out.logits.clear();
        self.out.logits.extend((0..n).map(float));
        self.out.probs.clear();
        self.out.probs.extend((n..2 * n).map(float));
        let st = &mut self.stats;
        let blocks = &self.frame.plan.blocks;
        st.channel_means.resize_with(blocks.len(), Vec::new);
        st.norms.resize(blocks.len(), None);
        for (i, b) in blocks.iter().enumerate() {
            let means = &mut st.channel_means[i];
            means.clear();
            if let (true, Some((at, c))) = (self.submitted_stats.get(), l.means[i]) {
                means.extend((at..at + c).map(float));
            }
            st.norms[i] = match (self.submitted_stats.get(), b.shortcut) {
                (true, Some(_)) => Some((float(l.norms_at + 2 * i).max(0.0).sqrt(), float(l.norms_at + 2 * i + 1).max(0.0).sqrt())),
                _ => None,
            };
        }
        if l.timestamps > 0 {
            let tick = |i: usize| u64::from_le_bytes(self.readback[l.floats * 4 + 8 * i..l.floats * 4 + 8 * i + 8].try_into().unwrap());
            let period = self.gpu.queue.get_timestamp_period() as f64;
            let stages = st.stage_ms.get_or_insert_with(Vec::new);
            if stages.len() != self.frame.stages.len() {
                *stages = self.frame.stages.iter().map(|(name, _)| (name.clone(), 0.0)).collect();
            }
            for (i, s) in stages.iter_mut().enumerate() {
                s.1 = tick(2 * i + 1).saturating_sub(tick(2 * i)) as f64 * period / 1e6;
            }
        } else {
            st.stage_ms = None;
        }
        Ok(&self.out)
    }

    /// Statistics of the last frame read by [`Engine::output`].
    pub fn stats(&self) -> &FrameStats {
        &self.stats
    }

    /// GPU time of every op of the network, in plan order, from timestamp
    /// queries: each op runs in its own compute pass on the current input
    /// (a split-K conv counts both its kernels). Pass boundaries add a little,
    /// so the sum exceeds a normal frame; this is for finding the slow layers.
    pub async fn profile_layers(&mut self) -> Result<Vec<(String, f64)>> {
        if !self.gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            bail!("this adapter has no timestamp queries");
        }
        let device = &self.gpu.device;
        let f = &mut self.frame;
        // The frame's dispatches, skipped blocks replaced as in `submit`.
        let order: Vec<&Dispatch> = f
            .plan
            .blocks
            .iter()
            .zip(&f.bypass)
            .flat_map(|(b, bypass)| match bypass {
                Some(d) if self.disabled.contains(&b.name) => vec![d],
                _ => f.dispatches[b.ops.clone()].iter().collect(),
            })
            .collect();
        let count = 2 * order.len() as u32;
        if count > wgpu::QUERY_SET_MAX_QUERIES {
            bail!("{} ops are more than one query set can time", order.len());
        }
        if f.layer_timer.as_ref().is_some_and(|(set, _, _)| set.count() < count) {
            f.layer_timer = None;
        }
        let (set, resolve, staging) = f.layer_timer.get_or_insert_with(|| {
            let set = device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("layer timer"), ty: wgpu::QueryType::Timestamp, count });
            let buffer = |usage| device.create_buffer(&wgpu::BufferDescriptor { label: Some("layer timestamps"), size: count as u64 * 8, usage, mapped_at_creation: false });
            (set, buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC), buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST))
        });
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("profile") });
        for (i, d) in order.iter().enumerate() {
            let timestamp_writes = Some(wgpu::ComputePassTimestampWrites {
                query_set: set,
                beginning_of_pass_write_index: Some(2 * i as u32),
                end_of_pass_write_index: Some(2 * i as u32 + 1),
            });
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(&d.label), timestamp_writes });
            d.record(&mut pass);
        }
        enc.resolve_query_set(set, 0..count, resolve, 0);
        enc.copy_buffer_to_buffer(resolve, 0, staging, 0, count as u64 * 8);
        self.gpu.queue.submit([enc.finish()]);
        let bytes = map_bytes(&self.gpu, staging, count as u64 * 8).await?;
        let period = self.gpu.queue.get_timestamp_period() as f64;
        let ticks: Vec<u64> = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        Ok(order.iter().enumerate().map(|(i, d)| (d.label.clone(), ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period / 1e6)).collect())
    }

    /// Switches an identity block's main path off (its output becomes its
    /// input) or back on. Convolutional blocks change the shape and cannot be skipped.
    pub fn set_block_enabled(&mut self, name: &str, enabled: bool) -> Result<()> {
        let b = self.frame.plan.blocks.iter().find(|b| b.name == name).ok_or_else(|| Error::new(format!("no block named `{name}`")))?;
        if b.kind != "identity" {
            bail!("only identity blocks can be skipped; `{name}` is a {} block", b.kind);
        }
        if enabled {
            self.disabled.remove(name);
        } else {
            self.disabled.insert(name.to_string());
        }
        Ok(())
    }

    pub fn block_enabled(&self, name: &str) -> bool {
        !self.disabled.contains(name)
    }

    /// Reads only some channels of a kept tensor: `len(channels)×H×W` values.
    pub async fn read_channels(&mut self, name: &str, channels: &[usize]) -> Result<(Shape, Vec<f32>)> {
        let f = &mut self.frame;
        let id = f.plan.tensor(name).filter(|&t| f.plan.tensors[t].keep).ok_or_else(|| Error::new(format!("no kept tensor named `{name}`")))?;
        let s = f.plan.tensors[id].shape;
        if let Some(c) = channels.iter().find(|&&c| c >= s.c) {
            bail!("`{name}` has {} channels; channel {c} does not exist", s.c);
        }
        if channels.is_empty() {
            return Ok((Shape::new(0, s.h, s.w), Vec::new()));
        }
        let plane = s.h * s.w;
        let ranges: Vec<(usize, usize)> = channels.iter().map(|&c| (c * plane, plane)).collect();
        let data = self.read_ranges(id, &ranges).await?;
        Ok((Shape::new(channels.len(), s.h, s.w), data))
    }

    /// Class activation map of class `class` for the last frame: the last
    /// block's features weighted by that class's dense weights, `(h, w, map)`.
    pub async fn class_activation_map(&mut self, class: usize) -> Result<(usize, usize, Vec<f32>)> {
        if class >= self.model.classes() {
            bail!("class {class} does not exist (the network has {})", self.model.classes());
        }
        let last = self.frame.plan.blocks.iter().rev().find(|b| b.kind != "head").map(|b| b.name.clone()).unwrap_or_default();
        let (s, feat) = self.read(&last).await?;
        let w = &self.dense_weight[class * s.c..(class + 1) * s.c];
        let plane = s.h * s.w;
        let mut cam = vec![0.0f32; plane];
        for (c, wc) in w.iter().enumerate() {
            for (m, v) in cam.iter_mut().zip(&feat[c * plane..(c + 1) * plane]) {
                *m += wc * v;
            }
        }
        Ok((s.h, s.w, cam))
    }

    /// Reads one tensor of the last frame by name: a block (`layer1.0`,
    /// `res2a`, `stem`), `input`, `pool`, `logits`, `probs`; in inspect mode
    /// also every conv and BN output and `<block>.main` / `<block>.shortcut`.
    pub async fn read(&mut self, name: &str) -> Result<(Shape, Vec<f32>)> {
        let f = &mut self.frame;
        let id = f.plan.tensor(name).ok_or_else(|| {
            let mode = if self.mode == Mode::Fast { " (in fast mode only block outputs are kept; inspect mode keeps every intermediate)" } else { "" };
            Error::new(format!("no tensor named `{name}`{mode}"))
        })?;
        let t = &f.plan.tensors[id];
        if !t.keep {
            bail!("`{name}` is not kept after the frame in {} mode", self.mode.as_str());
        }
        let shape = t.shape;
        let data = self.read_ranges(id, &[(0, shape.len())]).await?;
        Ok((shape, data))
    }
}

/// Which conv kernel a fast-mode layer gets: the tiled implicit GEMM for 64+
/// output channels and 16+ output pixels (on lavapipe it halves ResNet-18's
/// 7×7 stage 4 against the direct kernel, per `resnet bench`'s GPU stage
/// times); narrower layers waste most of a 64×64 tile and stay on the direct
/// kernel. Inspect mode keeps the direct kernel throughout.
fn use_gemm(c: &crate::model::ConvSpec, pixels: usize) -> bool {
    c.out_channels >= 64 && pixels >= 16 && c.in_channels * c.kernel.0 * c.kernel.1 >= 16
}

fn read_buffer(device: &wgpu::Device, len: usize) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("read staging"),
        size: (len.max(1) * 4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

async fn check_scopes(oom: wgpu::ErrorScopeGuard, validation: wgpu::ErrorScopeGuard) -> Result<()> {
    if let Some(e) = oom.pop().await {
        bail!("out of GPU memory while setting up the network: {e}");
    }
    if let Some(e) = validation.pop().await {
        bail!("GPU validation error while setting up the network: {e}");
    }
    Ok(())
}

impl Frame {
    fn new(gpu: &Gpu, k: &Kernels, params: &GpuParams, model: &Model, plan: Plan, conv: ConvKernels) -> Result<Frame> {
        let device = &gpu.device;
        let max_binding = gpu.limits.max_storage_buffer_binding_size as usize;
        let f32_tensors: std::collections::HashSet<usize> = plan
            .ops
            .iter()
            .filter_map(|op| match op {
                Op::GlobalAvgPool { output, .. } | Op::Dense { output, .. } | Op::Softmax { output, .. } => Some(*output),
                _ => None,
            })
            .collect();
        // Each slot holds the largest of its tensors, at that tensor's value size.
        let mut slot_bytes = vec![0usize; plan.slot_len.len()];
        for (t, tensor) in plan.tensors.iter().enumerate() {
            let vb = if f32_tensors.contains(&t) { 4 } else { k.precision().bytes() };
            let b = &mut slot_bytes[plan.slot_of[t]];
            *b = (*b).max((tensor.shape.len() * vb).div_ceil(4) * 4);
        }
        let slots: Vec<wgpu::Buffer> = slot_bytes
            .iter()
            .enumerate()
            .map(|(i, &bytes)| {
                if bytes > max_binding {
                    bail!("an activation of {bytes} bytes exceeds this GPU's largest storage binding ({max_binding} bytes): use a smaller input");
                }
                Ok(device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("slot {i}")),
                    size: bytes.max(4) as u64,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }))
            })
            .collect::<Result<_>>()?;
        let buf = |t: usize| &slots[plan.slot_of[t]];
        let shape = |t: usize| plan.tensors[t].shape;
        // Which kernel each conv gets, and split-K's slices where it pays.
        let choice = |op: &Op| -> Option<u32> {
            let Op::Conv { conv: cb, output, folded: true, .. } = op else { return None };
            let (c, o) = (&cb.conv, shape(*output));
            match conv {
                ConvKernels::Gemm { split_target, min_slice } if use_gemm(c, o.h * o.w) => Some(if split_target > 0 {
                    gemm_splits(c.out_channels, o.h * o.w, c.in_channels * c.kernel.0 * c.kernel.1, split_target, min_slice)
                } else {
                    1
                }),
                _ => None,
            }
        };
        let scratch_len = plan
            .ops
            .iter()
            .filter_map(|op| match (choice(op), op) {
                (Some(s), Op::Conv { output, .. }) if s > 1 => Some(s as usize * shape(*output).len()),
                _ => None,
            })
            .max();
        let scratch = match scratch_len {
            Some(len) if len * 4 > max_binding => bail!("split-K partial sums of {} bytes exceed this GPU's largest storage binding", len * 4),
            Some(len) => Some(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("split-K partial sums"),
                size: (len * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            })),
            None => None,
        };
        let mut dispatches = Vec::with_capacity(plan.ops.len());
        for op in &plan.ops {
            let label = op.label(&plan.tensors);
            let d = match op {
                Op::Conv { conv, input, output, residual, relu, main_out, .. } => {
                    let c = &conv.conv;
                    let (i, o) = (shape(*input), shape(*output));
                    let p = ConvParams {
                        in_c: i.c as u32,
                        in_h: i.h as u32,
                        in_w: i.w as u32,
                        out_c: o.c as u32,
                        out_h: o.h as u32,
                        out_w: o.w as u32,
                        k_h: c.kernel.0 as u32,
                        k_w: c.kernel.1 as u32,
                        stride: c.stride as u32,
                        pad_y: c.padding.0 as u32,
                        pad_x: c.padding.1 as u32,
                        flags: if *relu { ConvParams::RELU } else { 0 },
                        co_groups: 0,
                        k_split: 0,
                        _pad: [0; 2],
                    };
                    let (w, b) = &params.convs[&c.name];
                    let bufs = ConvBuffers {
                        input: buf(*input),
                        weight: w,
                        bias: b.as_ref(),
                        residual: residual.map(buf),
                        output: buf(*output),
                        main_out: main_out.map(buf),
                    };
                    // The label says which kernel and shape, for per-layer timings.
                    let shape = format!("{}×{}/{} {}→{} at {}×{}", c.kernel.0, c.kernel.1, c.stride, i.c, o.c, o.h, o.w);
                    match choice(op) {
                        Some(1) => k.conv2d_gemm(device, &format!("{label} [gemm {shape}]"), p, &bufs),
                        Some(splits) => k.conv2d_gemm_split(device, &format!("{label} [gemm {shape}, K in {splits}]"), p, &bufs, splits, scratch.as_ref()),
                        None => k.conv2d(device, &format!("{label} [direct {shape}]"), p, &bufs),
                    }
                }
                Op::BatchNorm { conv, input, output } => {
                    let s = shape(*input);
                    k.batchnorm(device, &label, s.c, s.h * s.w, conv.bn.eps, buf(*input), &params.bns[&conv.bn.name], buf(*output))
                }
                Op::Relu { input, output } => k.relu(device, &label, shape(*input).len(), buf(*input), buf(*output)),
                Op::AddRelu { main, shortcut, output } => k.add_relu(device, &label, shape(*main).len(), buf(*main), buf(*shortcut), buf(*output)),
                Op::MaxPool { pool, input, output } => {
                    let (i, o) = (shape(*input), shape(*output));
                    let p = PoolParams {
                        channels: i.c as u32,
                        in_h: i.h as u32,
                        in_w: i.w as u32,
                        out_h: o.h as u32,
                        out_w: o.w as u32,
                        kernel: pool.kernel as u32,
                        stride: pool.stride as u32,
                        pad: pool.padding as u32,
                    };
                    k.maxpool(device, &label, p, buf(*input), buf(*output))
                }
                Op::GlobalAvgPool { input, output } => {
                    let s = shape(*input);
                    k.global_avg_pool(device, &label, s.c, s.h * s.w, buf(*input), buf(*output))
                }
                Op::Dense { input, output } => {
                    k.dense(device, &label, model.head.in_features, model.head.classes, buf(*input), &params.dense_w, &params.dense_b, buf(*output))
                }
                Op::Softmax { input, output } => k.softmax(device, &label, model.head.classes, buf(*input), buf(*output)),
            };
            dispatches.push(d);
        }
        // Skipping an identity block: relu(0 + x) = x, recorded in its place.
        let bypass = plan
            .blocks
            .iter()
            .map(|b| match (b.kind, b.input) {
                ("identity", Some(x)) => Some(k.relu(device, &format!("skip {}", b.name), shape(x).len(), buf(x), buf(b.tensor))),
                _ => None,
            })
            .collect();

        // Statistics: channel means (the average-pool kernel) and residual norms.
        let nb = plan.blocks.len();
        let norms = storage_buffer(device, "norms", &vec![0.0; 2 * nb]);
        let mut stats = Vec::new();
        let mut means = Vec::new();
        let mut layout = StagingLayout { classes: model.classes(), blocks: nb, ..Default::default() };
        let mut at = 2 * model.classes();
        for (i, b) in plan.blocks.iter().enumerate() {
            let s = shape(b.tensor);
            if b.kind == "head" {
                // The pooled vector is already the means: copied as it is.
                means.push(None);
                layout.means.push(Some((at, s.c)));
                at += s.c;
                continue;
            }
            let m = storage_buffer(device, &format!("{} means", b.name), &vec![0.0; s.c]);
            stats.push(k.global_avg_pool(device, "means", s.c, s.h * s.w, buf(b.tensor), &m));
            means.push(Some(m));
            layout.means.push(Some((at, s.c)));
            at += s.c;
            if let Some(sc) = b.shortcut {
                let len = s.len();
                let main = b.main.expect("every residual block keeps F(x)");
                stats.push(k.sum_squares(device, "|F(x)|", len, buf(main), None, &norms, 2 * i));
                stats.push(k.sum_squares(device, "|x|", len, buf(sc), None, &norms, 2 * i + 1));
            }
        }
        layout.norms_at = at;
        layout.floats = at + 2 * nb;

        // One compute pass per stage, timed where the adapter allows.
        let mut stages: Vec<(String, std::ops::Range<usize>)> = Vec::new();
        for (i, b) in plan.blocks.iter().enumerate() {
            let name = match b.kind {
                "stem" => "stem".to_string(),
                "head" => "head".to_string(),
                _ => format!("stage{}", b.stage),
            };
            match stages.last_mut() {
                Some((n, r)) if *n == name => r.end = i + 1,
                _ => stages.push((name, i..i + 1)),
            }
        }
        let timer = gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY).then(|| {
            let count = 2 * stages.len() as u32;
            let set = device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("stage timer"), ty: wgpu::QueryType::Timestamp, count });
            let resolve = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: count as u64 * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            (set, resolve)
        });
        layout.timestamps = if timer.is_some() { 2 * stages.len() } else { 0 };
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("frame staging"),
            size: (layout.floats * 4 + layout.timestamps * 8) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Frame { plan, slots, dispatches, bypass, stats, means, norms, stages, timer, layout, staging, image: None, read_staging: HashMap::new(), _scratch: scratch, f32_tensors, layer_timer: None })
    }
}
