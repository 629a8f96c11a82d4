//! Elementwise kernels: inference batchnorm (inspect mode), ReLU, and the
//! end of a residual block, relu(main path + shortcut); and for training,
//! batchnorm on batch or running statistics and the backward passes of
//! batchnorm and ReLU.

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

crate::uniform! {
    pub struct BnStatsParams for ["batchnorm_stats.wgsl"] {
        pub channels: u32,
        pub plane: u32,
        pub batch: u32,
        pub eps: f32,
    }
}

crate::uniform! {
    pub struct ScaleShiftParams for ["scale_shift.wgsl"] {
        pub len: u32,
        pub channels: u32,
        pub plane: u32,
        pub _pad: u32,
    }
}

crate::uniform! {
    pub struct BnBackwardParams for ["batchnorm_backward.wgsl"] {
        pub channels: u32,
        pub plane: u32,
        pub batch: u32,
        /// 1: batch statistics; 2: add the input's gradient.
        pub flags: u32,
    }
}

crate::uniform! {
    pub struct ReluBackwardParams for ["relu_backward.wgsl"] {
        pub len: u32,
        /// 1: also add the gradient to the second output.
        pub two: u32,
        pub _pad: [u32; 2],
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

    /// A training batchnorm's coefficients (scale, shift, mean, 1/σ) per
    /// channel to `coef`, from the batch statistics of the `batch` examples
    /// in `input` (its mean and biased variance also to `moments`) and γ, β
    /// in `bn` ([`pack_batchnorm`]).
    #[allow(clippy::too_many_arguments)]
    pub fn batchnorm_stats(&self, label: &str, batch: usize, channels: usize, plane: usize, eps: f32, input: &wgpu::Buffer, bn: &wgpu::Buffer, coef: &wgpu::Buffer, moments: &wgpu::Buffer) -> Result<Dispatch> {
        let p = BnStatsParams { channels: channels as u32, plane: plane as u32, batch: batch as u32, eps };
        self.bind(label, "batchnorm_stats.wgsl", Variant::PLAIN, &[input, bn, coef, moments], &p, [channels as u32, 1, 1])
    }

    /// `output = input·scale + shift` per channel, with `coef` from [`Kernels::batchnorm_stats`].
    #[allow(clippy::too_many_arguments)]
    pub fn scale_shift(&self, label: &str, len: usize, channels: usize, plane: usize, input: &wgpu::Buffer, coef: &wgpu::Buffer, output: &wgpu::Buffer) -> Result<Dispatch> {
        let p = ScaleShiftParams { len: len as u32, channels: channels as u32, plane: plane as u32, _pad: 0 };
        self.bind(label, "scale_shift.wgsl", Variant::PLAIN, &[input, coef, output], &p, grid_for(len)?)
    }

    /// A training batchnorm's backward: dγ then dβ to `dparams` (2·channels),
    /// and, given `dx`, the input's gradient added to it.
    #[allow(clippy::too_many_arguments)]
    pub fn batchnorm_backward(&self, label: &str, batch: usize, channels: usize, plane: usize, batch_stats: bool, x: &wgpu::Buffer, dy: &wgpu::Buffer, coef: &wgpu::Buffer, dparams: &wgpu::Buffer, dx: Option<&wgpu::Buffer>) -> Result<Dispatch> {
        let p = BnBackwardParams { channels: channels as u32, plane: plane as u32, batch: batch as u32, flags: batch_stats as u32 | if dx.is_some() { 2 } else { 0 } };
        self.bind(label, "batchnorm_backward.wgsl", Variant::PLAIN, &[x, dy, coef, dparams, dx.unwrap_or(&self.dummy_out)], &p, [channels as u32, 1, 1])
    }

    /// ReLU's backward from its output `y`: `dy` where `y > 0`, added to
    /// `dx_a` and, given, `dx_b` (a residual add's two paths).
    pub fn relu_backward(&self, label: &str, len: usize, y: &wgpu::Buffer, dy: &wgpu::Buffer, dx_a: &wgpu::Buffer, dx_b: Option<&wgpu::Buffer>) -> Result<Dispatch> {
        let p = ReluBackwardParams { len: len as u32, two: dx_b.is_some() as u32, _pad: [0; 2] };
        self.bind(label, "relu_backward.wgsl", Variant::PLAIN, &[y, dy, dx_a, dx_b.unwrap_or(&self.dummy_out)], &p, grid_for(len)?)
    }
}
