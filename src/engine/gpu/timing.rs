//! GPU timings from timestamp queries: each stage of a frame (stem, stage 1…,
//! head) as one timed compute pass, and, for benchmarks, every op in a pass
//! of its own.

use std::ops::Range;

use crate::gpu::{map_bytes, Gpu};
use crate::kernels::Dispatch;
use crate::plan::Plan;
use crate::{bail, Result};

/// The frame's stages: consecutive blocks of one stage, each run as one
/// compute pass, timed where the adapter has timestamp queries.
pub(super) struct StageTimer {
    /// (name, blocks of the plan).
    pub stages: Vec<(String, Range<usize>)>,
    queries: Option<(wgpu::QuerySet, wgpu::Buffer)>,
}

impl StageTimer {
    pub fn new(gpu: &Gpu, plan: &Plan) -> StageTimer {
        let mut stages: Vec<(String, Range<usize>)> = Vec::new();
        for (i, b) in plan.blocks.iter().enumerate() {
            let name = b.stage_name();
            match stages.last_mut() {
                Some((n, r)) if *n == name => r.end = i + 1,
                _ => stages.push((name, i..i + 1)),
            }
        }
        let queries = gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY).then(|| {
            let count = 2 * stages.len() as u32;
            let set = gpu.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("stage timer"), ty: wgpu::QueryType::Timestamp, count });
            let resolve = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: count as u64 * 8,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            (set, resolve)
        });
        StageTimer { stages, queries }
    }

    /// Bytes the timestamps take in the staging buffer (0 without queries).
    pub fn bytes(&self) -> usize {
        self.queries.as_ref().map_or(0, |_| 16 * self.stages.len())
    }

    /// The timestamp writes of stage `i`'s pass.
    pub fn pass_writes(&self, i: usize) -> Option<wgpu::ComputePassTimestampWrites<'_>> {
        self.queries.as_ref().map(|(set, _)| wgpu::ComputePassTimestampWrites {
            query_set: set,
            beginning_of_pass_write_index: Some(2 * i as u32),
            end_of_pass_write_index: Some(2 * i as u32 + 1),
        })
    }

    pub fn copy_to(&self, enc: &mut wgpu::CommandEncoder, staging: &wgpu::Buffer, base: u64) {
        if let Some((set, resolve)) = &self.queries {
            let count = 2 * self.stages.len() as u32;
            enc.resolve_query_set(set, 0..count, resolve, 0);
            enc.copy_buffer_to_buffer(resolve, 0, staging, base, count as u64 * 8);
        }
    }

    /// GPU milliseconds per stage from the staging bytes (from `base`), into
    /// `out` (reusing it); `None` without timestamp queries.
    pub fn decode(&self, gpu: &Gpu, bytes: &[u8], out: &mut Option<Vec<(String, f64)>>) {
        if self.queries.is_none() {
            *out = None;
            return;
        }
        let tick = |i: usize| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap());
        let period = gpu.queue.get_timestamp_period() as f64;
        let stages = out.get_or_insert_with(Vec::new);
        if stages.len() != self.stages.len() {
            *stages = self.stages.iter().map(|(name, _)| (name.clone(), 0.0)).collect();
        }
        for (i, s) in stages.iter_mut().enumerate() {
            s.1 = tick(2 * i + 1).saturating_sub(tick(2 * i)) as f64 * period / 1e6;
        }
    }
}

/// One timestamp pair per op, for [`crate::Engine::profile_layers`]; made on
/// first use and kept.
#[derive(Default)]
pub(super) struct LayerProfiler {
    queries: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
}

impl LayerProfiler {
    /// Runs each of `order` in its own timed compute pass: (label, GPU ms).
    pub async fn profile(&mut self, gpu: &Gpu, order: &[&Dispatch]) -> Result<Vec<(String, f64)>> {
        if !gpu.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            bail!(Unsupported, "this adapter has no timestamp queries");
        }
        let count = 2 * order.len() as u32;
        if count > wgpu::QUERY_SET_MAX_QUERIES {
            bail!("{} ops are more than one query set can time", order.len());
        }
        if self.queries.as_ref().is_some_and(|(set, _, _)| set.count() < count) {
            self.queries = None;
        }
        let device = &gpu.device;
        let (set, resolve, staging) = self.queries.get_or_insert_with(|| {
            let set = device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("layer timer"), ty: wgpu::QueryType::Timestamp, count });
            let buffer = |usage| device.create_buffer(&wgpu::BufferDescriptor { label: Some("layer timestamps"), size: count as u64 * 8, usage, mapped_at_creation: false });
            (set, buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC), buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST))
        });
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("profile") });
        for (i, d) in order.iter().enumerate() {
            let timestamp_writes = Some(wgpu::ComputePassTimestampWrites { query_set: set, beginning_of_pass_write_index: Some(2 * i as u32), end_of_pass_write_index: Some(2 * i as u32 + 1) });
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(&d.label), timestamp_writes });
            d.record(&mut pass);
        }
        enc.resolve_query_set(set, 0..count, resolve, 0);
        enc.copy_buffer_to_buffer(resolve, 0, staging, 0, count as u64 * 8);
        gpu.queue.submit([enc.finish()]);
        let bytes = map_bytes(gpu, staging, count as u64 * 8).await?;
        let period = gpu.queue.get_timestamp_period() as f64;
        let ticks: Vec<u64> = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
        Ok(order.iter().enumerate().map(|(i, d)| (d.label.clone(), ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period / 1e6)).collect())
    }
}
