//! The page's per-block statistics: each block's channel means and, per
//! residual block, ‖F(x)‖² and ‖x‖² (the "how close to the identity" view),
//! in one dispatch per block plus one for all the norms.

use super::{grid, Dispatch, Kernels, Variant};
use crate::Result;

crate::uniform! {
    pub struct BlockStatsParams for ["block_stats.wgsl"] {
        pub channels: u32,
        pub plane: u32,
        /// Where the block's means go in the statistics buffer (in f32s).
        pub means_at: u32,
        /// Where its per-channel squares go: F(x)'s `channels`, then x's.
        pub squares_at: u32,
        /// 1 for a residual block.
        pub residual: u32,
        pub _pad: [u32; 3],
    }
}

crate::uniform! {
    pub struct StatsNormsParams for ["stats_norms.wgsl"] {
        /// Where the (‖F(x)‖², ‖x‖²) pairs go, two f32s per block.
        pub norms_at: u32,
        pub _pad: [u32; 3],
    }
}

/// One residual block's entry for [`Kernels::stats_norms`], as
/// `stats_norms.wgsl` reads it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct NormsEntry {
    pub squares_at: u32,
    pub channels: u32,
    /// The block's index: its pair goes to `norms_at + 2·block`.
    pub block: u32,
    pub _pad: u32,
}

/// A residual block's two added tensors, for [`Kernels::block_stats`].
pub struct ResidualPair<'a> {
    pub main: &'a wgpu::Buffer,
    pub shortcut: &'a wgpu::Buffer,
}

crate::uniform! {
    pub struct SumSquaresParams for ["sum_squares.wgsl"] {
        pub len: u32,
        pub chunk: u32,
        /// Where the slices' sums go in the output buffer (in f32s).
        pub at: u32,
        pub _pad: u32,
    }
}

impl Kernels {
    /// Channel means of `block_out` (`p.channels` planes of `p.plane`) to
    /// `stats[p.means_at..]`; with `residual`, each channel's Σ F(x)² and Σ x²
    /// to `stats[p.squares_at..]`. One workgroup per channel.
    pub fn block_stats(&self, label: &str, mut p: BlockStatsParams, block_out: &wgpu::Buffer, residual: Option<ResidualPair>, stats: &wgpu::Buffer) -> Result<Dispatch> {
        p.residual = residual.is_some() as u32;
        let (main, shortcut) = residual.map_or((&self.dummy, &self.dummy), |r| (r.main, r.shortcut));
        self.bind(label, "block_stats.wgsl", Variant::PLAIN, &[block_out, main, shortcut, stats], &p, grid(p.channels as usize)?)
    }

    /// Adds up each residual block's per-channel squares (`entries`, a
    /// buffer of [`NormsEntry`], `blocks` of them) into its norms pair.
    pub fn stats_norms(&self, label: &str, norms_at: u32, stats: &wgpu::Buffer, entries: &wgpu::Buffer, blocks: usize) -> Result<Dispatch> {
        let p = StatsNormsParams { norms_at, ..Default::default() };
        self.bind(label, "stats_norms.wgsl", Variant::PLAIN, &[stats, entries], &p, [blocks.max(1) as u32, 1, 1])
    }

    /// Σ v² of `len` values of `input`, one sum per slice of
    /// [`Kernels::SQUARES_CHUNK`] values, to `output[at..]` (the host adds the
    /// slices up): a gradient's norm at a block's input.
    pub fn sum_squares(&self, label: &str, len: usize, input: &wgpu::Buffer, output: &wgpu::Buffer, at: usize) -> Result<Dispatch> {
        let p = SumSquaresParams { len: len as u32, chunk: Self::SQUARES_CHUNK as u32, at: at as u32, _pad: 0 };
        self.bind(label, "sum_squares.wgsl", Variant::PLAIN, &[input, output], &p, grid(len.div_ceil(Self::SQUARES_CHUNK))?)
    }

    pub const SQUARES_CHUNK: usize = 4096;
}
