//! One frame on the GPU: the input written (a tensor, or RGBA pixels that the
//! preprocessing kernel turns into one), then a compute pass per stage, the
//! statistics, and the copies to the staging buffer: in one command buffer,
//! or ([`Submit::Stage`]) one per stage, each submitted once recorded.

use crate::gpu::{Gpu, OwnedBuffer};
use crate::kernels::{Dispatch, Kernels, PreprocessParams};
use crate::Result;
use crate::{bail, plan::Plan};

use super::network::Network;
use super::readback::{FrameStaging, StagingLayout, TensorReader};
use super::stats::StatsPass;
use super::timing::{LayerProfiler, StageTimer};
use super::params::GpuParams;
use crate::engine::Submit;
use crate::kernels::ConvKernels;

/// Everything the engine keeps for one input size.
pub(super) struct PerSize {
    pub net: Network,
    pub stats: StatsPass,
    pub timer: StageTimer,
    pub staging: FrameStaging,
    /// RGBA8 source pixels and the preprocessing dispatch, made on first use
    /// and remade only when a larger image arrives.
    image: Option<ImageInput>,
    pub reader: TensorReader,
    pub profiler: LayerProfiler,
}

struct ImageInput {
    pixels: OwnedBuffer,
    /// Pixels the buffer holds.
    capacity: usize,
    dispatch: Dispatch,
}

impl PerSize {
    pub fn new(gpu: &Gpu, k: &Kernels, params: &GpuParams, plan: Plan, conv: ConvKernels) -> Result<PerSize> {
        let classes = plan.shape(plan.logits).len();
        let net = Network::new(gpu, k, params, plan, conv)?;
        let stats = StatsPass::new(k, &net.plan, &net.slots)?;
        let timer = StageTimer::new(gpu, &net.plan);
        let staging = FrameStaging::new(&gpu.device, StagingLayout::new(classes, stats.floats, timer.bytes()));
        Ok(PerSize { net, stats, timer, staging, image: None, reader: Default::default(), profiler: Default::default() })
    }

    pub fn plan(&self) -> &Plan {
        &self.net.plan
    }

    /// Writes a `3×H×W` tensor at the planned size as the input: f32 on
    /// every path (the first conv reads it as f32), so nothing is converted
    /// on the CPU.
    pub fn write_tensor(&mut self, gpu: &Gpu, input: &[f32]) {
        gpu.queue.write_buffer(self.net.slots.of(self.net.plan.input), 0, bytemuck::cast_slice(input));
    }

    /// Writes RGBA8 pixels and their preprocessing parameters; the frame's
    /// first pass then turns them into the input tensor.
    pub fn write_pixels(&mut self, gpu: &Gpu, k: &Kernels, pixels: &[u8], params: PreprocessParams) -> Result<()> {
        let words = pixels.len() / 4;
        let max = gpu.limits.max_storage_buffer_binding_size.min(gpu.limits.max_buffer_size);
        if pixels.len() as u64 > max {
            bail!(InputTooLarge, "the image ({}×{}) is larger than this GPU can take in one buffer ({} MB): scale it down", params.src_w, params.src_h, max >> 20);
        }
        if self.image.as_ref().is_none_or(|i| i.capacity < words) {
            let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("pixels"),
                size: (words.max(1) * 4) as u64,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let dispatch = k.preprocess("preprocess", params, &buffer, self.net.slots.of(self.net.plan.input))?;
            self.image = Some(ImageInput { pixels: OwnedBuffer(buffer), capacity: words, dispatch });
        }
        let img = self.image.as_ref().expect("made above");
        gpu.queue.write_buffer(&img.pixels, 0, pixels);
        img.dispatch.write_params(&gpu.queue, &params);
        Ok(())
    }

    /// Forgets the pixel buffer, so the next image makes a fresh one: after a
    /// failed frame it may be the buffer that failed.
    pub fn drop_image(&mut self) {
        self.image = None;
    }

    /// Records and submits one frame: preprocessing (after `write_pixels`),
    /// every stage in its own (timed) pass with switched-off blocks
    /// bypassed, the statistics if `with_stats`, and the staging copies;
    /// with [`Submit::Stage`], each stage but the last is submitted as soon
    /// as it is recorded, so the GPU starts while the CPU records the rest.
    pub fn submit(&self, gpu: &Gpu, mode: Submit, skip: &[bool], with_preprocess: bool, with_stats: bool) {
        let encoder = || gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("frame") });
        let mut enc = encoder();
        for (si, (name, blocks)) in self.timer.stages.iter().enumerate() {
            if si > 0 && mode == Submit::Stage {
                gpu.queue.submit([std::mem::replace(&mut enc, encoder()).finish()]);
            }
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(name), timestamp_writes: self.timer.pass_writes(si) });
            if si == 0 && with_preprocess {
                if let Some(img) = &self.image {
                    img.dispatch.record(&mut pass);
                }
            }
            for d in self.net.frame_dispatches(blocks.clone(), skip) {
                d.record(&mut pass);
            }
        }
        if with_stats {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("stats"), timestamp_writes: None });
            self.stats.record(&mut pass);
        }
        let (plan, slots, staging) = (&self.net.plan, &self.net.slots, &self.staging);
        staging.copy_outputs(&mut enc, slots.of(plan.logits), slots.of(plan.probs));
        if with_stats {
            self.stats.copy_to(&mut enc, slots, &staging.buffer, staging.layout.stats_at as u64);
        }
        self.timer.copy_to(&mut enc, &staging.buffer, staging.layout.times_at as u64);
        gpu.queue.submit([enc.finish()]);
    }

    /// Compute dispatches one frame issues.
    pub fn dispatches_per_frame(&self, skip: &[bool], with_preprocess: bool, with_stats: bool) -> usize {
        let net: usize = self.net.frame_dispatches(0..self.net.plan.blocks.len(), skip).map(Dispatch::count).sum();
        let pre = if with_preprocess { self.image.as_ref().map_or(0, |i| i.dispatch.count()) } else { 0 };
        net + pre + if with_stats { self.stats.dispatch_count() } else { 0 }
    }
}
