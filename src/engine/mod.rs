//! The engine: a plan instantiated on a GPU. Weights are uploaded once;
//! buffers, bind groups and dispatches are made once per input size; a frame
//! is one command buffer and one small readback.
//!
//! This file is the public API. The parts:
//! * [`params`]: the weights on the GPU, folded or not;
//! * [`network`]: the plan's buffers and one dispatch per op;
//! * [`frame`]: one frame's input, command buffer and submission;
//! * [`stats`]: per-block channel means and ‖F(x)‖/‖x‖;
//! * [`timing`]: GPU time per stage and per op;
//! * [`readback`]: the staging buffers and f16 decoding.

use std::collections::HashSet;
use std::rc::Rc;

use crate::gpu::Gpu;
use crate::kernels::{ConvKernels, Kernels, Precision};
use crate::model::{Model, Shape};
use crate::plan::{BlockInfo, BlockRole, Mode, Plan};
use crate::preprocess::Preprocess;
use crate::weights::Weights;
use crate::{bail, Error, Result};

mod frame;
mod network;
mod params;
mod readback;
mod stats;
mod timing;

pub use stats::BlockStats;

/// How an engine runs, given once when it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    pub mode: Mode,
    /// Storage of activations and conv weights (f16: fast mode, `shader-f16`).
    pub precision: Precision,
    /// Fast mode's conv kernels; `None`: the adapter's default
    /// ([`ConvKernels::for_adapter`]).
    pub conv: Option<ConvKernels>,
    /// Per-frame block statistics (channel means, ‖F(x)‖ and ‖x‖); off, a
    /// frame is the network alone.
    pub stats: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { mode: Mode::Fast, precision: Precision::F32, conv: None, stats: true }
    }
}

impl EngineConfig {
    pub fn mode(mode: Mode) -> EngineConfig {
        EngineConfig { mode, ..Default::default() }
    }
}

/// What one frame produced.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub logits: Vec<f32>,
    pub probs: Vec<f32>,
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
    config: EngineConfig,
    /// The conv kernels in use (the config's, or the adapter's default).
    conv: ConvKernels,
    params: params::GpuParams,
    sized: frame::PerSize,
    /// Dense weights on the CPU, for class activation maps.
    dense_weight: Vec<f32>,
    disabled: HashSet<String>,
    /// Whether the frame last submitted computed statistics.
    submitted_stats: bool,
    /// Whether a frame's results have been read (tensors hold a frame).
    has_output: bool,
    /// The last frame's results, kept so a frame allocates nothing.
    out: Output,
    block_stats: BlockStats,
    stage_ms: Option<Vec<(String, f64)>>,
}

impl Engine {
    /// Uploads the weights and plans for a `height`×`width` input.
    pub async fn new(gpu: Rc<Gpu>, weights: &Weights, config: EngineConfig, height: usize, width: usize) -> Result<Engine> {
        if config.precision == Precision::F16 {
            if config.mode != Mode::Fast {
                bail!(BadInput, "f16 is a fast-mode path; inspect mode computes and keeps everything in f32");
            }
            if !gpu.features.contains(wgpu::Features::SHADER_F16) {
                bail!(Unsupported, "this GPU adapter ({}) has no shader-f16: use f32", gpu.adapter_name());
            }
        }
        let plan = Plan::new(&weights.model, height, width, config.mode)?;
        let conv = config.conv.unwrap_or_else(|| ConvKernels::for_adapter(&gpu.adapter_info));
        network::check_fits(&gpu, &plan, config.precision, conv)?;
        let scopes = gpu.error_scopes();
        let kernels = Kernels::new(&gpu.device, config.precision);
        let params = params::GpuParams::upload(&gpu.device, weights, config.mode, config.precision);
        let sized = frame::PerSize::new(&gpu, &kernels, &params, plan, conv);
        scopes.check("setting up the network").await?;
        Ok(Engine {
            gpu,
            kernels,
            model: weights.model.clone(),
            config,
            conv,
            params,
            sized: sized?,
            dense_weight: weights.dense.weight.clone(),
            disabled: HashSet::new(),
            submitted_stats: false,
            has_output: false,
            out: Output::default(),
            block_stats: BlockStats::default(),
            stage_ms: None,
        })
    }

    /// Re-plans for another input size, keeping the uploaded weights.
    pub async fn set_input_size(&mut self, height: usize, width: usize) -> Result<()> {
        let plan = Plan::new(&self.model, height, width, self.config.mode)?;
        network::check_fits(&self.gpu, &plan, self.config.precision, self.conv)?;
        let scopes = self.gpu.error_scopes();
        let sized = frame::PerSize::new(&self.gpu, &self.kernels, &self.params, plan, self.conv);
        scopes.check("setting up the network").await?;
        self.sized = sized?;
        self.has_output = false;
        self.block_stats = BlockStats::default();
        self.stage_ms = None;
        Ok(())
    }

    pub fn config(&self) -> EngineConfig {
        self.config
    }
    pub fn precision(&self) -> Precision {
        self.config.precision
    }
    pub fn mode(&self) -> Mode {
        self.config.mode
    }
    /// The conv kernels fast mode runs.
    pub fn conv_kernels(&self) -> ConvKernels {
        self.conv
    }
    pub fn model(&self) -> &Model {
        &self.model
    }
    pub fn plan(&self) -> &Plan {
        self.sized.plan()
    }
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    /// Stem, residual blocks and head, in order.
    pub fn blocks(&self) -> &[BlockInfo] {
        &self.plan().blocks
    }
    pub fn input_size(&self) -> (usize, usize) {
        let s = self.plan().shape(self.plan().input);
        (s.h, s.w)
    }

    /// Runs the network on a `3×H×W` NCHW tensor at the planned size.
    pub fn run_tensor(&mut self, input: &[f32]) -> Result<()> {
        let shape = self.plan().shape(self.plan().input);
        if input.len() != shape.len() {
            bail!(BadInput, "the input tensor has {} values, the network is planned for {}×{}×{} = {}", input.len(), shape.c, shape.h, shape.w, shape.len());
        }
        if input.iter().any(|v| !v.is_finite()) {
            bail!(BadInput, "the input tensor contains NaN or infinite values");
        }
        self.sized.write_tensor(&self.gpu, self.config.precision, input);
        self.submit(false);
        Ok(())
    }

    /// Runs the network on RGBA8 pixels (`width`×`height`, row-major), with
    /// preprocessing on the GPU; `pre`'s crop must be the planned input size.
    pub fn run_rgba(&mut self, pixels: &[u8], width: usize, height: usize, pre: &Preprocess) -> Result<()> {
        let want = width.checked_mul(height).and_then(|n| n.checked_mul(4));
        if want != Some(pixels.len()) {
            bail!(BadInput, "expected {width}×{height}×4 bytes of RGBA pixels, got {}", pixels.len());
        }
        if (pre.crop_h, pre.crop_w) != self.input_size() {
            bail!(BadInput, "the preprocessing crop {}×{} differs from the planned input {:?}", pre.crop_h, pre.crop_w, self.input_size());
        }
        let params = pre.params(width, height)?;
        self.sized.write_pixels(&self.gpu, &self.kernels, pixels, params)?;
        self.submit(true);
        Ok(())
    }

    fn submit(&mut self, with_preprocess: bool) {
        self.submitted_stats = self.config.stats;
        self.sized.submit(&self.gpu, &self.disabled, with_preprocess, self.config.stats);
    }

    /// Compute dispatches in one frame as configured (on a tensor input).
    pub fn dispatches_per_frame(&self) -> usize {
        self.sized.dispatches_per_frame(&self.disabled, false, self.config.stats)
    }

    /// Logits and probabilities of the last frame; also updates
    /// [`Engine::block_stats`] and [`Engine::stage_times`]. Reads into
    /// buffers kept from frame to frame: after the first frame of a size,
    /// this allocates nothing.
    pub async fn output(&mut self) -> Result<&Output> {
        let s = &mut self.sized;
        if let Err(e) = s.staging.read(&self.gpu).await {
            // Leave the engine usable: the next image gets a fresh pixel buffer.
            s.drop_image();
            self.has_output = false;
            return Err(e);
        }
        self.has_output = true;
        let (n, layout, bytes) = (s.staging.layout.classes, s.staging.layout, &s.staging.bytes);
        s.staging.floats(0, n, &mut self.out.logits);
        s.staging.floats(n, n, &mut self.out.probs);
        s.stats.decode(&s.net.plan, &bytes[layout.stats_at..], self.submitted_stats, &mut self.block_stats);
        s.timer.decode(&self.gpu, &bytes[layout.times_at..], &mut self.stage_ms);
        Ok(&self.out)
    }

    /// Per-block statistics of the last frame read by [`Engine::output`].
    pub fn block_stats(&self) -> &BlockStats {
        &self.block_stats
    }

    /// GPU time per stage (`stem`, `stage1`…, `head`) of the last frame, in
    /// milliseconds, where the adapter has timestamp queries.
    pub fn stage_times(&self) -> Option<&[(String, f64)]> {
        self.stage_ms.as_deref()
    }

    /// GPU time of every op of the network, in plan order, from timestamp
    /// queries: each op runs in its own compute pass on the current input
    /// (a split-K conv counts both its kernels). Pass boundaries add a little,
    /// so the sum exceeds a normal frame; this is for finding the slow layers.
    pub async fn profile_layers(&mut self) -> Result<Vec<(String, f64)>> {
        let s = &mut self.sized;
        let disabled = &self.disabled;
        let order: Vec<_> = s.net.frame_dispatches(0..s.net.plan.blocks.len(), |n| disabled.contains(n)).collect();
        s.profiler.profile(&self.gpu, &order).await
    }

    /// Switches an identity block's main path off (its output becomes its
    /// input) or back on. Convolutional blocks change the shape and cannot be skipped.
    pub fn set_block_enabled(&mut self, name: &str, enabled: bool) -> Result<()> {
        let b = self.plan().block(name).ok_or_else(|| Error::of(crate::error::ErrorKind::BadInput, format!("no block named `{name}`")))?;
        if b.role != BlockRole::Identity {
            bail!(BadInput, "only identity blocks can be skipped; `{name}` is a {} block", b.role);
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

    /// Reads `(first value, count)` ranges of a tensor of the last frame.
    async fn read_ranges(&mut self, tensor: usize, ranges: &[(usize, usize)]) -> Result<Vec<f32>> {
        let s = &mut self.sized;
        let vb = network::value_bytes(s.net.plan.tensors[tensor].storage, self.config.precision);
        s.reader.read_ranges(&self.gpu, s.net.slots.of(tensor), vb, ranges).await
    }

    /// A kept tensor's id and shape, or a message saying why there is none.
    fn kept(&self, name: &str) -> Result<(usize, Shape)> {
        if !self.has_output {
            bail!(NoFrame, "no frame has been run yet: classify one first");
        }
        let plan = self.plan();
        let Some(id) = plan.tensor(name) else {
            let hint = if self.config.mode == Mode::Fast { " (in fast mode only block outputs are kept; inspect mode keeps every intermediate)" } else { "" };
            bail!(BadInput, "no tensor named `{name}`{hint}");
        };
        if !plan.tensors[id].keep {
            bail!(BadInput, "`{name}` is not kept after the frame in {} mode", self.config.mode);
        }
        Ok((id, plan.shape(id)))
    }

    /// Reads one tensor of the last frame by name: a block (`layer1.0`,
    /// `res2a`, `stem`), `input`, `pool`, `logits`, `probs`; in inspect mode
    /// also every conv and BN output and `<block>.main` / `<block>.shortcut`.
    pub async fn read(&mut self, name: &str) -> Result<(Shape, Vec<f32>)> {
        let (id, shape) = self.kept(name)?;
        let data = self.read_ranges(id, &[(0, shape.len())]).await?;
        Ok((shape, data))
    }

    /// Reads only some channels of a kept tensor: `len(channels)×H×W` values.
    pub async fn read_channels(&mut self, name: &str, channels: &[usize]) -> Result<(Shape, Vec<f32>)> {
        let (id, s) = self.kept(name)?;
        if let Some(c) = channels.iter().find(|&&c| c >= s.c) {
            bail!(BadInput, "`{name}` has {} channels; channel {c} does not exist", s.c);
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
            bail!(BadInput, "class {class} does not exist (the network has {})", self.model.classes());
        }
        let last = self.plan().last_features().name.clone();
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
}
