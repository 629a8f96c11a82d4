//! Elementwise kernels: inference batchnorm (inspect mode), ReLU, and the
//! end of a residual block, relu(main path + shortcut).

use super::{grid_for, Dispatch, Kernels, Variant};
use crate::Result;

crate::uniform! {
    pub struct BnParams for ["batchnorm.wgsl"] {
        pub channels: u32,
        pub plane: u32,
        pub eps: f32,
        pub _pad: u32,
    }
}

crate::uniform! {
    /// The length of a flat elementwise operation.
    pub struct LenParams for ["relu.wgsl", "add_relu.wgsl"] {
        pub len: u32,
        pub _pad: [u32; 3],
    }
}

/// Batchnorm parameters → one (gamma, beta, mean, var) vec4 per channel.
pub fn pack_batchnorm(gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32]) -> Vec<f32> {
    (0..gamma.len()).flat_map(|c| [gamma[c], beta[c], mean[c], var[c]]).collect()
}

impl Kernels {
    /// `bn` packed by [`pack_batchnorm`]; `input` is `channels` planes of `plane` values.
    #[allow(clippy::too_many_arguments)]
    pub fn batchnorm(&self, label: &str, channels: usize, plane: usize, eps: f32, input: &wgpu::Buffer, bn: &wgpu::Buffer, output: &wgpu::Buffer) -> Result<Dispatch> {
        let p = BnParams { channels: channels as u32, plane: plane as u32, eps, _pad: 0 };
        self.bind(label, "batchnorm.wgsl", Variant::PLAIN, &[input, bn, output], &p, grid_for(channels * plane)?)
    }

    pub fn add_relu(&self, label: &str, len: usize, a: &wgpu::Buffer, b: &wgpu::Buffer, output: &wgpu::Buffer) -> Result<Dispatch> {
        let p = LenParams { len: len as u32, ..Default::default() };
        self.bind(label, "add_relu.wgsl", Variant::PLAIN, &[a, b, output], &p, grid_for(len)?)
    }

    pub fn relu(&self, label: &str, len: usize, input: &wgpu::Buffer, output: &wgpu::Buffer) -> Result<Dispatch> {
        let p = LenParams { len: len as u32, ..Default::default() };
        self.bind(label, "relu.wgsl", Variant::PLAIN, &[input, output], &p, grid_for(len)?)
    }
}
