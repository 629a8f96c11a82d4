//! Weights back to `.safetensors`, in the names and layouts they came in
//! (torchvision names stay torchvision with OIHW kernels, Keras names stay
//! Keras with HWIO kernels and `(in, classes)` dense kernels): what training
//! saves, and the layout its gradients are written in.

use std::collections::HashMap;

use safetensors::tensor::TensorView;
use safetensors::Dtype;

use super::naming::{file_layout, oihw_to_hwio, transpose};
use super::{BatchNormWeights, Weights};
use crate::model::{ConvSpec, Model};

/// A tensor ready to be written: name, dtype, shape, little-endian bytes.
pub type RawTensor = (String, Dtype, Vec<usize>, Vec<u8>);

/// An f32 tensor under `name`.
pub fn f32_tensor(name: String, shape: Vec<usize>, data: &[f32]) -> RawTensor {
    (name, Dtype::F32, shape, bytemuck::cast_slice(data).to_vec())
}

/// Tensors (and optional `__metadata__` strings) → `.safetensors` bytes.
pub fn serialize(tensors: &[RawTensor], metadata: Option<HashMap<String, String>>) -> Vec<u8> {
    let views: Vec<(String, TensorView)> =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).expect("a tensor's bytes match its shape"))).collect();
    safetensors::tensor::serialize(views, metadata).expect("serialisable tensors")
}

/// The metadata key under which class names travel, as a JSON array.
pub const CLASSES_KEY: &str = "classes";

/// The metadata key of a described network's description, as JSON.
pub const NETWORK_KEY: &str = "network";

/// Names and layouts of the weights' own scheme.
pub struct Namer {
    layout: super::naming::FileLayout,
}

impl Namer {
    pub fn for_model(model: &Model) -> Namer {
        Namer { layout: file_layout(model.scheme) }
    }

    /// A conv's kernel, given OIHW, in the file's name and layout.
    pub fn conv_kernel(&self, spec: &ConvSpec, oihw: &[f32]) -> RawTensor {
        let (o, i, (kh, kw)) = (spec.out_channels, spec.in_channels, spec.kernel);
        let name = format!("{}.{}", spec.name, self.layout.kernel);
        if !self.layout.hwio {
            return f32_tensor(name, vec![o, i, kh, kw], oihw);
        }
        f32_tensor(name, vec![kh, kw, i, o], &oihw_to_hwio(oihw, [o, i, kh, kw]))
    }

    pub fn conv_bias(&self, spec: &ConvSpec, bias: &[f32]) -> RawTensor {
        f32_tensor(format!("{}.bias", spec.name), vec![bias.len()], bias)
    }

    /// The name of batchnorm `bn`'s tensor `which` (0 γ, 1 β, 2 mean, 3 variance).
    pub fn bn_name(&self, bn: &str, which: usize) -> String {
        format!("{bn}.{}", self.layout.bn[which])
    }

    /// The dense kernel, given `(classes, in)` row-major.
    pub fn dense_kernel(&self, model: &Model, weight: &[f32]) -> RawTensor {
        let (classes, features) = (model.head.classes, model.head.in_features);
        let name = format!("{}.{}", model.head.name, self.layout.kernel);
        if !self.layout.dense_transposed {
            return f32_tensor(name, vec![classes, features], weight);
        }
        f32_tensor(name, vec![features, classes], &transpose(weight, classes, features))
    }

    pub fn dense_bias(&self, model: &Model, bias: &[f32]) -> RawTensor {
        f32_tensor(format!("{}.bias", model.head.name), vec![bias.len()], bias)
    }
}

impl Weights {
    /// Every tensor (kernels, biases, γ, β and the running statistics, the
    /// dense layer) as `.safetensors` bytes in the scheme the weights came
    /// in, f32, with the class names (if any) in the metadata.
    pub fn to_safetensors(&self) -> Vec<u8> {
        let m = &self.model;
        let namer = Namer::for_model(m);
        let mut t = Vec::new();
        for cb in m.conv_bns() {
            let c = &self.convs[&cb.conv.name];
            t.push(namer.conv_kernel(&cb.conv, &c.weight));
            if let Some(b) = &c.bias {
                t.push(namer.conv_bias(&cb.conv, b));
            }
            let BatchNormWeights { gamma, beta, mean, var } = &self.bns[&cb.bn.name];
            for (which, v) in [gamma, beta, mean, var].into_iter().enumerate() {
                t.push(f32_tensor(namer.bn_name(&cb.bn.name, which), vec![v.len()], v));
            }
        }
        t.push(namer.dense_kernel(m, &self.dense.weight));
        t.push(namer.dense_bias(m, &self.dense.bias));
        // The header's metadata is a map the safetensors crate writes in hash
        // order: with both keys (a described network given class names) the
        // same weights can give different bytes; with one, the same bytes.
        let mut metadata = std::collections::BTreeMap::new();
        if let Some(l) = &self.labels {
            metadata.insert(CLASSES_KEY.to_string(), serde_json::to_string(l).expect("strings serialise"));
        }
        if let Some(n) = &self.network {
            metadata.insert(NETWORK_KEY.to_string(), n.to_json());
        }
        serialize(&t, (!metadata.is_empty()).then(|| metadata.into_iter().collect()))
    }
}
