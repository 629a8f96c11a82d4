//! Per-block statistics ([`BlockStats`]), computed on the GPU after the network and read back
//! with the logits: each block's channel means (for choosing which channels
//! to show) and, per residual block, ‖F(x)‖ and ‖x‖ (how far the block is
//! from the identity).

use wgpu::util::DeviceExt;

use crate::engine::BlockStats;
use crate::kernels::stats::{BlockStatsParams, NormsEntry, ResidualPair};
use crate::gpu::OwnedBuffer;
use crate::kernels::{storage_buffer, Dispatch, Kernels};
use crate::plan::{BlockRole, Plan, TensorId};
use crate::Result;

use super::network::Slots;

/// The statistics' dispatches and the one buffer they fill, laid out as the
/// frame's staging buffer takes them: every block's channel means (at `at`,
/// block by block; the head's slot stays empty, its means are the pooled
/// vector, copied as it is), then a (‖F(x)‖², ‖x‖²) pair per block, then
/// the per-channel squares the pairs are summed from (not read back).
pub(super) struct StatsPass {
    /// One per block but the head, then the norms.
    dispatches: Vec<Dispatch>,
    /// Per block: (offset, channels) of its means, in f32s.
    means: Vec<(usize, usize)>,
    buffer: OwnedBuffer,
    /// The frame's copies to the staging buffer, worked out once: runs of
    /// `buffer` (from, to, in f32s) and the head's pooled vector (its
    /// tensor, offset and length).
    runs: Vec<(usize, usize)>,
    head: Vec<(TensorId, usize, usize)>,
    norms_at: usize,
    /// f32s the statistics take in the staging buffer.
    pub floats: usize,
    _entries: wgpu::Buffer,
}

impl StatsPass {
    pub fn new(k: &Kernels, plan: &Plan, slots: &Slots) -> Result<StatsPass> {
        let nb = plan.blocks.len();
        let mut means = Vec::with_capacity(nb);
        let mut at = 0;
        for b in &plan.blocks {
            let c = plan.shape(b.tensor).c;
            means.push((at, c));
            at += c;
        }
        let norms_at = at;
        let floats = at + 2 * nb;
        // Per residual block: its channels' squares after the read-back part.
        let mut squares_at = floats;
        let mut entries = Vec::new();
        let mut params = Vec::with_capacity(nb);
        for (i, b) in plan.blocks.iter().enumerate() {
            let s = plan.shape(b.tensor);
            let p = BlockStatsParams { channels: s.c as u32, plane: (s.h * s.w) as u32, means_at: means[i].0 as u32, squares_at: squares_at as u32, ..Default::default() };
            if b.residual.is_some() {
                entries.push(NormsEntry { squares_at: squares_at as u32, channels: s.c as u32, block: i as u32, _pad: 0 });
                squares_at += 2 * s.c;
            }
            params.push(p);
        }
        let buffer = OwnedBuffer(storage_buffer(k.device(), "block statistics", &vec![0.0; squares_at]));
        // A binding is never empty: one blank entry where there is no residual block.
        let blank = [NormsEntry::default()];
        let entries_buf = k.device().create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("norms entries"),
            contents: bytemuck::cast_slice(if entries.is_empty() { &blank[..] } else { &entries[..] }),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let mut dispatches = Vec::new();
        for (b, p) in plan.blocks.iter().zip(params) {
            if b.role == BlockRole::Head {
                continue;
            }
            let residual = b.residual.map(|r| ResidualPair { main: slots.of(r.main), shortcut: slots.of(r.shortcut) });
            dispatches.push(k.block_stats(&format!("{} statistics", b.name), p, slots.of(b.tensor), residual, &buffer)?);
        }
        if !entries.is_empty() {
            dispatches.push(k.stats_norms("‖F(x)‖, ‖x‖", norms_at as u32, &buffer, &entries_buf, entries.len())?);
        }
        // Read back: the buffer around the head's slot, which the pooled vector fills.
        let (mut runs, mut head, mut from) = (Vec::new(), Vec::new(), 0);
        for (b, &(at, c)) in plan.blocks.iter().zip(&means) {
            if b.role == BlockRole::Head {
                runs.push((from, at));
                head.push((b.tensor, at, c));
                from = at + c;
            }
        }
        runs.push((from, floats));
        runs.retain(|(a, b)| b > a);
        Ok(StatsPass { dispatches, means, buffer, runs, head, norms_at, floats, _entries: entries_buf })
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.dispatches.iter().for_each(|d| d.record(pass));
    }

    pub fn dispatch_count(&self) -> usize {
        self.dispatches.iter().map(Dispatch::count).sum()
    }

    /// Copies the statistics to `staging` from byte `base`.
    pub fn copy_to(&self, enc: &mut wgpu::CommandEncoder, slots: &Slots, staging: &wgpu::Buffer, base: u64) {
        for &(from, to) in &self.runs {
            enc.copy_buffer_to_buffer(&self.buffer, (from * 4) as u64, staging, base + (from * 4) as u64, ((to - from) * 4) as u64);
        }
        for &(tensor, at, c) in &self.head {
            enc.copy_buffer_to_buffer(slots.of(tensor), 0, staging, base + (at * 4) as u64, (c * 4) as u64);
        }
    }

    /// Reads the statistics from the staging bytes (from `base`) into `out`,
    /// reusing its vectors; `computed` false leaves them empty.
    pub fn decode(&self, plan: &Plan, bytes: &[u8], computed: bool, out: &mut BlockStats) {
        let float = |i: usize| f32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
        let n = plan.blocks.len();
        out.channel_means.resize_with(n, Vec::new);
        out.norms.resize(n, None);
        for (i, (b, &(at, c))) in plan.blocks.iter().zip(&self.means).enumerate() {
            let means = &mut out.channel_means[i];
            means.clear();
            if computed {
                means.extend((at..at + c).map(float));
            }
            out.norms[i] = match (computed, b.residual) {
                (true, Some(_)) => Some((float(self.norms_at + 2 * i).max(0.0).sqrt(), float(self.norms_at + 2 * i + 1).max(0.0).sqrt())),
                _ => None,
            };
        }
    }
}
