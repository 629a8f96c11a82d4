//! Sums of squares: ‖F(x)‖² and ‖x‖² of each residual block, for the
//! "how close to the identity" view.

use super::{Dispatch, Kernels, Variant};
use crate::Result;

crate::uniform! {
    pub struct SumSquaresParams for ["sum_squares.wgsl"] {
        pub len: u32,
        /// Where in `out` the sum goes.
        pub out_index: u32,
        pub _pad: [u32; 2],
    }
}

impl Kernels {
    /// `out[out_index] = Σ a²` over `len` values, in one workgroup.
    pub fn sum_squares(&self, label: &str, len: usize, a: &wgpu::Buffer, out: &wgpu::Buffer, out_index: usize) -> Result<Dispatch> {
        let p = SumSquaresParams { len: len as u32, out_index: out_index as u32, ..Default::default() };
        self.bind(label, "sum_squares.wgsl", Variant::PLAIN, &[a, out], &p, [1, 1, 1])
    }
}
