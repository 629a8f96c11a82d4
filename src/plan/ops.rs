//! The operations of a plan and the tensors they read and write.

use crate::model::{BatchNormSpec, ConvSpec, PoolSpec, Shape};

pub type TensorId = usize;

/// How a tensor is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// An activation: at the engine's precision (f32, or f16 on that path).
    Activation,
    /// Always f32: the pooled vector, logits and probabilities.
    F32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Shape,
    /// Kept alive for the whole frame (readable afterwards).
    pub keep: bool,
    pub storage: Storage,
}

/// One convolution with its fused epilogue.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvOp {
    pub conv: ConvSpec,
    /// Fast mode: the weights are the conv's with its batchnorm folded in.
    pub folded: bool,
    pub input: TensorId,
    pub output: TensorId,
    /// Added before the ReLU (fast mode, a block's last conv).
    pub residual: Option<TensorId>,
    pub relu: bool,
    /// Also receives F(x), the conv + folded BN before the residual add.
    pub main_out: Option<TensorId>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Conv(ConvOp),
    BatchNorm { bn: BatchNormSpec, input: TensorId, output: TensorId },
    Relu { input: TensorId, output: TensorId },
    AddRelu { main: TensorId, shortcut: TensorId, output: TensorId },
    MaxPool { pool: PoolSpec, input: TensorId, output: TensorId },
    GlobalAvgPool { input: TensorId, output: TensorId },
    Dense { input: TensorId, output: TensorId },
    Softmax { input: TensorId, output: TensorId },
}

impl Op {
    pub fn inputs(&self) -> Vec<TensorId> {
        match self {
            Op::Conv(c) => std::iter::once(c.input).chain(c.residual).collect(),
            Op::AddRelu { main, shortcut, .. } => vec![*main, *shortcut],
            Op::BatchNorm { input, .. }
            | Op::Relu { input, .. }
            | Op::MaxPool { input, .. }
            | Op::GlobalAvgPool { input, .. }
            | Op::Dense { input, .. }
            | Op::Softmax { input, .. } => vec![*input],
        }
    }
    /// Every tensor the op writes.
    pub fn outputs(&self) -> Vec<TensorId> {
        match self {
            Op::Conv(c) => std::iter::once(c.output).chain(c.main_out).collect(),
            _ => vec![self.output()],
        }
    }
    pub fn output(&self) -> TensorId {
        match self {
            Op::Conv(c) => c.output,
            Op::BatchNorm { output, .. }
            | Op::Relu { output, .. }
            | Op::AddRelu { output, .. }
            | Op::MaxPool { output, .. }
            | Op::GlobalAvgPool { output, .. }
            | Op::Dense { output, .. }
            | Op::Softmax { output, .. } => *output,
        }
    }
    /// A short label for timings and debugging.
    pub fn label(&self, tensors: &[TensorInfo]) -> String {
        let kind = match self {
            Op::Conv(ConvOp { folded: true, .. }) => "conv+bn",
            Op::Conv(_) => "conv",
            Op::BatchNorm { .. } => "batchnorm",
            Op::Relu { .. } => "relu",
            Op::AddRelu { .. } => "add+relu",
            Op::MaxPool { .. } => "maxpool",
            Op::GlobalAvgPool { .. } => "avgpool",
            Op::Dense { .. } => "dense",
            Op::Softmax { .. } => "softmax",
        };
        format!("{kind} -> {}", tensors[self.output()].name)
    }
}
