//! The engine: a plan run on a backend — a GPU through wgpu ([`gpu`]) or the
//! CPU ([`cpu`]) — behind one API. This file is that API; the
//! backends do the work.

use std::collections::HashSet;
use std::rc::Rc;

use cpu::CpuBackend;
use crate::error::ErrorKind;
use crate::gpu::Gpu;
use crate::kernels::{ConvKernels, Precision};
use crate::model::{Model, Shape};
use crate::plan::{BlockInfo, BlockRole, Mode, Plan};
use crate::preprocess::Preprocess;
use crate::weights::Weights;
use crate::{bail, Error, Result};

pub mod cpu;
mod gpu;

use gpu::GpuBackend;

/// Where an engine runs.
#[derive(Clone)]
pub enum Device {
    Gpu(Rc<Gpu>),
    Cpu,
}

impl Device {
    /// The GPU if there is one that meets the limits, else the CPU, with the reason.
    pub async fn auto() -> (Device, Option<Error>) {
        match Gpu::new().await {
            Ok(gpu) => (Device::Gpu(Rc::new(gpu)), None),
            Err(e) => (Device::Cpu, Some(e)),
        }
    }

    /// `WebGPU` / `llvmpipe (…) / Vulkan`, or `CPU (…)`.
    pub fn name(&self) -> String {
        match self {
            Device::Gpu(g) => g.adapter_name(),
            Device::Cpu => cpu_name(),
        }
    }
}

fn cpu_name() -> String {
    if cfg!(target_arch = "wasm32") {
        "CPU (WebAssembly SIMD, 1 thread)".to_string()
    } else {
        "CPU (1 thread)".to_string()
    }
}

/// Which kind of backend an engine runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Gpu,
    Cpu,
}

crate::named_enum!(BackendKind { Gpu = "gpu", Cpu = "cpu" });

/// How an engine runs, given once when it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    pub mode: Mode,
    /// Storage of activations and conv weights (f16: GPU fast mode, `shader-f16`).
    pub precision: Precision,
    /// Fast mode's conv kernels on a GPU; `None`: the adapter's default
    /// ([`ConvKernels::for_adapter`]).
    pub conv: Option<ConvKernels>,
    /// Per-frame block statistics (channel means, ‖F(x)‖ and ‖x‖); off, a
    /// frame is the network alone.
    pub stats: bool,
    /// How a GPU frame is submitted; `None`: the adapter's default
    /// ([`Submit::for_adapter`]).
    pub submit: Option<Submit>,
}

/// How a frame's GPU work reaches the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submit {
    /// One command buffer for the whole frame: the GPU starts once all of it
    /// is recorded.
    Frame,
    /// One command buffer per stage, each submitted as soon as it is
    /// recorded: the GPU runs the stem while the CPU records stage 1, and so
    /// on, so most of the recording hides behind the GPU (the frame's
    /// latency gains what recording costs, minus a few submissions).
    Stage,
}

crate::named_enum!(Submit { Frame = "frame", Stage = "stage" });

impl Submit {
    /// Per stage on a GPU; one command buffer on a CPU adapter (lavapipe,
    /// SwiftShader natively), where the "GPU" shares the cores that record
    /// and a submission may wait for the previous one to finish.
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> Submit {
        if info.device_type == wgpu::DeviceType::Cpu {
            Submit::Frame
        } else {
            Submit::Stage
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { mode: Mode::Fast, precision: Precision::F32, conv: None, stats: true, submit: None }
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

/// What one frame measured per block of [`Engine::blocks`].
#[derive(Debug, Clone, Default)]
pub struct BlockStats {
    /// Mean of each channel of the block's output (for the head, the pooled
    /// vector); empty when the frame ran without statistics.
    pub channel_means: Vec<Vec<f32>>,
    /// Residual blocks: (‖F(x)‖, ‖x‖), main path against shortcut; ‖F(x)‖
    /// is 0 for a block switched off in that frame (its main path did not run).
    pub norms: Vec<Option<(f32, f32)>>,
    /// Per block: switched off in that frame ([`Engine::set_block_enabled`]).
    pub skipped: Vec<bool>,
}

/// Everything a backend writes back for one frame, kept across frames so a
/// frame allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct FrameResults {
    pub output: Output,
    pub block_stats: BlockStats,
    /// Time per stage in ms (GPU timestamps, or the CPU's wall clock).
    pub stage_ms: Option<Vec<(String, f64)>>,
}

enum Backend {
    Gpu(Box<GpuBackend>),
    Cpu(Box<CpuBackend>),
}

pub struct Engine {
    backend: Backend,
    model: Model,
    config: EngineConfig,
    device_name: String,
    /// Dense weights on the CPU, for class activation maps.
    dense_weight: Vec<f32>,
    /// Switched-off blocks by name (kept across re-plans), and as a mask
    /// over the plan's blocks, which is what a frame uses.
    disabled: HashSet<String>,
    skip: Vec<bool>,
    /// The mask of the submitted frame (`skip` may change before its
    /// results are read).
    frame_skipped: Vec<bool>,
    /// Whether a frame's results have been read (tensors hold a frame).
    has_output: bool,
    /// A frame has been submitted and its results not yet read.
    pending: bool,
    results: FrameResults,
}

impl Engine {
    /// Loads the weights onto `device` and plans for a `height`×`width` input.
    pub async fn new(device: &Device, weights: &Weights, config: EngineConfig, height: usize, width: usize) -> Result<Engine> {
        let plan = Plan::new(&weights.model, height, width, config.mode)?;
        let blocks = plan.blocks.len();
        let backend = match device {
            Device::Gpu(gpu) => Backend::Gpu(Box::new(GpuBackend::new(gpu.clone(), weights, &config, plan).await?)),
            Device::Cpu => Backend::Cpu(Box::new(CpuBackend::new(weights, &config, plan)?)),
        };
        Ok(Engine {
            backend,
            model: weights.model.clone(),
            config,
            device_name: device.name(),
            dense_weight: weights.dense.weight.clone(),
            disabled: HashSet::new(),
            skip: vec![false; blocks],
            frame_skipped: Vec::new(),
            has_output: false,
            pending: false,
            results: FrameResults::default(),
        })
    }

    /// Re-plans for another input size, keeping the loaded weights.
    pub async fn set_input_size(&mut self, height: usize, width: usize) -> Result<()> {
        let plan = Plan::new(&self.model, height, width, self.config.mode)?;
        match &mut self.backend {
            Backend::Gpu(b) => b.set_plan(plan).await?,
            Backend::Cpu(b) => b.set_plan(plan)?,
        }
        self.update_skip();
        self.has_output = false;
        self.pending = false;
        self.results.block_stats = BlockStats::default();
        self.results.stage_ms = None;
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
    pub fn backend(&self) -> BackendKind {
        match self.backend {
            Backend::Gpu(_) => BackendKind::Gpu,
            Backend::Cpu(_) => BackendKind::Cpu,
        }
    }
    /// The GPU adapter's name, or a description of the CPU backend.
    pub fn device_name(&self) -> &str {
        &self.device_name
    }
    /// The GPU, when the engine runs on one.
    pub fn gpu(&self) -> Option<&Gpu> {
        match &self.backend {
            Backend::Gpu(b) => Some(b.gpu()),
            Backend::Cpu(_) => None,
        }
    }
    /// The conv kernels a GPU runs in fast mode (`None` on the CPU).
    pub fn conv_kernels(&self) -> Option<ConvKernels> {
        match &self.backend {
            Backend::Gpu(b) => Some(b.conv_kernels()),
            Backend::Cpu(_) => None,
        }
    }
    /// How a GPU frame is submitted (`None` on the CPU).
    pub fn submit_mode(&self) -> Option<Submit> {
        match &self.backend {
            Backend::Gpu(b) => Some(b.submit_mode()),
            Backend::Cpu(_) => None,
        }
    }
    pub fn model(&self) -> &Model {
        &self.model
    }
    pub fn plan(&self) -> &Plan {
        match &self.backend {
            Backend::Gpu(b) => b.plan(),
            Backend::Cpu(b) => b.plan(),
        }
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
        // A fold, not `any`: without the early exit it vectorises (14 µs
        // instead of 50 for a 224×224 input, on every frame).
        if !input.iter().fold(true, |ok, v| ok & v.is_finite()) {
            bail!(BadInput, "the input tensor contains NaN or infinite values");
        }
        let (skip, stats) = (&self.skip, self.config.stats);
        match &mut self.backend {
            Backend::Gpu(b) => b.submit_tensor(input, skip, stats),
            Backend::Cpu(b) => b.submit_tensor(input, skip, stats)?,
        }
        self.submitted();
        Ok(())
    }

    /// Runs the network on RGBA8 pixels (`width`×`height`, row-major), with
    /// torchvision's preprocessing; `pre`'s crop must be the planned input size.
    pub fn run_rgba(&mut self, pixels: &[u8], width: usize, height: usize, pre: &Preprocess) -> Result<()> {
        let want = width.checked_mul(height).and_then(|n| n.checked_mul(4));
        if want != Some(pixels.len()) {
            bail!(BadInput, "expected {width}×{height}×4 bytes of RGBA pixels, got {}", pixels.len());
        }
        if (pre.crop_h, pre.crop_w) != self.input_size() {
            bail!(BadInput, "the preprocessing crop {}×{} differs from the planned input {:?}", pre.crop_h, pre.crop_w, self.input_size());
        }
        let params = pre.params(width, height)?;
        let (skip, stats) = (&self.skip, self.config.stats);
        match &mut self.backend {
            Backend::Gpu(b) => b.submit_rgba(pixels, params, skip, stats)?,
            Backend::Cpu(b) => b.submit_rgba(pixels, params, skip, stats)?,
        }
        self.submitted();
        Ok(())
    }

    /// Compute dispatches in one frame as configured (on a tensor input;
    /// on the CPU, the ops run).
    pub fn dispatches_per_frame(&self) -> usize {
        match &self.backend {
            Backend::Gpu(b) => b.dispatches_per_frame(&self.skip, self.config.stats),
            Backend::Cpu(b) => b.plan().ops.len(),
        }
    }

    /// Logits and probabilities of the last frame; also updates
    /// [`Engine::block_stats`] and [`Engine::stage_times`]. Reads into
    /// buffers kept from frame to frame: after the first frame of a size,
    /// this allocates nothing on the GPU path.
    ///
    /// Called again without a new frame, it returns the same results; before
    /// any frame (or after a re-plan), it fails with `NoFrame`.
    pub async fn output(&mut self) -> Result<&Output> {
        if !self.pending {
            if self.has_output {
                return Ok(&self.results.output);
            }
            bail!(NoFrame, "no frame has been run yet: run one first");
        }
        self.pending = false;
        let done = match &mut self.backend {
            Backend::Gpu(b) => b.finish(&mut self.results).await,
            Backend::Cpu(b) => b.finish(&mut self.results).await,
        };
        self.has_output = done.is_ok();
        done?;
        // A switched-off block's main tensor holds an older frame's F(x):
        // report what the frame computed, no main path at all.
        let st = &mut self.results.block_stats;
        st.skipped.clone_from(&self.frame_skipped);
        for (n, _) in st.norms.iter_mut().zip(&self.frame_skipped).filter(|(_, &s)| s) {
            if let Some((main, _)) = n {
                *main = 0.0;
            }
        }
        Ok(&self.results.output)
    }

    /// After a submit: a frame is pending, with these blocks switched off.
    fn submitted(&mut self) {
        self.pending = true;
        self.frame_skipped.clone_from(&self.skip);
    }

    /// The mask of switched-off blocks, from their names: when a switch
    /// changes or the plan does, not every frame.
    fn update_skip(&mut self) {
        let mut skip = std::mem::take(&mut self.skip);
        skip.clear();
        skip.extend(self.plan().blocks.iter().map(|b| self.disabled.contains(&b.name)));
        self.skip = skip;
    }

    /// Per-block statistics of the last frame read by [`Engine::output`].
    pub fn block_stats(&self) -> &BlockStats {
        &self.results.block_stats
    }

    /// Time per stage (`stem`, `stage1`…, `head`) of the last frame, in
    /// milliseconds: GPU timestamps where the adapter has them, the CPU's
    /// wall clock on the CPU backend.
    pub fn stage_times(&self) -> Option<&[(String, f64)]> {
        self.results.stage_ms.as_deref()
    }

    /// The time of every op of the network, in plan order: on a GPU each op
    /// in its own timestamped pass (a split-K conv counts both its kernels;
    /// pass boundaries add a little), on the CPU each op on the wall clock.
    /// For finding the slow layers. It reruns the ops into the frame's
    /// buffers, so the last frame is gone afterwards (`NoFrame` until the next).
    pub async fn profile_layers(&mut self) -> Result<Vec<(String, f64)>> {
        self.settle().await?;
        self.has_output = false;
        match &mut self.backend {
            Backend::Gpu(b) => b.profile_layers(&self.skip).await,
            Backend::Cpu(b) => Ok(b.profile_layers(&self.skip)),
        }
    }

    /// Switches an identity block's main path off (its output becomes its
    /// input) or back on. Convolutional blocks change the shape and cannot be skipped.
    pub fn set_block_enabled(&mut self, name: &str, enabled: bool) -> Result<()> {
        let b = self.plan().block(name).ok_or_else(|| Error::of(ErrorKind::BadInput, format!("no block named `{name}`")))?;
        if b.role != BlockRole::Identity {
            bail!(BadInput, "only identity blocks can be skipped; `{name}` is a {} block", b.role);
        }
        if enabled {
            self.disabled.remove(name);
        } else {
            self.disabled.insert(name.to_string());
        }
        self.update_skip();
        Ok(())
    }

    pub fn block_enabled(&self, name: &str) -> bool {
        !self.disabled.contains(name)
    }

    /// Finishes a submitted frame whose results were not read yet, so a read
    /// sees that frame on both backends (the CPU computes a frame only when
    /// asked for it).
    async fn settle(&mut self) -> Result<()> {
        if self.pending {
            self.output().await?;
        }
        Ok(())
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
        // Inside a block switched off in that frame: its ops did not run, so
        // the tensor holds an older frame.
        let skipped = plan.blocks.iter().zip(&self.frame_skipped).find(|(b, &s)| s && b.tensor != id && plan.ops[b.ops.clone()].iter().any(|op| op.outputs().contains(&id)));
        if let Some((b, _)) = skipped {
            bail!(BadInput, "`{name}` is inside block `{}`, which was skipped in the last frame: its main path did not run", b.name);
        }
        Ok((id, plan.shape(id)))
    }

    async fn read_ranges(&mut self, tensor: usize, ranges: &[(usize, usize)]) -> Result<Vec<f32>> {
        match &mut self.backend {
            Backend::Gpu(b) => b.read_ranges(tensor, ranges).await,
            Backend::Cpu(b) => Ok(b.read_ranges(tensor, ranges)),
        }
    }

    /// Reads one tensor of the last frame submitted (finishing it first, as
    /// [`Engine::output`] would) by name: a block (`layer1.0`,
    /// `res2a`, `stem`), `input`, `pool`, `logits`, `probs`; in inspect mode
    /// also every conv and BN output and `<block>.main` / `<block>.shortcut`.
    pub async fn read(&mut self, name: &str) -> Result<(Shape, Vec<f32>)> {
        self.settle().await?;
        let (id, shape) = self.kept(name)?;
        let data = self.read_ranges(id, &[(0, shape.len())]).await?;
        Ok((shape, data))
    }

    /// Reads only some channels of a kept tensor: `len(channels)×H×W` values.
    pub async fn read_channels(&mut self, name: &str, channels: &[usize]) -> Result<(Shape, Vec<f32>)> {
        self.settle().await?;
        let (id, s) = self.kept(name)?;
        if let Some(c) = channels.iter().find(|&&c| c >= s.c) {
            bail!(BadInput, "`{name}` has {} channels; channel {c} does not exist", s.c);
        }
        // Repeats are allowed (the page asks for what it shows), but not
        // more reads than the tensor holds: a long list would otherwise
        // allocate without bound.
        if channels.len() > s.c {
            bail!(BadInput, "asked for {} channels of `{name}`, which has {}: ask for each at most once", channels.len(), s.c);
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
