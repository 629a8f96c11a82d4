//! The head: the dense layer (a matrix-vector product at batch 1) and
//! softmax; for training, the dense layer's backward and the softmax
//! cross-entropy loss with its gradient.

use super::{grid, Dispatch, Kernels, Variant};
use crate::Result;

crate::uniform! {
    pub struct DenseParams for ["dense.wgsl"] {
        pub in_features: u32,
        pub out_features: u32,
        /// Rows of input (1 in inference).
        pub batch: u32,
        pub _pad: u32,
    }
}

crate::uniform! {
    pub struct SoftmaxParams for ["softmax.wgsl"] {
        pub len: u32,
        pub _pad: [u32; 3],
    }
}

crate::uniform! {
    pub struct DenseBackwardParams for ["dense_backward.wgsl"] {
        pub in_features: u32,
        pub out_features: u32,
        pub batch: u32,
        pub write_dx: u32,
    }
}

crate::uniform! {
    pub struct CrossEntropyParams for ["cross_entropy.wgsl"] {
        pub classes: u32,
        pub batch: u32,
        pub _pad: [u32; 2],
    }
}

impl Kernels {
    /// `weight` row-major `(out_features, in_features)`; one workgroup per output.
    #[allow(clippy::too_many_arguments)]
    pub fn dense(&self, label: &str, in_features: usize, out_features: usize, input: &wgpu::Buffer, weight: &wgpu::Buffer, bias: &wgpu::Buffer, output: &wgpu::Buffer) -> Result<Dispatch> {
        self.dense_batch(label, 1, in_features, out_features, input, weight, bias, output)
    }

    /// [`Kernels::dense`] over `batch` rows of input, one after another.
    #[allow(clippy::too_many_arguments)]
    pub fn dense_batch(&self, label: &str, batch: usize, in_features: usize, out_features: usize, input: &wgpu::Buffer, weight: &wgpu::Buffer, bias: &wgpu::Buffer, output: &wgpu::Buffer) -> Result<Dispatch> {
        let p = DenseParams { in_features: in_features as u32, out_features: out_features as u32, batch: batch as u32, ..Default::default() };
        self.bind(label, "dense.wgsl", Variant::PLAIN, &[input, weight, bias, output], &p, grid(batch * out_features)?)
    }

    /// Softmax of `len` values in one workgroup.
    pub fn softmax(&self, label: &str, len: usize, input: &wgpu::Buffer, output: &wgpu::Buffer) -> Result<Dispatch> {
        let p = SoftmaxParams { len: len as u32, ..Default::default() };
        self.bind(label, "softmax.wgsl", Variant::PLAIN, &[input, output], &p, [1, 1, 1])
    }

    /// The dense layer's backward over `batch` rows: dW and db written to
    /// `dweight` and `dbias`, dX added to `dx` when given.
    #[allow(clippy::too_many_arguments)]
    pub fn dense_backward(&self, label: &str, batch: usize, in_features: usize, out_features: usize, x: &wgpu::Buffer, weight: &wgpu::Buffer, dy: &wgpu::Buffer, dweight: &wgpu::Buffer, dbias: &wgpu::Buffer, dx: Option<&wgpu::Buffer>) -> Result<Dispatch> {
        let p = DenseBackwardParams { in_features: in_features as u32, out_features: out_features as u32, batch: batch as u32, write_dx: dx.is_some() as u32 };
        let n = in_features * (out_features + if dx.is_some() { batch } else { 0 });
        self.bind(label, "dense_backward.wgsl", Variant::PLAIN, &[x, weight, dy, dweight, dbias, dx.unwrap_or(&self.dummy_out)], &p, super::grid_for(n)?)
    }

    /// Per example of a batch, the cross-entropy of `logits` against
    /// `labels` (u32) to `loss`, and the gradient of the mean loss to `dlogits`.
    #[allow(clippy::too_many_arguments)]
    pub fn cross_entropy(&self, label: &str, batch: usize, classes: usize, logits: &wgpu::Buffer, labels: &wgpu::Buffer, loss: &wgpu::Buffer, dlogits: &wgpu::Buffer) -> Result<Dispatch> {
        let p = CrossEntropyParams { classes: classes as u32, batch: batch as u32, _pad: [0; 2] };
        self.bind(label, "cross_entropy.wgsl", Variant::PLAIN, &[logits, labels, loss, dlogits], &p, [batch as u32, 1, 1])
    }
}
