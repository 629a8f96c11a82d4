//! The preprocessing kernel: RGBA8 pixels → the normalised 3×H×W input, with
//! torchvision's resize, centre crop and ImageNet normalisation in one pass.
//! The geometry is decided on the CPU (`crate::preprocess`).

use super::{grid_for, Dispatch, Kernels, Variant};
use crate::Result;

crate::uniform! {
    /// Layout of `preprocess.wgsl`'s uniform block (80 bytes).
    pub struct PreprocessParams for ["preprocess.wgsl"] {
        pub src_w: u32,
        pub src_h: u32,
        pub out_w: u32,
        pub out_h: u32,
        pub crop_x: u32,
        pub crop_y: u32,
        pub _pad0: [u32; 2],
        /// Resized → source scale per axis.
        pub scale: [f32; 2],
        pub _pad1: [f32; 2],
        pub mean: [f32; 4],
        pub inv_std: [f32; 4],
    }
}

impl Kernels {
    /// `src` holds RGBA8 pixels packed in u32s; `output` a 3×out_h×out_w tensor.
    pub fn preprocess(&self, label: &str, p: PreprocessParams, src: &wgpu::Buffer, output: &wgpu::Buffer) -> Result<Dispatch> {
        let n = p.out_w as usize * p.out_h as usize;
        self.bind(label, "preprocess.wgsl", Variant::PLAIN, &[src, output], &p, grid_for(n)?)
    }
}
