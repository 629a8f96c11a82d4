//! A plan instantiated on the GPU for one input size: a buffer per slot and
//! a bound dispatch per op, made once; each frame only records them.

use crate::gpu::Gpu;
use crate::kernels::{ConvBuffers, ConvKernels, ConvParams, Dispatch, Kernels, LayerKernel, PoolParams, Precision};
use crate::model::Shape;
use crate::plan::{BlockRole, ConvOp, Op, Plan, Storage, TensorId};
use crate::{bail, Result};

use super::params::GpuParams;

/// The activation buffers: one per plan slot, each as large as the largest
/// tensor it holds, at that tensor's value size.
pub(super) struct Slots {
    buffers: Vec<wgpu::Buffer>,
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
                gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("slot {i}")),
                    size: bytes.max(4),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                })
            })
            .collect();
        Slots { buffers, slot_of: plan.slot_of.clone() }
    }

    /// The buffer that holds tensor `t`.
    pub fn of(&self, t: TensorId) -> &wgpu::Buffer {
        &self.buffers[self.slot_of[t]]
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
    /// Partial sums of split-K convs (one buffer, reused by every such layer).
    _scratch: Option<wgpu::Buffer>,
}

/// What building a dispatch needs.
struct Ctx<'a> {
    k: &'a Kernels,
    params: &'a GpuParams,
    plan: &'a Plan,
    slots: &'a Slots,
    conv: ConvKernels,
    scratch: Option<&'a wgpu::Buffer>,
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
        let scratch = split_k_scratch(gpu, &plan, conv);
        let cx = Ctx { k, params, plan: &plan, slots: &slots, conv, scratch: scratch.as_ref() };
        let dispatches = plan.ops.iter().map(|op| build_op(&cx, op)).collect::<Result<Vec<_>>>()?;
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
    /// when it is switched off (`skipped`).
    pub fn frame_dispatches<'a>(&'a self, blocks: std::ops::Range<usize>, skipped: impl Fn(&str) -> bool + 'a) -> impl Iterator<Item = &'a Dispatch> + 'a {
        blocks.flat_map(move |bi| {
            let b = &self.plan.blocks[bi];
            match &self.bypass[bi] {
                Some(bypass) if skipped(&b.name) => std::slice::from_ref(bypass).iter(),
                _ => self.dispatches[b.ops.clone()].iter(),
            }
        })
    }
}

/// Values of split-K partial sums the largest split-K conv writes.
fn split_k_floats(plan: &Plan, conv: ConvKernels) -> Option<u64> {
    plan.ops
        .iter()
        .filter_map(|op| match op {
            Op::Conv(c) => match kernel_of(c, plan, conv) {
                LayerKernel::SplitK(s) => Some(s as u64 * plan.shape(c.output).len() as u64),
                LayerKernel::Coop(s) if s > 1 => Some(s as u64 * plan.shape(c.output).len() as u64),
                _ => None,
            },
            _ => None,
        })
        .max()
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
    if let Some(n) = split_k_floats(plan, conv).filter(|n| n * 4 > max) {
        bail!(InputTooLarge, "input {h}×{w} is too large for this GPU: split-K partial sums would take {} MB, more than the {} MB it can bind at once", (n * 4) >> 20, max >> 20);
    }
    Ok(())
}

/// The buffer every split-K conv writes its partial sums to: as large as the
/// largest of them needs.
fn split_k_scratch(gpu: &Gpu, plan: &Plan, conv: ConvKernels) -> Option<wgpu::Buffer> {
    split_k_floats(plan, conv).map(|n| {
        gpu.device.create_buffer(&wgpu::BufferDescriptor { label: Some("split-K partial sums"), size: n * 4, usage: wgpu::BufferUsages::STORAGE, mapped_at_creation: false })
    })
}

fn build_op(cx: &Ctx, op: &Op) -> Result<Dispatch> {
    let label = op.label(&cx.plan.tensors);
    match op {
        Op::Conv(c) => conv(cx, &label, c),
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

fn conv(cx: &Ctx, label: &str, c: &ConvOp) -> Result<Dispatch> {
    let s = &c.conv;
    let (i, o) = (cx.shape(c.input), cx.shape(c.output));
    let (w, b) = &cx.params.convs[&s.name];
    let bufs = ConvBuffers { input: cx.buf(c.input), weight: w, bias: b.as_ref(), residual: c.residual.map(|t| cx.buf(t)), output: cx.buf(c.output), main_out: c.main_out.map(|t| cx.buf(t)) };
    let kernel = kernel_of(c, cx.plan, cx.conv);
    // The label says which kernel and shape, for per-layer timings.
    let shape = format!("{}×{}/{} {}→{} at {}×{}", s.kernel.0, s.kernel.1, s.stride, i.c, o.c, o.h, o.w);
    let label = match kernel {
        LayerKernel::Direct => format!("{label} [direct {shape}]"),
        LayerKernel::Gemm => format!("{label} [gemm {shape}]"),
        LayerKernel::SplitK(n) => format!("{label} [gemm {shape}, K in {n}]"),
        LayerKernel::Coop(1) => format!("{label} [coop {shape}]"),
        LayerKernel::Coop(n) => format!("{label} [coop {shape}, K in {n}]"),
    };
    cx.k.conv(&label, ConvParams::of(s, i, o, c.relu), &bufs, kernel, cx.scratch)
}
