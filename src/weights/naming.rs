//! Naming schemes and the one walk over a ResNet's architecture.
//!
//! A [`Naming`] says only what differs between sources: tensor names, kernel
//! and dense layouts, batchnorm epsilon, the stem's pool padding and where a
//! downsampling block puts its stride. [`walk`] reads stem, stages, blocks
//! and head the same way for all of them, inferring depth, widths and
//! bottleneck or basic blocks from which tensors exist and their shapes.

use std::collections::HashSet;

use std::collections::HashMap;

use super::{BatchNormWeights, ConvWeights, DenseWeights, Reader, Weights};
use crate::model::{BatchNormSpec, Block, BlockKind, ConvBn, ConvSpec, DenseSpec, Model, PoolSpec, Scheme, Stem, StridePlacement};
use crate::{bail, Error, Result};

/// How a scheme stores conv kernels.
#[derive(Clone, Copy)]
enum KernelLayout {
    /// `(out, in, kh, kw)`: PyTorch.
    Oihw,
    /// `(kh, kw, in, out)`: Keras.
    Hwio,
}

/// The (conv, batchnorm) names of a block's layers.
struct BlockNames {
    block: String,
    /// Up to three main-path layers (a basic block uses the first two).
    main: [(String, String); 3],
    shortcut: (String, String),
}

/// What differs between naming schemes.
pub(super) struct Naming {
    scheme: Scheme,
    /// Shown in the model's description.
    version: &'static str,
    stride_placement: StridePlacement,
    eps: f32,
    /// A conv's kernel and bias tensors are `{conv}.{kernel}` and `{conv}.bias`.
    kernel: &'static str,
    layout: KernelLayout,
    /// Suffixes of a batchnorm's gamma, beta, mean and variance.
    bn: [&'static str; 4],
    stem: (&'static str, &'static str),
    /// Keras' stem pads the input by 3 and then max-pools without padding.
    stem_pool_padding: usize,
    /// Block ids of stage `s` (0-based) that exist in the file; at least the first.
    block_ids: fn(&Reader, usize) -> Vec<String>,
    block_names: fn(usize, &str) -> BlockNames,
    /// The dense layer's name.
    dense: fn(&Reader) -> Result<String>,
    /// The dense kernel is `(in, classes)` rather than `(classes, in)`.
    dense_transposed: bool,
}

const TORCHVISION: Naming = Naming {
    scheme: Scheme::Torchvision,
    version: "v1.5",
    stride_placement: StridePlacement::SpatialConv,
    eps: 1e-5,
    kernel: "weight",
    layout: KernelLayout::Oihw,
    bn: ["weight", "bias", "running_mean", "running_var"],
    stem: ("conv1", "bn1"),
    stem_pool_padding: 1,
    block_ids: |r, s| {
        let mut ids = vec!["0".to_string()];
        while r.has(&format!("layer{}.{}.conv1.weight", s + 1, ids.len())) {
            ids.push(ids.len().to_string());
        }
        ids
    },
    block_names: |s, id| {
        let p = format!("layer{}.{id}", s + 1);
        let layer = |i: usize| (format!("{p}.conv{i}"), format!("{p}.bn{i}"));
        BlockNames { main: [layer(1), layer(2), layer(3)], shortcut: (format!("{p}.downsample.0"), format!("{p}.downsample.1")), block: p }
    },
    dense: |_| Ok("fc".to_string()),
    dense_transposed: false,
};

const KERAS: Naming = Naming {
    scheme: Scheme::Keras,
    version: "v1",
    stride_placement: StridePlacement::FirstConv,
    eps: 1e-3,
    kernel: "kernel",
    layout: KernelLayout::Hwio,
    bn: ["gamma", "beta", "moving_mean", "moving_variance"],
    stem: ("conv1", "bn_conv1"),
    stem_pool_padding: 0,
    block_ids: keras_block_ids,
    block_names: |s, id| {
        let (p, q) = (format!("res{}{id}", s + 2), format!("bn{}{id}", s + 2));
        let layer = |b: &str| (format!("{p}_branch{b}"), format!("{q}_branch{b}"));
        BlockNames { main: [layer("2a"), layer("2b"), layer("2c")], shortcut: layer("1"), block: p }
    },
    // `fc<classes>` (fc1000, fc6, …).
    // One only: the file's names come in hash order, so with two the head
    // would change from load to load.
    dense: |r| {
        // Strings sorted as `Weights::parse` sorts the unused names: the same
        // sort code in the wasm module (a sort of `&str` would add 18 KB).
        let mut fc: Vec<String> = r.names().into_iter().filter_map(|n| n.strip_suffix(".kernel")).filter(|n| n.len() > 2 && n.starts_with("fc") && n[2..].bytes().all(|c| c.is_ascii_digit())).map(str::to_string).collect();
        fc.sort();
        match &fc[..] {
            [one] => Ok(one.clone()),
            [] => Err(Error::new("missing tensor `fc<classes>.kernel` (the dense layer, e.g. `fc1000.kernel`)")),
            _ => Err(Error::new(format!("more than one dense layer (`{}`): keep only the classifier's", fc.join("`, `")))),
        }
    },
    dense_transposed: true,
};

/// Block ids of one Keras stage: `a, b, c, …` or Caffe's deep `a, b1, b2, …`.
fn keras_block_ids(r: &Reader, s: usize) -> Vec<String> {
    let exists = |id: &str| r.has(&format!("res{}{id}_branch2a.kernel", s + 2));
    let mut ids = vec!["a".to_string()];
    if exists("b1") {
        while exists(&format!("b{}", ids.len())) {
            ids.push(format!("b{}", ids.len()));
        }
    } else {
        ids.extend(('b'..='z').map(String::from).take_while(|l| exists(l)));
    }
    ids
}

/// The scheme whose stem tensors the file has.
pub(super) fn detect(names: &HashSet<String>) -> Option<&'static Naming> {
    if names.contains("conv1.weight") || names.iter().any(|n| n.starts_with("layer1.")) {
        Some(&TORCHVISION)
    } else if names.contains("conv1.kernel") || names.contains("bn_conv1.gamma") {
        Some(&KERAS)
    } else {
        None
    }
}

/// A ResNet naming scheme this engine recognises but does not read, if the
/// names are in one (for an error that says what the file is).
pub(super) fn unsupported_scheme(names: &HashSet<String>) -> Option<&'static str> {
    let any = |prefix: &str| names.iter().any(|n| n.starts_with(prefix));
    if any("resnet.embedder.") || any("embedder.embedder.") {
        Some("Hugging Face transformers' ResNet names (`resnet.embedder…`)")
    } else if any("conv1_conv.") || any("conv2_block1_") {
        Some("tf.keras.applications' names (`conv1_conv`, `conv2_block1_1_conv`, …)")
    } else {
        None
    }
}

/// Collects specs and parameters during the walk.
struct Walk<'r, 'a> {
    r: &'r mut Reader<'a>,
    n: &'static Naming,
    convs: HashMap<String, ConvWeights>,
    bns: HashMap<String, BatchNormWeights>,
}

impl Walk<'_, '_> {
    /// Reads conv `names.0` (+ batchnorm `names.1`) with `in_ch` inputs;
    /// `k`: a required kernel size; `pad` None means "same"-style `k/2`.
    fn conv(&mut self, names: &(String, String), in_ch: usize, k: Option<usize>, stride: usize, pad: Option<usize>) -> Result<ConvBn> {
        let (conv_name, bn_name) = names;
        let kernel = format!("{conv_name}.{}", self.n.kernel);
        let (weight, [o, i, kh, kw]) = match self.n.layout {
            KernelLayout::Oihw => {
                if let Some(&[_, i, ..]) = self.r.shape(&kernel).as_deref() {
                    // (i > 1: a 1-channel stem is a shape error, not 3 groups.)
                    if i < in_ch && i > 1 && in_ch % i == 0 {
                        bail!("conv `{conv_name}` is a grouped convolution ({} groups: ResNeXt or similar), which this engine does not run", in_ch / i);
                    }
                }
                let (w, s) = self.r.get(&kernel, &[None, Some(in_ch), k, k])?;
                (w, [s[0], s[1], s[2], s[3]])
            }
            KernelLayout::Hwio => {
                let (w, s) = self.r.get(&kernel, &[k, k, Some(in_ch), None])?;
                hwio_to_oihw(&w, &s)
            }
        };
        let bias_name = format!("{conv_name}.bias");
        let bias = if self.r.has(&bias_name) { Some(self.r.get(&bias_name, &[Some(o)])?.0) } else { None };
        let bn = self.r.bn(self.n.bn.map(|s| format!("{bn_name}.{s}")), o)?;
        let conv = ConvSpec {
            name: conv_name.clone(),
            in_channels: i,
            out_channels: o,
            kernel: (kh, kw),
            stride,
            padding: pad.map_or((kh / 2, kw / 2), |p| (p, p)),
            bias: bias.is_some(),
        };
        self.convs.insert(conv_name.clone(), ConvWeights { weight, bias });
        self.bns.insert(bn_name.clone(), bn);
        Ok(ConvBn { conv, bn: BatchNormSpec { name: bn_name.clone(), channels: o, eps: self.n.eps } })
    }

    fn has_conv(&self, name: &str) -> bool {
        self.r.has(&format!("{name}.{}", self.n.kernel))
    }

    /// A block's main path on `c` channels with stride `s`: 1×1 → f×f → 1×1
    /// (bottleneck, the stride where the scheme puts it) or f×f → f×f (basic,
    /// the stride on the first).
    fn main_path(&mut self, names: &BlockNames, c: usize, s: usize, bottleneck: bool) -> Result<Vec<ConvBn>> {
        let mut main: Vec<ConvBn> = Vec::new();
        let (count, kernels, strides) = match (bottleneck, self.n.stride_placement) {
            (true, StridePlacement::FirstConv) => (3, [Some(1), None, Some(1)], [s, 1, 1]),
            (true, StridePlacement::SpatialConv) => (3, [Some(1), None, Some(1)], [1, s, 1]),
            (false, _) => (2, [None, None, None], [s, 1, 1]),
        };
        for i in 0..count {
            let in_ch = main.last().map_or(c, |m| m.conv.out_channels);
            main.push(self.conv(&names.main[i], in_ch, kernels[i], strides[i], None)?);
        }
        Ok(main)
    }
}

/// Reads a whole network in naming scheme `n`.
pub(super) fn walk(r: &mut Reader, n: &'static Naming) -> Result<Weights> {
    let mut w = Walk { r, n, convs: HashMap::new(), bns: HashMap::new() };
    let stem_names = (n.stem.0.to_string(), n.stem.1.to_string());
    if !w.has_conv(n.stem.0) && w.has_conv(&format!("{}.0", n.stem.0)) {
        bail!("the stem `{}` is a sequence of convs (a deep stem, as in timm's resnet*d), which this engine does not run: it runs the 7×7 stride-2 stem", n.stem.0);
    }
    let stem = Stem { conv: w.conv(&stem_names, 3, None, 2, None)?, pool: Some(PoolSpec { kernel: 3, stride: 2, padding: n.stem_pool_padding }) };
    // The stem runs as ImageNet ResNets' 7×7 stride-2 conv and max pool: a
    // CIFAR-style 3×3 stem (stride 1, no pool) would run with the wrong geometry.
    if stem.conv.conv.kernel != (7, 7) {
        let (kh, kw) = stem.conv.conv.kernel;
        bail!("the stem conv `{}` is {kh}×{kw}: this engine runs ImageNet ResNets' 7×7 stride-2 stem and max pool (a CIFAR-style small stem is not supported)", n.stem.0);
    }
    let bottleneck = w.has_conv(&(n.block_names)(0, &(n.block_ids)(w.r, 0)[0]).main[2].0);
    let mut blocks = Vec::new();
    let mut c = stem.conv.conv.out_channels;
    for stage in 0..4 {
        for (i, id) in (n.block_ids)(w.r, stage).iter().enumerate() {
            let names = (n.block_names)(stage, id);
            let s = if i == 0 && stage > 0 { 2 } else { 1 };
            let main = w.main_path(&names, c, s, bottleneck)?;
            let out = main.last().expect("a main path").conv.out_channels;
            let shortcut = if w.has_conv(&names.shortcut.0) || s != 1 || out != c { Some(w.conv(&names.shortcut, c, Some(1), s, Some(0))?) } else { None };
            let kind = if shortcut.is_some() { BlockKind::Convolutional } else { BlockKind::Identity };
            blocks.push(Block { name: names.block, stage: stage + 1, kind, main, shortcut });
            c = out;
        }
    }
    let fc = (n.dense)(w.r)?;
    let (weight, bias, classes) = if n.dense_transposed {
        let (k, s) = w.r.get(&format!("{fc}.{}", n.kernel), &[Some(c), None])?;
        let classes = s[1];
        (transpose(&k, c, classes), w.r.get(&format!("{fc}.bias"), &[Some(classes)])?.0, classes)
    } else {
        let (weight, s) = w.r.get(&format!("{fc}.{}", n.kernel), &[None, Some(c)])?;
        (weight, w.r.get(&format!("{fc}.bias"), &[Some(s[0])])?.0, s[0])
    };
    let convs: usize = blocks.iter().map(|b| b.main.len()).sum();
    let kind = if bottleneck { "bottleneck" } else { "basic blocks" };
    let model = Model {
        scheme: n.scheme,
        description: format!("ResNet-{} ({kind}, {})", convs + 2, n.version),
        stride_placement: n.stride_placement,
        stem,
        blocks,
        head: DenseSpec { name: fc, in_features: c, classes },
    };
    Ok(Weights { model, convs: w.convs, bns: w.bns, dense: DenseWeights { weight, bias }, unused: Vec::new(), labels: None, network: None })
}

/// A `rows`×`cols` row-major matrix transposed: Keras' dense `(in, classes)` ↔ `(classes, in)`.
pub(crate) fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = a[r * cols + c];
        }
    }
    t
}

/// OIHW → HWIO, for writing Keras kernels back.
pub(super) fn oihw_to_hwio(w: &[f32], [o, i, kh, kw]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0.0; w.len()];
    for co in 0..o {
        for ci in 0..i {
            for y in 0..kh {
                for x in 0..kw {
                    out[((y * kw + x) * i + ci) * o + co] = w[((co * i + ci) * kh + y) * kw + x];
                }
            }
        }
    }
    out
}

/// HWIO → OIHW.
fn hwio_to_oihw(w: &[f32], s: &[usize]) -> (Vec<f32>, [usize; 4]) {
    let (kh, kw, i, o) = (s[0], s[1], s[2], s[3]);
    let mut out = vec![0.0; w.len()];
    for y in 0..kh {
        for x in 0..kw {
            for ci in 0..i {
                for co in 0..o {
                    out[((co * i + ci) * kh + y) * kw + x] = w[((y * kw + x) * i + ci) * o + co];
                }
            }
        }
    }
    (out, [o, i, kh, kw])
}

/// How a scheme names and lays out the tensors of a conv, a batchnorm and
/// the dense layer, for writing a file back in the names it came with.
pub(super) struct FileLayout {
    /// The kernel's suffix: `{conv}.{kernel}`.
    pub kernel: &'static str,
    /// Kernels are `(kh, kw, in, out)` rather than OIHW.
    pub hwio: bool,
    /// γ, β, running mean, running variance suffixes.
    pub bn: [&'static str; 4],
    /// The dense kernel is `(in, classes)`.
    pub dense_transposed: bool,
}

pub(super) fn file_layout(scheme: Scheme) -> FileLayout {
    let n = match scheme {
        Scheme::Torchvision => &TORCHVISION,
        Scheme::Keras => &KERAS,
    };
    FileLayout { kernel: n.kernel, hwio: matches!(n.layout, KernelLayout::Hwio), bn: n.bn, dense_transposed: n.dense_transposed }
}
