//! The parameters on the GPU, in the layout a mode's kernels read: fast mode
//! uploads each conv with its batchnorm folded in (weights + bias), inspect
//! mode the conv as it is and the batchnorm separately.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::kernels::{conv_weights_km, pack_batchnorm, storage_buffer, storage_buffer_as, Precision};
use crate::plan::Mode;
use crate::weights::Weights;
use crate::{bail, Result};

pub(super) struct GpuParams {
    /// Conv name → (weights as the K×M matrix, bias).
    pub convs: HashMap<String, (wgpu::Buffer, Option<wgpu::Buffer>)>,
    /// Batchnorm name → packed (gamma, beta, mean, var); inspect mode only.
    pub bns: HashMap<String, wgpu::Buffer>,
    pub dense_w: wgpu::Buffer,
    pub dense_b: wgpu::Buffer,
}

impl GpuParams {
    pub fn upload(device: &wgpu::Device, w: &Weights, mode: Mode, precision: Precision) -> Result<GpuParams> {
        let mut convs = HashMap::new();
        let mut bns = HashMap::new();
        for cb in w.model.conv_bns() {
            let c = &cb.conv;
            // Fast mode folds the BN into a copy; inspect mode uploads the weights as they are.
            let (weight, bias): (Cow<[f32]>, Option<Vec<f32>>) = match mode {
                Mode::Fast => {
                    let (weight, bias) = w.folded(cb);
                    (weight.into(), Some(bias))
                }
                Mode::Inspect => {
                    let bn = &w.bns[&cb.bn.name];
                    bns.insert(cb.bn.name.clone(), storage_buffer(device, &cb.bn.name, &pack_batchnorm(&bn.gamma, &bn.beta, &bn.mean, &bn.var)));
                    let p = &w.convs[&c.name];
                    (p.weight.as_slice().into(), p.bias.clone())
                }
            };
            // f16 ends at ±65504: a larger weight (a batchnorm over a tiny
            // variance scales them up) would become infinite, and every
            // frame NaN from that layer on.
            if precision == Precision::F16 {
                let largest = weight.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                if largest > half::f16::MAX.to_f32() {
                    bail!(Unsupported, "conv `{}` has weights up to {largest} (batchnorm folded in), beyond f16's ±65504: use precision f32", c.name);
                }
            }
            let wb = storage_buffer_as(device, &c.name, &conv_weights_km(&weight, c.out_channels), precision);
            let bb = bias.map(|b| storage_buffer(device, &format!("{}.bias", c.name), &b));
            convs.insert(c.name.clone(), (wb, bb));
        }
        Ok(GpuParams { convs, bns, dense_w: storage_buffer(device, "dense.weight", &w.dense.weight), dense_b: storage_buffer(device, "dense.bias", &w.dense.bias) })
    }
}
