//! Per-block statistics ([`BlockStats`]), computed on the GPU after the network and read back
//! with the logits: each block's channel means (for choosing which channels
//! to show) and, per residual block, ‖F(x)‖ and ‖x‖ (how far the block is
//! from the identity).

use crate::engine::BlockStats;
use crate::kernels::{storage_buffer, Dispatch, Kernels};
use crate::plan::{BlockRole, Plan};
use crate::Result;

use super::network::Slots;

/// The statistics' dispatches and buffers for one input size, and where
/// their values land in the frame's staging buffer (in f32s from its start).
pub(super) struct StatsPass {
    dispatches: Vec<Dispatch>,
    /// Per block: its means buffer (none for the head: the pooled vector is
    /// copied as it is) and (offset, channels) in the staging area.
    means: Vec<(Option<wgpu::Buffer>, usize, usize)>,
    /// ‖F(x)‖², ‖x‖² per block.
    norms: wgpu::Buffer,
    norms_at: usize,
    /// f32s the statistics take in the staging buffer.
    pub floats: usize,
}

impl StatsPass {
    pub fn new(k: &Kernels, plan: &Plan, slots: &Slots) -> Result<StatsPass> {
        let nb = plan.blocks.len();
        let norms = storage_buffer(k.device(), "norms", &vec![0.0; 2 * nb]);
        let mut dispatches = Vec::new();
        let mut means = Vec::new();
        let mut at = 0;
        for (i, b) in plan.blocks.iter().enumerate() {
            let s = plan.shape(b.tensor);
            let buffer = if b.role == BlockRole::Head {
                None
            } else {
                let m = storage_buffer(k.device(), &format!("{} means", b.name), &vec![0.0; s.c]);
                dispatches.push(k.global_avg_pool("means", s.c, s.h * s.w, slots.of(b.tensor), &m)?);
                Some(m)
            };
            means.push((buffer, at, s.c));
            at += s.c;
            if let Some(r) = b.residual {
                dispatches.push(k.sum_squares("|F(x)|", s.len(), slots.of(r.main), &norms, 2 * i)?);
                dispatches.push(k.sum_squares("|x|", s.len(), slots.of(r.shortcut), &norms, 2 * i + 1)?);
            }
        }
        Ok(StatsPass { dispatches, means, norms, norms_at: at, floats: at + 2 * nb })
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.dispatches.iter().for_each(|d| d.record(pass));
    }

    pub fn dispatch_count(&self) -> usize {
        self.dispatches.iter().map(Dispatch::count).sum()
    }

    /// Copies the statistics to `staging` from byte `base`.
    pub fn copy_to(&self, enc: &mut wgpu::CommandEncoder, plan: &Plan, slots: &Slots, staging: &wgpu::Buffer, base: u64) {
        for ((buffer, at, c), b) in self.means.iter().zip(&plan.blocks) {
            let src = buffer.as_ref().unwrap_or_else(|| slots.of(b.tensor));
            enc.copy_buffer_to_buffer(src, 0, staging, base + (*at * 4) as u64, (*c * 4) as u64);
        }
        enc.copy_buffer_to_buffer(&self.norms, 0, staging, base + (self.norms_at * 4) as u64, (plan.blocks.len() * 8) as u64);
    }

    /// Reads the statistics from the staging bytes (from `base`) into `out`,
    /// reusing its vectors; `computed` false leaves them empty.
    pub fn decode(&self, plan: &Plan, bytes: &[u8], computed: bool, out: &mut BlockStats) {
        let float = |i: usize| f32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
        let n = plan.blocks.len();
        out.channel_means.resize_with(n, Vec::new);
        out.norms.resize(n, None);
        for (i, (b, (_, at, c))) in plan.blocks.iter().zip(&self.means).enumerate() {
            let means = &mut out.channel_means[i];
            means.clear();
            if computed {
                means.extend((*at..at + c).map(float));
            }
            out.norms[i] = match (computed, b.residual) {
                (true, Some(_)) => Some((float(self.norms_at + 2 * i).max(0.0).sqrt(), float(self.norms_at + 2 * i + 1).max(0.0).sqrt())),
                _ => None,
            };
        }
    }
}
