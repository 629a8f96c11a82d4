//! The GPU backend: a plan instantiated on a wgpu device. Weights are
//! uploaded once; buffers, bind groups and dispatches are made once per
//! input size; a frame is one command buffer (or one per stage, submitted
//! as each is recorded) and one small readback.
//!
//! * [`params`]: the weights on the GPU, folded or not;
//! * [`network`]: the plan's buffers and one dispatch per op;
//! * [`frame`]: one frame's input, command buffer and submission;
//! * [`stats`]: per-block channel means and ‖F(x)‖/‖x‖ on the GPU;
//! * [`timing`]: GPU time per stage and per op;
//! * [`readback`]: the staging buffers and f16 decoding.

use std::rc::Rc;

use super::{EngineConfig, FrameResults, Submit};
use crate::gpu::Gpu;
use crate::kernels::{ConvKernels, Kernels, Precision, PreprocessParams};
use crate::plan::{Mode, Plan};
use crate::weights::Weights;
use crate::{bail, Result};

mod frame;
mod network;
mod params;
mod readback;
mod stats;
mod timing;

pub(crate) struct GpuBackend {
    gpu: Rc<Gpu>,
    kernels: Kernels,
    /// The conv kernels in use (the config's, or the adapter's default).
    conv: ConvKernels,
    submit: Submit,
    precision: Precision,
    params: params::GpuParams,
    sized: frame::PerSize,
    /// Whether the frame last submitted computed statistics.
    submitted_stats: bool,
}

impl GpuBackend {
    pub async fn new(gpu: Rc<Gpu>, weights: &Weights, config: &EngineConfig, plan: Plan) -> Result<GpuBackend> {
        if config.precision == Precision::F16 {
            if config.mode != Mode::Fast {
                bail!(BadInput, "f16 is a fast-mode path; inspect mode computes and keeps everything in f32");
            }
            if !gpu.features.contains(wgpu::Features::SHADER_F16) {
                bail!(Unsupported, "this GPU adapter ({}) has no shader-f16: use f32", gpu.adapter_name());
            }
        }
        let conv = config.conv.unwrap_or_else(|| ConvKernels::for_adapter(&gpu.adapter_info, gpu.features, config.precision));
        // (Inspect mode runs the direct kernel whatever `conv` says.)
        if matches!(conv, ConvKernels::Coop { .. }) && config.mode == Mode::Fast && config.precision != Precision::F16 {
            bail!(BadInput, "the matrix-fragment conv kernel (coop) reads f16 activations: use precision f16");
        }
        network::check_fits(&gpu, &plan, config.precision, conv)?;
        let scopes = gpu.error_scopes();
        let kernels = Kernels::new(&gpu.device, &gpu.queue, config.precision);
        let params = params::GpuParams::upload(&gpu.device, weights, config.mode, config.precision)?;
        let sized = frame::PerSize::new(&gpu, &kernels, &params, plan, conv);
        scopes.check("setting up the network").await?;
        let submit = config.submit.unwrap_or_else(|| Submit::for_adapter(&gpu.adapter_info));
        Ok(GpuBackend { gpu, kernels, conv, submit, precision: config.precision, params, sized: sized?, submitted_stats: false })
    }

    /// Re-plans for another input size, keeping the uploaded weights.
    pub async fn set_plan(&mut self, plan: Plan) -> Result<()> {
        self.gpu.check_lost()?;
        network::check_fits(&self.gpu, &plan, self.precision, self.conv)?;
        let scopes = self.gpu.error_scopes();
        let sized = frame::PerSize::new(&self.gpu, &self.kernels, &self.params, plan, self.conv);
        scopes.check("setting up the network").await?;
        self.sized = sized?;
        Ok(())
    }

    pub fn plan(&self) -> &Plan {
        self.sized.plan()
    }
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    pub fn conv_kernels(&self) -> ConvKernels {
        self.conv
    }
    pub fn submit_mode(&self) -> Submit {
        self.submit
    }

    pub fn submit_tensor(&mut self, input: &[f32], skip: &[bool], stats: bool) {
        self.sized.write_tensor(&self.gpu, input);
        self.submitted_stats = stats;
        self.sized.submit(&self.gpu, self.submit, skip, false, stats);
    }

    pub fn submit_rgba(&mut self, pixels: &[u8], params: PreprocessParams, skip: &[bool], stats: bool) -> Result<()> {
        self.sized.write_pixels(&self.gpu, &self.kernels, pixels, params)?;
        self.submitted_stats = stats;
        self.sized.submit(&self.gpu, self.submit, skip, true, stats);
        Ok(())
    }

    /// Waits for the frame and decodes its results into `r`.
    pub async fn finish(&mut self, r: &mut FrameResults) -> Result<()> {
        let s = &mut self.sized;
        if let Err(e) = s.staging.read(&self.gpu).await {
            // Leave the backend usable: the next image gets a fresh pixel buffer.
            s.drop_image();
            return Err(e);
        }
        let (n, layout, bytes) = (s.staging.layout.classes, s.staging.layout, &s.staging.bytes);
        s.staging.floats(0, n, &mut r.output.logits);
        s.staging.floats(n, n, &mut r.output.probs);
        s.stats.decode(&s.net.plan, &bytes[layout.stats_at..], self.submitted_stats, &mut r.block_stats);
        s.timer.decode(&self.gpu, &bytes[layout.times_at..], &mut r.stage_ms);
        Ok(())
    }

    /// `(first value, count)` ranges of a tensor of the last frame.
    pub async fn read_ranges(&mut self, tensor: usize, ranges: &[(usize, usize)]) -> Result<Vec<f32>> {
        let s = &mut self.sized;
        let vb = network::value_bytes(s.net.plan.tensors[tensor].storage, self.precision);
        s.reader.read_ranges(&self.gpu, s.net.slots.of(tensor), vb, ranges).await
    }

    /// Each op of a frame in its own timed pass: (label, GPU ms).
    pub async fn profile_layers(&mut self, skip: &[bool]) -> Result<Vec<(String, f64)>> {
        let s = &mut self.sized;
        let order: Vec<_> = s.net.frame_dispatches(0..s.net.plan.blocks.len(), skip).collect();
        s.profiler.profile(&self.gpu, &order).await
    }

    pub fn dispatches_per_frame(&self, skip: &[bool], stats: bool) -> usize {
        self.sized.dispatches_per_frame(skip, false, stats)
    }
}
