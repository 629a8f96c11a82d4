//! Getting results back to the CPU: the per-frame staging buffer (logits,
//! probabilities, statistics, stage timestamps: one copy, one map), and
//! partial reads of kept tensors, decoded from f16 where they are stored so.

use crate::gpu::{map_into, Gpu, OwnedBuffer};
use crate::Result;

/// Where each part of a frame's results sits in its staging buffer, in bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct StagingLayout {
    pub classes: usize,
    /// Logits at 0, probabilities after them, then statistics, then timestamps.
    pub stats_at: usize,
    pub times_at: usize,
    pub size: usize,
}

impl StagingLayout {
    pub fn new(classes: usize, stats_floats: usize, timestamp_bytes: usize) -> StagingLayout {
        let stats_at = 8 * classes;
        let times_at = stats_at + 4 * stats_floats;
        StagingLayout { classes, stats_at, times_at, size: times_at + timestamp_bytes }
    }
}

/// The frame's staging buffer and the bytes last read from it, kept from
/// frame to frame so a frame's readback allocates nothing.
pub(super) struct FrameStaging {
    pub buffer: OwnedBuffer,
    pub layout: StagingLayout,
    pub bytes: Vec<u8>,
}

impl FrameStaging {
    pub fn new(device: &wgpu::Device, layout: StagingLayout) -> FrameStaging {
        let buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("frame staging"),
            size: layout.size as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        FrameStaging { buffer: OwnedBuffer(buffer), layout, bytes: Vec::new() }
    }

    /// Copies logits and probabilities (f32 tensors of `classes` values).
    pub fn copy_outputs(&self, enc: &mut wgpu::CommandEncoder, logits: &wgpu::Buffer, probs: &wgpu::Buffer) {
        let n = (self.layout.classes * 4) as u64;
        enc.copy_buffer_to_buffer(logits, 0, &self.buffer, 0, n);
        enc.copy_buffer_to_buffer(probs, 0, &self.buffer, n, n);
    }

    /// Waits for the frame and reads the whole staging buffer into `bytes`.
    pub async fn read(&mut self, gpu: &Gpu) -> Result<()> {
        map_into(gpu, &self.buffer, self.layout.size as u64, &mut self.bytes).await
    }

    /// Values `first..first + n` of the f32s at the start (logits, then probabilities).
    pub fn floats(&self, first: usize, n: usize, out: &mut Vec<f32>) {
        out.clear();
        out.extend(self.bytes[4 * first..4 * (first + n)].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())));
    }
}

/// Reads parts of tensors through one staging buffer, grown to the largest
/// read so far.
#[derive(Default)]
pub(super) struct TensorReader {
    staging: Option<OwnedBuffer>,
}

impl TensorReader {
    /// Reads `(first value, count)` ranges of `src`, whose values are
    /// `value_bytes` wide (4: f32, 2: f16), as f32. Copies move whole 4-byte
    /// words, so f16 ranges are widened to word boundaries and trimmed after.
    pub async fn read_ranges(&mut self, gpu: &Gpu, src: &wgpu::Buffer, value_bytes: usize, ranges: &[(usize, usize)]) -> Result<Vec<f32>> {
        let mut copies = Vec::with_capacity(ranges.len());
        let mut at = 0u64;
        for &(first, count) in ranges {
            let (start, end) = (first * value_bytes, (first + count) * value_bytes);
            let (a, b) = (start / 4 * 4, end.div_ceil(4) * 4);
            copies.push((a as u64, at, (b - a) as u64, start - a));
            at += (b - a) as u64;
        }
        if self.staging.as_ref().is_none_or(|s| s.size() < at.max(4)) {
            self.staging = Some(OwnedBuffer(gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read staging"),
                size: at.max(4),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })));
        }
        let staging = self.staging.as_ref().expect("made above");
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        for &(from, to, size, _) in &copies {
            enc.copy_buffer_to_buffer(src, from, staging, to, size);
        }
        gpu.queue.submit([enc.finish()]);
        let mut bytes = Vec::new();
        map_into(gpu, staging, at, &mut bytes).await?;
        let mut out = Vec::with_capacity(ranges.iter().map(|r| r.1).sum());
        for (&(_, count), &(_, to, _, skip)) in ranges.iter().zip(&copies) {
            let b = &bytes[to as usize + skip..to as usize + skip + count * value_bytes];
            match value_bytes {
                2 => out.extend(b.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())),
                _ => out.extend(b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()))),
            }
        }
        Ok(out)
    }
}
