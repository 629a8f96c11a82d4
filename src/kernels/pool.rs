//! Pooling: the stem's max pool and the head's global average pool (also
//! the per-block channel means of the activation view), and their backward
//! passes. A batch is N·C planes to all of them.

use super::{grid, grid_for, Dispatch, Kernels, Variant};
use crate::model::{PoolSpec, Shape};
use crate::Result;

crate::uniform! {
    pub struct PoolParams for ["maxpool.wgsl", "maxpool_backward.wgsl"] {
        pub channels: u32,
        pub in_h: u32,
        pub in_w: u32,
        pub out_h: u32,
        pub out_w: u32,
        pub kernel: u32,
        pub stride: u32,
        pub pad: u32,
    }
}

crate::uniform! {
    pub struct GapParams for ["global_avg_pool.wgsl"] {
        pub channels: u32,
        pub plane: u32,
        pub _pad: [u32; 2],
    }
}

crate::uniform! {
    pub struct GapBackwardParams for ["global_avg_pool_backward.wgsl"] {
        pub len: u32,
        pub plane: u32,
        pub _pad: [u32; 2],
    }
}

impl PoolParams {
    pub fn of(pool: &PoolSpec, input: Shape, output: Shape) -> PoolParams {
        PoolParams {
            channels: input.c as u32,
            in_h: input.h as u32,
            in_w: input.w as u32,
            out_h: output.h as u32,
            out_w: output.w as u32,
            kernel: pool.kernel as u32,
            stride: pool.stride as u32,
            pad: pool.padding as u32,
        }
    }
}

impl Kernels {
    pub fn maxpool(&self, label: &str, p: PoolParams, input: &wgpu::Buffer, output: &wgpu::Buffer) -> Result<Dispatch> {
        let n = p.channels as usize * p.out_h as usize * p.out_w as usize;
        self.bind(label, "maxpool.wgsl", Variant::PLAIN, &[input, output], &p, grid_for(n)?)
    }

    /// The mean of each of `channels` planes of `plane` values (one workgroup per channel).
    pub fn global_avg_pool(&self, label: &str, channels: usize, plane: usize, input: &wgpu::Buffer, output: &wgpu::Buffer) -> Result<Dispatch> {
        let p = GapParams { channels: channels as u32, plane: plane as u32, ..Default::default() };
        self.bind(label, "global_avg_pool.wgsl", Variant::PLAIN, &[input, output], &p, grid(channels)?)
    }

    /// Adds max pooling's input gradient to `dx`: each output's `dy` to its
    /// window's first maximum in `input`.
    pub fn maxpool_backward(&self, label: &str, p: PoolParams, input: &wgpu::Buffer, dy: &wgpu::Buffer, dx: &wgpu::Buffer) -> Result<Dispatch> {
        let n = p.channels as usize * p.in_h as usize * p.in_w as usize;
        self.bind(label, "maxpool_backward.wgsl", Variant::PLAIN, &[input, dy, dx], &p, grid_for(n)?)
    }

    /// Adds global average pooling's input gradient to `dx` (`planes` planes of `plane`).
    pub fn global_avg_pool_backward(&self, label: &str, planes: usize, plane: usize, dy: &wgpu::Buffer, dx: &wgpu::Buffer) -> Result<Dispatch> {
        let p = GapBackwardParams { len: (planes * plane) as u32, plane: plane as u32, _pad: [0; 2] };
        self.bind(label, "global_avg_pool_backward.wgsl", Variant::PLAIN, &[dy, dx], &p, grid_for(planes * plane)?)
    }
}
