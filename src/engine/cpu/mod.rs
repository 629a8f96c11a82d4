//! The CPU backend: the same plan as the GPU, run by plain Rust on the CPU
//! (natively, or in WebAssembly with simd128 where a browser has no WebGPU).
//! Every op of both modes, so block outputs, ‖F(x)‖/‖x‖, block skipping and
//! class activation maps work here too.
//!
//! * [`conv`]: convolution as a GEMM (`matrixmultiply`) with im2col blocks
//!   and the fused epilogue; [`winograd`]: 3×3 stride-1 convs by F(2×2, 3×3);
//! * [`ops`]: batchnorm, ReLU, residual add, pooling, dense, softmax;
//! * [`preprocess`]: RGBA pixels → the input tensor, as the GPU's shader does.
//!
//! One thread. A frame runs when its results are asked for; in the browser
//! it hands control back to the page every 16 ms or so, so a page that runs
//! it on the main thread stays responsive.

use std::collections::HashMap;
use crate::clock;

use crate::engine::{EngineConfig, FrameResults};
use crate::kernels::{Precision, PreprocessParams};
use crate::plan::{Mode, Op, Plan, TensorId};
use crate::weights::{BatchNormWeights, Weights};
use crate::error::ErrorKind;
use crate::{bail, Error, Result};

pub mod conv;
pub mod ops;
pub mod preprocess;
pub mod winograd;

use conv::{CpuConv, Epilogue, Scratch};

/// The parameters as the CPU ops read them.
struct CpuParams {
    convs: HashMap<String, CpuConv>,
    /// Inspect mode only: the batchnorms, by name.
    bns: HashMap<String, BatchNormWeights>,
    dense_w: Vec<f32>,
    dense_b: Vec<f32>,
}

impl CpuParams {
    fn new(w: &Weights, mode: Mode) -> CpuParams {
        let mut convs = HashMap::new();
        let mut bns = HashMap::new();
        for cb in w.model.conv_bns() {
            let (weight, bias) = match mode {
                Mode::Fast => {
                    let (weight, bias) = w.folded(cb);
                    (weight, Some(bias))
                }
                Mode::Inspect => {
                    bns.insert(cb.bn.name.clone(), w.bns[&cb.bn.name].clone());
                    let p = &w.convs[&cb.conv.name];
                    (p.weight.clone(), p.bias.clone())
                }
            };
            convs.insert(cb.conv.name.clone(), CpuConv::new(cb.conv.clone(), weight, bias));
        }
        CpuParams { convs, bns, dense_w: w.dense.weight.clone(), dense_b: w.dense.bias.clone() }
    }
}

/// The most activation memory the CPU backend takes: wasm32's memory ends
/// at 4 GiB, which the weights and scratch share; natively 8 GiB (ResNet-50
/// at 2048×2048 takes about 4), past which a frame would take minutes.
#[cfg(target_arch = "wasm32")]
const MAX_SLOT_BYTES: u64 = 2 << 30;
#[cfg(not(target_arch = "wasm32"))]
const MAX_SLOT_BYTES: u64 = 8 << 30;

/// A submitted frame, computed when its results are asked for.
struct Pending {
    stats: bool,
}

pub(crate) struct CpuBackend {
    params: CpuParams,
    plan: Plan,
    /// One buffer per plan slot.
    slots: Vec<Vec<f32>>,
    /// Conv scratch (im2col, Winograd tiles), kept across convs and frames.
    scratch: Scratch,
    pending: Option<Pending>,
    /// Per block of the plan: switched off in the pending frame (run as its bypass).
    frame_skip: Vec<bool>,
}

impl CpuBackend {
    pub fn new(weights: &Weights, config: &EngineConfig, plan: Plan) -> Result<CpuBackend> {
        if config.precision != Precision::F32 {
            bail!(Unsupported, "the CPU backend computes in f32 only: {} storage is a GPU path", config.precision);
        }
        let mut scratch = Scratch::default();
        let slots = Self::slots(&plan, &mut scratch)?;
        Ok(CpuBackend { params: CpuParams::new(weights, config.mode), plan, slots, scratch, pending: None, frame_skip: Vec::new() })
    }

    /// Re-plans; on failure (too large) the current plan stays.
    pub fn set_plan(&mut self, plan: Plan) -> Result<()> {
        Self::budget(&plan)?;
        // The old activations go first: old and new together could need
        // memory neither needs alone (and wasm memory, once grown, stays).
        self.slots = Vec::new();
        self.pending = None;
        match Self::slots(&plan, &mut self.scratch) {
            Ok(slots) => {
                self.slots = slots;
                self.plan = plan;
                Ok(())
            }
            Err(e) => {
                // The old plan fitted a moment ago, in the memory just freed;
                // should even that fail, frames are refused (`check_ready`).
                self.slots = Self::slots(&self.plan, &mut self.scratch).unwrap_or_default();
                Err(e)
            }
        }
    }

    /// Fails when the activations could not be allocated again after a failed re-plan.
    fn check_ready(&self) -> Result<()> {
        if self.slots.len() != self.plan.slot_len.len() {
            bail!(InputTooLarge, "the CPU backend has no memory for its activations: set a smaller input size");
        }
        Ok(())
    }

    /// The bytes a plan's activations and largest scratch take, refused
    /// with `InputTooLarge` beyond [`MAX_SLOT_BYTES`]. The scratch counted is
    /// the max pool's copy of its input (the stem's output, the largest
    /// tensor), as large as the largest slot; the im2col and Winograd blocks
    /// are bounded by `COL_BUDGET` whatever the size.
    fn budget(plan: &Plan) -> Result<u64> {
        let s = plan.shape(plan.input);
        let largest = plan.slot_len.iter().copied().max().unwrap_or(0);
        let bytes = plan.slot_len.iter().chain([&largest]).try_fold(0u64, |sum, &n| sum.checked_add((n as u64).checked_mul(4)?)).unwrap_or(u64::MAX);
        if bytes > MAX_SLOT_BYTES {
            bail!(InputTooLarge, "input {}×{} is too large for the CPU backend: its activations would take {} MB (at most {} MB here)", s.h, s.w, bytes >> 20, MAX_SLOT_BYTES >> 20);
        }
        Ok(bytes)
    }

    /// One zeroed buffer per plan slot, and room in `scratch` for the max
    /// pool's copy, refused with `InputTooLarge` beyond the budget or where
    /// the allocator has no room (in wasm a failed allocation would abort
    /// the module, so everything a frame grows to is reserved here).
    fn slots(plan: &Plan, scratch: &mut Scratch) -> Result<Vec<Vec<f32>>> {
        let bytes = Self::budget(plan)?;
        let s = plan.shape(plan.input);
        let no_room = || Error::of(ErrorKind::InputTooLarge, format!("input {}×{} is too large for the CPU backend here: no memory left for its {} MB of activations", s.h, s.w, bytes >> 20));
        let largest = plan.slot_len.iter().copied().max().unwrap_or(0);
        scratch.reserve_pool(largest).map_err(|_| no_room())?;
        plan.slot_len
            .iter()
            .map(|&n| {
                let mut v = Vec::new();
                v.try_reserve_exact(n).map_err(|_| no_room())?;
                v.resize(n, 0.0);
                Ok(v)
            })
            .collect()
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    fn input_mut(&mut self) -> &mut [f32] {
        let t = self.plan.input;
        let n = self.plan.shape(t).len();
        &mut self.slots[self.plan.slot_of[t]][..n]
    }

    fn pend(&mut self, skip: &[bool], stats: bool) {
        self.frame_skip.clear();
        self.frame_skip.extend_from_slice(skip);
        self.pending = Some(Pending { stats });
    }

    pub fn submit_tensor(&mut self, input: &[f32], skip: &[bool], stats: bool) -> Result<()> {
        self.check_ready()?;
        self.input_mut().copy_from_slice(input);
        self.pend(skip, stats);
        Ok(())
    }

    pub fn submit_rgba(&mut self, pixels: &[u8], params: PreprocessParams, skip: &[bool], stats: bool) -> Result<()> {
        self.check_ready()?;
        preprocess::preprocess(pixels, &params, self.input_mut())?;
        self.pend(skip, stats);
        Ok(())
    }

    /// Runs the submitted frame and fills `r`: logits, probabilities,
    /// statistics if asked for, and the wall time of each stage.
    pub async fn finish(&mut self, r: &mut FrameResults) -> Result<()> {
        let Some(p) = self.pending.take() else { bail!(NoFrame, "no frame has been submitted") };
        let mut stages: Vec<(String, f64)> = Vec::new();
        let mut t = clock::now_ms();
        let mut since_yield = t;
        for bi in 0..self.plan.blocks.len() {
            let b = &self.plan.blocks[bi];
            match (self.frame_skip[bi], b.input) {
                // Skipped identity block: its output is its input.
                (true, Some(x)) => with_io(&mut self.slots, &self.plan, b.tensor, None, |io, out, _| ops::relu(io.input(x), out)),
                _ => {
                    for oi in self.plan.blocks[bi].ops.clone() {
                        self.run_op(oi);
                    }
                }
            }
            let name = self.plan.blocks[bi].stage_name();
            let now = clock::now_ms();
            match stages.last_mut() {
                Some((n, ms)) if *n == name => *ms += now - t,
                _ => stages.push((name, now - t)),
            }
            t = now;
            // A slice of about one display frame, then the page gets a turn.
            if now - since_yield > 16.0 {
                clock::yield_now().await;
                since_yield = clock::now_ms();
                t = since_yield;
            }
        }
        let n = self.plan.shape(self.plan.logits).len();
        r.output.logits.clear();
        r.output.logits.extend_from_slice(&self.tensor(self.plan.logits)[..n]);
        r.output.probs.clear();
        r.output.probs.extend_from_slice(&self.tensor(self.plan.probs)[..n]);
        self.block_stats(p.stats, &mut r.block_stats);
        r.stage_ms = Some(stages);
        Ok(())
    }

    fn tensor(&self, t: TensorId) -> &[f32] {
        &self.slots[self.plan.slot_of[t]][..self.plan.shape(t).len()]
    }

    /// Channel means of every block's output and ‖F(x)‖, ‖x‖ of residual blocks.
    fn block_stats(&self, on: bool, out: &mut crate::engine::BlockStats) {
        let n = self.plan.blocks.len();
        out.channel_means.resize_with(n, Vec::new);
        out.norms.resize(n, None);
        for (i, b) in self.plan.blocks.iter().enumerate() {
            let means = &mut out.channel_means[i];
            means.clear();
            out.norms[i] = None;
            if !on {
                continue;
            }
            let s = self.plan.shape(b.tensor);
            means.resize(s.c, 0.0);
            ops::global_avg_pool(self.tensor(b.tensor), s, means);
            if let Some(r) = b.residual {
                let norm = |t| ops::sum_squares(self.tensor(t)).sqrt() as f32;
                out.norms[i] = Some((norm(r.main), norm(r.shortcut)));
            }
        }
    }

    /// Runs op `oi` of the plan. Borrows the fields apart (the plan and
    /// parameters read, the slots and scratch written): nothing is cloned or
    /// allocated per op.
    fn run_op(&mut self, oi: usize) {
        let CpuBackend { params, plan, slots, scratch, .. } = self;
        let shape = |t: TensorId| plan.shape(t);
        match &plan.ops[oi] {
            Op::Conv(c) => {
                let (i, o) = (shape(c.input), shape(c.output));
                let conv = &params.convs[&c.conv.name];
                with_io(slots, plan, c.output, c.main_out, |io, out, main_out| {
                    let ep = Epilogue { residual: c.residual.map(|t| io.input(t)), relu: c.relu, main_out };
                    conv.run(io.input(c.input), i, out, o, ep, scratch);
                });
            }
            Op::BatchNorm { bn, input, output } => {
                let p = &params.bns[&bn.name];
                with_io(slots, plan, *output, None, |io, out, _| ops::batchnorm(io.input(*input), shape(*input), p, bn.eps, out));
            }
            Op::Relu { input, output } => with_io(slots, plan, *output, None, |io, out, _| ops::relu(io.input(*input), out)),
            Op::AddRelu { main, shortcut, output } => with_io(slots, plan, *output, None, |io, out, _| ops::add_relu(io.input(*main), io.input(*shortcut), out)),
            Op::MaxPool { pool, input, output } => with_io(slots, plan, *output, None, |io, out, _| ops::maxpool(io.input(*input), shape(*input), pool, out, shape(*output), scratch)),
            Op::GlobalAvgPool { input, output } => with_io(slots, plan, *output, None, |io, out, _| ops::global_avg_pool(io.input(*input), shape(*input), out)),
            Op::Dense { input, output } => with_io(slots, plan, *output, None, |io, out, _| ops::dense(io.input(*input), &params.dense_w, &params.dense_b, out)),
            Op::Softmax { input, output } => with_io(slots, plan, *output, None, |io, out, _| ops::softmax(io.input(*input), out)),
        }
    }

    /// `(first value, count)` ranges of a tensor of the last frame.
    pub fn read_ranges(&self, tensor: TensorId, ranges: &[(usize, usize)]) -> Vec<f32> {
        let t = self.tensor(tensor);
        ranges.iter().flat_map(|&(a, n)| t[a..a + n].iter().copied()).collect()
    }

    /// Each op of the current input in turn, timed on the wall clock: (label, ms).
    pub fn profile_layers(&mut self, skip: &[bool]) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for (b, _) in self.plan.blocks.clone().into_iter().zip(skip).filter(|(_, &s)| !s) {
            for oi in b.ops {
                let t = clock::now_ms();
                self.run_op(oi);
                out.push((self.plan.ops[oi].label(&self.plan.tensors), clock::now_ms() - t));
            }
        }
        out
    }
}

/// Runs `f` with op output `out` (and `main_out`) taken out of their slots,
/// so it can read the inputs from the others.
fn with_io(slots: &mut [Vec<f32>], plan: &Plan, out: TensorId, main_out: Option<TensorId>, f: impl FnOnce(&Inputs, &mut [f32], Option<&mut [f32]>)) {
    let (so, sm) = (plan.slot_of[out], main_out.map(|t| plan.slot_of[t]));
    let mut o = std::mem::take(&mut slots[so]);
    let mut m = sm.map(|s| std::mem::take(&mut slots[s]));
    let n = plan.shape(out).len();
    f(&Inputs { slots, plan }, &mut o[..n], m.as_mut().map(|m| &mut m[..n]));
    slots[so] = o;
    if let (Some(s), Some(m)) = (sm, m) {
        slots[s] = m;
    }
}

/// An op's view of the slots but its output (and F(x)): readable inputs.
struct Inputs<'a> {
    slots: &'a [Vec<f32>],
    plan: &'a Plan,
}

impl Inputs<'_> {
    fn input(&self, t: TensorId) -> &[f32] {
        &self.slots[self.plan.slot_of[t]][..self.plan.shape(t).len()]
    }
}
