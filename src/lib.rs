//! ResNet inference on hand-written WGSL compute shaders through `wgpu`,
//! natively (Vulkan, Metal, DX12) and in the browser (WebGPU).
//!
//! The crate is split the way the work is:
//! * [`model`]: the network in the classic lesson's terms (stem, identity and
//!   convolutional blocks, head), plain data;
//! * [`weights`]: `.safetensors` in torchvision/timm or Keras names → a model
//!   and its parameters; batchnorm folding;
//! * [`plan`]: a model and an input size → operations on tensors, with
//!   buffer slots (inspect mode: every intermediate; fast mode: fused);
//! * [`kernels`]: the WGSL kernels in `shaders/` and their bindings;
//! * [`gpu`]: the wgpu device;
//! * [`engine`]: a plan run on either backend, behind one API (the GPU
//!   backend, and [`engine::cpu`]: GEMM convs, simd128 in the browser);
//! * [`train`]: the backward pass, optimizers and the training loop (CPU);
//! * [`preprocess`]: torchvision's eval transform geometry;
//! * [`demo`]: seeded, untrained demo weights;
//! * [`network`]: CIFAR-style ResNets and their plain twins from a description;
//! * [`dataset`]: the small image dataset the residual experiment trains on.

pub mod error;
#[macro_use]
pub mod names;

mod clock;
pub mod dataset;
pub mod demo;
pub mod engine;
pub mod gpu;
pub mod kernels;
pub mod model;
pub mod network;
pub mod plan;
pub mod preprocess;
pub mod train;
pub mod weights;

pub use engine::{BackendKind, BlockStats, Device, Engine, EngineConfig, Output, Submit};
pub use error::{Error, ErrorKind, Result};
pub use gpu::Gpu;
pub use kernels::{ConvKernels, Precision};
pub use model::{Model, Shape};
pub use plan::{BlockRole, Mode, Plan};
pub use preprocess::Preprocess;
pub use weights::Weights;

#[cfg(target_arch = "wasm32")]
pub mod bindings;
