//! The head: the dense layer (a matrix-vector product at batch 1) and softmax.

use super::{grid, Dispatch, Kernels, Variant};
use crate::Result;

crate::uniform! {
    pub struct DenseParams for ["dense.wgsl"] {
        pub in_features: u32,
        pub out_features: u32,
        pub _pad: [u32; 2],
    }
}

crate::uniform! {
    pub struct SoftmaxParams for ["softmax.wgsl"] {
        pub len: u32,
        pub _pad: [u32; 3],
    }
}

impl Kernels {
    /// `weight` row-major `(out_features, in_features)`; one workgroup per output.
    #[allow(clippy::too_many_arguments)]
    pub fn dense(&self, label: &str, in_features: usize, out_features: usize, input: &wgpu::Buffer, weight: &wgpu::Buffer, bias: &wgpu::Buffer, output: &wgpu::Buffer) -> Result<Dispatch> {
        let p = DenseParams { in_features: in_features as u32, out_features: out_features as u32, ..Default::default() };
        self.bind(label, "dense.wgsl", Variant::PLAIN, &[input, weight, bias, output], &p, grid(out_features)?)
    }

    /// Softmax of `len` values in one workgroup.
    pub fn softmax(&self, label: &str, len: usize, input: &wgpu::Buffer, output: &wgpu::Buffer) -> Result<Dispatch> {
        let p = SoftmaxParams { len: len as u32, ..Default::default() };
        self.bind(label, "softmax.wgsl", Variant::PLAIN, &[input, output], &p, [1, 1, 1])
    }
}
