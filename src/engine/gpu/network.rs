//! A plan instantiated on the GPU for one input size: a buffer per slot and
//! a bound dispatch per op, made once; each frame only records them.

use crate::gpu::{Gpu, OwnedBuffer};
use crate::kernels::{ConvBuffers, ConvKernels, ConvParams, Dispatch, FoldedInput, Kernels, LayerKernel, PoolParams, Precision};
use crate::model::Shape;
use crate::plan::{BlockRole, ConvOp, Op, Plan, Storage, TensorId};
use crate::{bail, Result};

use super::params::GpuParams;

/// The activation buffers: one per plan slot, each as large as the largest
/// tensor it holds, at that tensor's value size.
pub(super) struct Slots {
    /// Destroyed with the plan (see [`OwnedBuffer`]): a re-plan's old
    /// activations do not wait for the garbage collector beside the new ones.
    buffers: Vec<OwnedBuffer>,
    slot_of: Vec<usize>,
}

impl Slots {
    /// Each slot's size in bytes: the largest of its tensors at its value size.
    fn bytes(plan: &Plan, precision: Precision) -> Vec<u64> {
        let mut bytes = vec![0u64; plan.slot_len.len()];
        for (t, tensor) in plan.tensors.iter().enumerate() {
            let b = &mut bytes[plan.slot_of[t]];
            *b = (*b).max((tensor.shape.len() as u64 * value_bytes(tensor.storage, precision) as u64).div_ceil(4) * 4);
        }
        bytes
    }

    fn new(gpu: &Gpu, plan: &Plan, precision: Precision) -> Slots {
        let buffers = Self::bytes(plan, precision)
            .iter()
            .enumerate()
            .map(|(i, &bytes)| {
                OwnedBuffer(gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("slot {i}")),
                    size: bytes.max(4),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }))
            })
            .collect();
        Slots { buffers, slot_of: plan.slot_of.clone() }
    }

    /// The buffer that holds tensor `t`.
    pub fn of(&self, t: TensorId) -> &wgpu::Buffer {
        &self.buffers[self.slot_of[t]].0
    }
}

/// Bytes per value of a tensor stored as `storage` at `precision`.
pub(super) fn value_bytes(storage: Storage, precision: Precision) -> usize {
    match storage {
        Storage::F32 => 4,
        Storage::Activation => precision.bytes(),
    }
}

/// Everything one input size needs, but for statistics and timing.
pub(super) struct Network {
    pub plan: Plan,
    pub slots: Slots,
    /// One per op of the plan.
    pub dispatches: Vec<Dispatch>,
    /// Per block: identity blocks only, relu(input) → output, recorded
    /// instead of the block's ops when it is switched off.
    pub bypass: Vec<Option<Dispatch>>,
    /// Partial sums of split-K convs (see [`SplitK`]).
    _scratch: Vec<OwnedBuffer>,
}

/// What building a dispatch needs.
struct Ctx<'a> {
    k: &'a Kernels,
    params: &'a GpuParams,
    plan: &'a Plan,
    slots: &'a Slots,
    conv: ConvKernels,
    split: &'a SplitK,
    scratch: &'a [OwnedBuffer],
}

impl Ctx<'_> {
    fn shape(&self, t: TensorId) -> Shape {
        self.plan.shape(t)
    }
    fn buf(&self, t: TensorId) -> &wgpu::Buffer {
        self.slots.of(t)
    }
}

/// The kernel a conv op runs: the chosen one in fast mode, the direct one in inspect mode.
fn kernel_of(c: &ConvOp, plan: &Plan, conv: ConvKernels) -> LayerKernel {
    if c.folded {
        conv.for_layer(&c.conv, plan.shape(c.output))
    } else {
        LayerKernel::Direct
    }
}

impl Network {
    pub fn new(gpu: &Gpu, k: &Kernels, params: &GpuParams, plan: Plan, conv: ConvKernels) -> Result<Network> {
        check_fits(gpu, &plan, k.precision(), conv)?;
        let slots = Slots::new(gpu, &plan, k.precision());
        let split = SplitK::new(&plan, conv);
        let scratch = split.buffers(gpu);
        let cx = Ctx { k, params, plan: &plan, slots: &slots, conv, split: &split, scratch: &scratch };
        let dispatches = plan.ops.iter().enumerate().map(|(i, op)| build_op(&cx, i, op)).collect::<Result<Vec<_>>>()?;
        // Skipping an identity block: relu(0 + x) = x, recorded in its place.
        let bypass = plan
            .blocks
            .iter()
            .map(|b| match (b.role, b.input) {
                (BlockRole::Identity, Some(x)) => Some(k.relu(&format!("skip {}", b.name), cx.shape(x).len(), cx.buf(x), cx.buf(b.tensor))).transpose(),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Network { plan, slots, dispatches, bypass, _scratch: scratch })
    }

    /// The dispatches of a frame, in order: each block's own, or its bypass
    /// when it is switched off (`skip`, a mask over the plan's blocks).
    pub fn frame_dispatches<'a>(&'a self, blocks: std::ops::Range<usize>, skip: &'a [bool]) -> impl Iterator<Item = &'a Dispatch> + 'a {
        blocks.flat_map(move |bi| {
            let b = &self.plan.blocks[bi];
            match &self.bypass[bi] {
                Some(bypass) if skip[bi] => std::slice::from_ref(bypass).iter(),
                _ => self.dispatches[b.ops.clone()].iter(),
            }
        })
    }
}

/// Where split-K convs leave their partial sums, and which of them (with
/// `+fold`) leave them unreduced for the next conv to finish while loading.
/// Partial sums live in a few scratch buffers, each reused by split convs
/// whose lifetimes do not overlap: a folded conv's sums live until its
/// reader has run, so a conv that reads folded sums and splits K itself
/// writes to another buffer.
struct SplitK {
    /// Per op: the scratch buffer its partial sums go to.
    scratch_of: Vec<Option<usize>>,
    /// Per op: it reads the partial sums of this earlier op (folded input).
    folded_from: Vec<Option<usize>>,
    /// Each scratch buffer's size in f32s.
    floats: Vec<u64>,
}

impl SplitK {
    fn new(plan: &Plan, conv: ConvKernels) -> SplitK {
        let n = plan.ops.len();
        let mut folded_from = vec![None; n];
        let mut reader = vec![None; n];
        for (i, op) in plan.ops.iter().enumerate() {
            if let Some(j) = fold_reader(plan, conv, i, op) {
                folded_from[j] = Some(i);
                reader[i] = Some(j);
            }
        }
        let mut scratch_of = vec![None; n];
        // (size in f32s, busy up to and including this op).
        let mut buffers: Vec<(u64, usize)> = Vec::new();
        for (i, op) in plan.ops.iter().enumerate() {
            let Some(floats) = partial_floats(plan, conv, op) else { continue };
            let until = reader[i].unwrap_or(i);
            let b = match buffers.iter().position(|&(_, busy)| busy < i) {
                Some(b) => b,
                None => {
                    buffers.push((0, 0));
                    buffers.len() - 1
                }
            };
            buffers[b] = (buffers[b].0.max(floats), until);
            scratch_of[i] = Some(b);
        }
        SplitK { scratch_of, folded_from, floats: buffers.iter().map(|b| b.0).collect() }
    }

    fn buffers(&self, gpu: &Gpu) -> Vec<OwnedBuffer> {
        self.floats
            .iter()
            .map(|&n| OwnedBuffer(gpu.device.create_buffer(&wgpu::BufferDescriptor { label: Some("split-K partial sums"), size: n * 4, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false })))
            .collect()
    }

    /// Whether op `i` leaves its partial sums unreduced.
    fn unreduced(&self, i: usize) -> bool {
        self.folded_from.contains(&Some(i))
    }
}

/// The K slices conv `c` runs in (1: not split).
fn splits_of(c: &ConvOp, plan: &Plan, conv: ConvKernels) -> u32 {
    kernel_of(c, plan, conv).splits(c.conv.in_channels * c.conv.kernel.0 * c.conv.kernel.1)
}

/// Values of split-K partial sums `op` writes, if it is a split conv.
fn partial_floats(plan: &Plan, conv: ConvKernels, op: &Op) -> Option<u64> {
    match op {
        Op::Conv(c) => match splits_of(c, plan, conv) {
            1 => None,
            s => Some(s as u64 * plan.shape(c.output).len() as u64),
        },
        _ => None,
    }
}

/// With `+fold`: the op that may finish op `i`'s partial sums itself. Op
/// `i` must be a split conv with no residual or F(x) copy whose output
/// nobody reads afterwards (not kept) but one conv of the same block, as
/// its input, on a GEMM kernel.
fn fold_reader(plan: &Plan, conv: ConvKernels, i: usize, op: &Op) -> Option<usize> {
    let Op::Conv(c) = op else { return None };
    if !conv.folds(splits_of(c, plan, conv)) || c.residual.is_some() || c.main_out.is_some() || plan.tensors[c.output].keep {
        return None;
    }
    let mut readers = plan.ops.iter().enumerate().filter(|(j, o)| *j != i && o.inputs().contains(&c.output));
    let (j, reader) = readers.next()?;
    if readers.next().is_some() || j < i {
        return None;
    }
    let Op::Conv(d) = reader else { return None };
    let same_block = plan.blocks.iter().any(|b| b.ops.contains(&i) && b.ops.contains(&j));
    (d.input == c.output && d.residual != Some(c.output) && same_block && kernel_of(d, plan, conv).is_gemm()).then_some(j)
}

/// Refuses, before anything is allocated, a plan whose buffers exceed what
/// this GPU can bind or allocate.
pub(super) fn check_fits(gpu: &Gpu, plan: &Plan, precision: Precision, conv: ConvKernels) -> Result<()> {
    let max = gpu.limits.max_storage_buffer_binding_size.min(gpu.limits.max_buffer_size);
    let (h, w) = (plan.shape(plan.input).h, plan.shape(plan.input).w);
    let largest = Slots::bytes(plan, precision).into_iter().max().unwrap_or(0);
    if largest > max {
        bail!(InputTooLarge, "input {h}×{w} is too large for this GPU: an activation would take {} MB, more than the {} MB it can bind at once", largest >> 20, max >> 20);
    }
    if let Some(n) = plan.ops.iter().filter_map(|op| partial_floats(plan, conv, op)).max().filter(|n| n * 4 > max) {
        bail!(InputTooLarge, "input {h}×{w} is too large for this GPU: split-K partial sums would take {} MB, more than the {} MB it can bind at once", (n * 4) >> 20, max >> 20);
    }
    Ok(())
}

fn build_op(cx: &Ctx, index: usize, op: &Op) -> Result<Dispatch> {
    let label = op.label(&cx.plan.tensors);
    match op {
        Op::Conv(c) => conv(cx, index, &label, c),
        Op::BatchNorm { bn, input, output } => {
            let s = cx.shape(*input);
            cx.k.batchnorm(&label, s.c, s.h * s.w, bn.eps, cx.buf(*input), &cx.params.bns[&bn.name], cx.buf(*output))
        }
        Op::Relu { input, output } => cx.k.relu(&label, cx.shape(*input).len(), cx.buf(*input), cx.buf(*output)),
        Op::AddRelu { main, shortcut, output } => cx.k.add_relu(&label, cx.shape(*main).len(), cx.buf(*main), cx.buf(*shortcut), cx.buf(*output)),
        Op::MaxPool { pool, input, output } => cx.k.maxpool(&label, PoolParams::of(pool, cx.shape(*input), cx.shape(*output)), cx.buf(*input), cx.buf(*output)),
        Op::GlobalAvgPool { input, output } => {
            let s = cx.shape(*input);
            cx.k.global_avg_pool(&label, s.c, s.h * s.w, cx.buf(*input), cx.buf(*output))
        }
        Op::Dense { input, output } => {
            let (i, o) = (cx.shape(*input).len(), cx.shape(*output).len());
            cx.k.dense(&label, i, o, cx.buf(*input), &cx.params.dense_w, &cx.params.dense_b, cx.buf(*output))
        }
        Op::Softmax { input, output } => cx.k.softmax(&label, cx.shape(*input).len(), cx.buf(*input), cx.buf(*output)),
    }
}

fn conv(cx: &Ctx, index: usize, label: &str, c: &ConvOp) -> Result<Dispatch> {
    let s = &c.conv;
    let (i, o) = (cx.shape(c.input), cx.shape(c.output));
    let (w, b) = &cx.params.convs[&s.name];
    let scratch = cx.split.scratch_of[index].map(|b| &cx.scratch[b].0);
    let mut bufs = ConvBuffers { input: cx.buf(c.input), weight: w, bias: b.as_ref(), residual: c.residual.map(|t| cx.buf(t)), output: cx.buf(c.output), main_out: c.main_out.map(|t| cx.buf(t)), fold: None, f32_input: cx.plan.tensors[c.input].storage == Storage::F32 };
    // A folded input: the previous conv's partial sums, its bias and ReLU.
    if let Some(from) = cx.split.folded_from[index] {
        let (Op::Conv(pc), Some(at)) = (&cx.plan.ops[from], cx.split.scratch_of[from]) else { bail!("{label}: folded from an op without partial sums") };
        bufs.input = &cx.scratch[at].0;
        bufs.fold = Some(FoldedInput { splits: splits_of(pc, cx.plan, cx.conv), bias: cx.params.convs[&pc.conv.name].1.as_ref(), relu: pc.relu });
    }
    let kernel = kernel_of(c, cx.plan, cx.conv);
    // The label says which kernel and shape, for per-layer timings.
    let shape = format!("{}×{}/{} {}→{} at {}×{}", s.kernel.0, s.kernel.1, s.stride, i.c, o.c, o.h, o.w);
    let label = match kernel {
        LayerKernel::Direct => format!("{label} [direct {shape}]"),
        LayerKernel::Gemm => format!("{label} [gemm {shape}]"),
        LayerKernel::SmallGemm => format!("{label} [gemm 32×32 tiles {shape}]"),
        LayerKernel::SplitK(n) => format!("{label} [gemm {shape}, K in {n}]"),
        LayerKernel::Coop(1) => format!("{label} [coop {shape}]"),
        LayerKernel::Coop(n) => format!("{label} [coop {shape}, K in {n}]"),
    };
    let label = match (bufs.fold.is_some(), cx.split.unreduced(index)) {
        (false, false) => label,
        (true, false) => format!("{label} (input folded)"),
        (false, true) => format!("{label} (sums left to the next conv)"),
        (true, true) => format!("{label} (input folded, sums left to the next conv)"),
    };
    if cx.split.unreduced(index) {
        let Some(out) = scratch else { bail!("{label}: no buffer for its partial sums") };
        let partials = ConvBuffers { bias: None, residual: None, main_out: None, output: out, ..bufs };
        return cx.k.conv_partials(&label, ConvParams::of(s, i, o, c.relu), &partials, kernel);
    }
    cx.k.conv(&label, ConvParams::of(s, i, o, c.relu), &bufs, kernel, scratch)
}
