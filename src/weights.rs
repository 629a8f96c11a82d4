//! Weight loading: a `.safetensors` file in, a [`Model`] plus its parameters out.
//!
//! The architecture (depth, widths, bottleneck or basic blocks, class count)
//! and the naming scheme (torchvision/timm or the seed's Keras names) are
//! inferred from tensor names and shapes. Everything is converted to one
//! canonical layout here (conv kernels OIHW, dense `(classes, in)`, f32), so
//! the planner never sees a source's quirks.

use std::collections::{HashMap, HashSet};

use safetensors::{Dtype, SafeTensors};

use crate::model::{
    BatchNormSpec, Block, BlockKind, ConvBn, ConvSpec, DenseSpec, Model, PoolSpec, Scheme, Stem, StridePlacement,
};
use crate::{bail, Error, Result};

/// A conv's kernel in OIHW order and its bias, if the source has one.
#[derive(Debug, Clone)]
pub struct ConvParams {
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
}

#[derive(Debug, Clone)]
pub struct BatchNormParams {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct DenseParams {
    /// Row-major `(classes, in_features)`.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// A model and all its parameters, ready to be planned.
#[derive(Debug, Clone)]
pub struct Weights {
    pub model: Model,
    /// Keyed by [`ConvSpec::name`].
    pub convs: HashMap<String, ConvParams>,
    /// Keyed by [`BatchNormSpec::name`].
    pub bns: HashMap<String, BatchNormParams>,
    pub dense: DenseParams,
    /// Tensors of the file that the model does not use (worth a warning).
    pub unused: Vec<String>,
}

impl Weights {
    /// Parses `.safetensors` bytes. Never allocates more than the data's own
    /// size on the word of a header: sizes are checked against `bytes` first.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Weights> {
        check_container(bytes)?;
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::new(format!("not a valid safetensors file: {e}")))?;
        let mut r = Reader { st, used: HashSet::new() };
        let names: HashSet<String> = r.st.names().into_iter().map(str::to_string).collect();
        let mut w = if names.contains("conv1.weight") || names.iter().any(|n| n.starts_with("layer1.")) {
            torchvision(&mut r)?
        } else if names.contains("conv1.kernel") || names.contains("bn_conv1.gamma") {
            keras(&mut r)?
        } else {
            bail!(
                "these are not ResNet weights: missing tensor `conv1.weight` (torchvision/timm names) or `conv1.kernel` (Keras names); the file has {} tensors{}",
                names.len(),
                names.iter().min().map(|n| format!(", e.g. `{n}`")).unwrap_or_default()
            );
        };
        w.model.validate()?;
        let mut unused: Vec<String> = names
            .into_iter()
            .filter(|n| !r.used.contains(n) && !n.ends_with("num_batches_tracked"))
            .collect();
        unused.sort();
        w.unused = unused;
        Ok(w)
    }
}

/// The safetensors container: 8-byte little-endian header length, JSON header, data.
/// Checked by hand first so that every failure names what is wrong in plain words.
fn check_container(bytes: &[u8]) -> Result<()> {
    if bytes.is_empty() {
        bail!("the weights file is empty (0 bytes)");
    }
    if bytes.len() < 8 {
        bail!("the weights file is {} bytes long, too short to be a safetensors file", bytes.len());
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    if n > (bytes.len() - 8) as u64 {
        bail!(
            "not a valid safetensors file: its header claims {n} bytes but the file holds only {} after the length word (truncated, or not safetensors)",
            bytes.len() - 8
        );
    }
    if n < 2 || bytes[8] != b'{' {
        bail!("not a valid safetensors file: the header does not start with a JSON object");
    }
    Ok(())
}

struct Reader<'a> {
    st: SafeTensors<'a>,
    used: HashSet<String>,
}

/// `None` in an expected shape means "any size".
type Pattern<'p> = &'p [Option<usize>];

fn fmt_pattern(p: Pattern) -> String {
    let parts: Vec<String> = p.iter().map(|d| d.map_or("*".to_string(), |v| v.to_string())).collect();
    format!("[{}]", parts.join(", "))
}

impl Reader<'_> {
    fn has(&self, name: &str) -> bool {
        self.st.tensor(name).is_ok()
    }

    /// Reads a float tensor whose shape matches `expected`, widened to f32.
    fn get(&mut self, name: &str, expected: Pattern) -> Result<(Vec<f32>, Vec<usize>)> {
        let view = self.st.tensor(name).map_err(|_| Error::new(format!("missing tensor `{name}`")))?;
        let shape = view.shape().to_vec();
        let fits = shape.len() == expected.len() && shape.iter().zip(expected).all(|(s, e)| e.is_none_or(|e| e == *s));
        if !fits || shape.contains(&0) {
            bail!("tensor `{name}` has shape {shape:?}, expected {}", fmt_pattern(expected));
        }
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes(b.try_into().unwrap()).to_f32())
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes(b.try_into().unwrap()).to_f32())
                .collect(),
            other => bail!("tensor `{name}` has dtype {other:?}, expected F32, F16 or BF16"),
        };
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            bail!("tensor `{name}` contains NaN or infinite values (first at element {i}: {})", values[i]);
        }
        self.used.insert(name.to_string());
        Ok((values, shape))
    }

    fn bn(&mut self, names: [String; 4], channels: usize) -> Result<BatchNormParams> {
        let shape = [Some(channels)];
        let [g, b, m, v] = names;
        let p = BatchNormParams {
            gamma: self.get(&g, &shape)?.0,
            beta: self.get(&b, &shape)?.0,
            mean: self.get(&m, &shape)?.0,
            var: self.get(&v, &shape)?.0,
        };
        if let Some(i) = p.var.iter().position(|v| *v < 0.0) {
            bail!("tensor `{v}` holds a negative variance at channel {i}");
        }
        Ok(p)
    }
}

/// Collects specs and parameters while a scheme walks the file.
struct Builder {
    convs: HashMap<String, ConvParams>,
    bns: HashMap<String, BatchNormParams>,
    eps: f32,
}

impl Builder {
    fn new(eps: f32) -> Self {
        Builder { convs: HashMap::new(), bns: HashMap::new(), eps }
    }

    /// Adds a conv + BN given the kernel in OIHW. `pad` None means "same"-style `k/2`.
    #[allow(clippy::too_many_arguments)]
    fn conv_bn(
        &mut self,
        r: &mut Reader,
        conv_name: &str,
        bn_name: &str,
        weight: Vec<f32>,
        oihw: [usize; 4],
        bias: Option<Vec<f32>>,
        stride: usize,
        pad: Option<usize>,
        bn_names: [String; 4],
    ) -> Result<ConvBn> {
        let [o, i, kh, kw] = oihw;
        let bn = r.bn(bn_names, o)?;
        let conv = ConvSpec {
            name: conv_name.to_string(),
            in_channels: i,
            out_channels: o,
            kernel: (kh, kw),
            stride,
            padding: pad.map_or((kh / 2, kw / 2), |p| (p, p)),
            bias: bias.is_some(),
        };
        self.convs.insert(conv_name.to_string(), ConvParams { weight, bias });
        self.bns.insert(bn_name.to_string(), bn);
        Ok(ConvBn { conv, bn: BatchNormSpec { name: bn_name.to_string(), channels: o, eps: self.eps } })
    }

    fn finish(self, model: Model, dense: DenseParams) -> Weights {
        Weights { model, convs: self.convs, bns: self.bns, dense, unused: Vec::new() }
    }
}

fn depth_name(blocks: &[Block], bottleneck: bool, version: &str) -> String {
    let convs: usize = blocks.iter().map(|b| b.main.len()).sum();
    let kind = if bottleneck { "bottleneck" } else { "basic blocks" };
    format!("ResNet-{} ({kind}, {version})", convs + 2)
}

// ---------------------------------------------------------------- torchvision

fn torchvision(r: &mut Reader) -> Result<Weights> {
    let mut b = Builder::new(1e-5);
    let tv_bn = |p: &str| {
        ["weight", "bias", "running_mean", "running_var"].map(|s| format!("{p}.{s}"))
    };
    // Reads `{name}.weight` as a conv with `in_ch` inputs (OIHW already).
    let conv = |b: &mut Builder, r: &mut Reader, name: &str, bn: &str, in_ch: usize, k: Option<usize>, stride: usize, pad: Option<usize>| -> Result<ConvBn> {
        let (w, s) = r.get(&format!("{name}.weight"), &[None, Some(in_ch), k, k])?;
        let bias = if r.has(&format!("{name}.bias")) { Some(r.get(&format!("{name}.bias"), &[Some(s[0])])?.0) } else { None };
        b.conv_bn(r, name, bn, w, [s[0], s[1], s[2], s[3]], bias, stride, pad, tv_bn(bn))
    };
    let stem_conv = conv(&mut b, r, "conv1", "bn1", 3, None, 2, None)?;
    let stem = Stem { conv: stem_conv, pool: PoolSpec { kernel: 3, stride: 2, padding: 1 } };
    let bottleneck = r.has("layer1.0.conv3.weight");
    let mut blocks = Vec::new();
    let mut c = stem.conv.conv.out_channels;
    for stage in 1..=4 {
        let mut i = 0;
        while i == 0 || r.has(&format!("layer{stage}.{i}.conv1.weight")) {
            let p = format!("layer{stage}.{i}");
            let s = if i == 0 && stage > 1 { 2 } else { 1 };
            let mut main = Vec::new();
            if bottleneck {
                main.push(conv(&mut b, r, &format!("{p}.conv1"), &format!("{p}.bn1"), c, Some(1), 1, None)?);
                let m = main[0].conv.out_channels;
                main.push(conv(&mut b, r, &format!("{p}.conv2"), &format!("{p}.bn2"), m, None, s, None)?);
                let m = main[1].conv.out_channels;
                main.push(conv(&mut b, r, &format!("{p}.conv3"), &format!("{p}.bn3"), m, Some(1), 1, None)?);
            } else {
                main.push(conv(&mut b, r, &format!("{p}.conv1"), &format!("{p}.bn1"), c, None, s, None)?);
                let m = main[0].conv.out_channels;
                main.push(conv(&mut b, r, &format!("{p}.conv2"), &format!("{p}.bn2"), m, None, 1, None)?);
            }
            let out = main.last().unwrap().conv.out_channels;
            let shortcut = if r.has(&format!("{p}.downsample.0.weight")) || s != 1 || out != c {
                Some(conv(&mut b, r, &format!("{p}.downsample.0"), &format!("{p}.downsample.1"), c, Some(1), s, Some(0))?)
            } else {
                None
            };
            let kind = if shortcut.is_some() { BlockKind::Convolutional } else { BlockKind::Identity };
            blocks.push(Block { name: p, stage, kind, main, shortcut });
            c = out;
            i += 1;
        }
    }
    let (weight, s) = r.get("fc.weight", &[None, Some(c)])?;
    let bias = r.get("fc.bias", &[Some(s[0])])?.0;
    let head = DenseSpec { name: "fc".into(), in_features: c, classes: s[0] };
    let description = depth_name(&blocks, bottleneck, "v1.5");
    let stride_placement = StridePlacement::SpatialConv;
    let model = Model { scheme: Scheme::Torchvision, description, stride_placement, stem, blocks, head };
    Ok(b.finish(model, DenseParams { weight, bias }))
}

// ---------------------------------------------------------------- Keras

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

/// Block ids of one Keras stage: `a, b, c, …` or Caffe's deep `a, b1, b2, …`.
fn keras_block_ids(r: &Reader, stage: usize) -> Vec<String> {
    let exists = |id: &str| r.has(&format!("res{stage}{id}_branch2a.kernel"));
    let mut ids = vec!["a".to_string()];
    if exists("b1") {
        let mut k = 1;
        while exists(&format!("b{k}")) {
            ids.push(format!("b{k}"));
            k += 1;
        }
    } else {
        for l in 'b'..='z' {
            if !exists(&l.to_string()) {
                break;
            }
            ids.push(l.to_string());
        }
    }
    ids
}

fn keras(r: &mut Reader) -> Result<Weights> {
    let mut b = Builder::new(1e-3);
    let conv = |b: &mut Builder, r: &mut Reader, name: &str, bn: &str, in_ch: usize, k: Option<usize>, stride: usize, pad: Option<usize>| -> Result<ConvBn> {
        let (w, s) = r.get(&format!("{name}.kernel"), &[k, k, Some(in_ch), None])?;
        let (w, oihw) = hwio_to_oihw(&w, &s);
        let bias = if r.has(&format!("{name}.bias")) { Some(r.get(&format!("{name}.bias"), &[Some(oihw[0])])?.0) } else { None };
        let bn_names = ["gamma", "beta", "moving_mean", "moving_variance"].map(|s| format!("{bn}.{s}"));
        b.conv_bn(r, name, bn, w, oihw, bias, stride, pad, bn_names)
    };
    // ZeroPadding2D(3) then a valid 7×7/2 conv is a conv with padding 3; the max pool has none.
    let stem_conv = conv(&mut b, r, "conv1", "bn_conv1", 3, None, 2, None)?;
    let stem = Stem { conv: stem_conv, pool: PoolSpec { kernel: 3, stride: 2, padding: 0 } };
    let bottleneck = r.has("res2a_branch2c.kernel");
    let mut blocks = Vec::new();
    let mut c = stem.conv.conv.out_channels;
    for stage in 2..=5 {
        for (i, id) in keras_block_ids(r, stage).into_iter().enumerate() {
            let p = format!("res{stage}{id}");
            let q = format!("bn{stage}{id}");
            let s = if i == 0 && stage > 2 { 2 } else { 1 };
            let mut main = Vec::new();
            // v1: the stride sits on the first conv of the main path.
            let k0 = if bottleneck { Some(1) } else { None };
            main.push(conv(&mut b, r, &format!("{p}_branch2a"), &format!("{q}_branch2a"), c, k0, s, None)?);
            let m = main[0].conv.out_channels;
            main.push(conv(&mut b, r, &format!("{p}_branch2b"), &format!("{q}_branch2b"), m, None, 1, None)?);
            if bottleneck {
                let m = main[1].conv.out_channels;
                main.push(conv(&mut b, r, &format!("{p}_branch2c"), &format!("{q}_branch2c"), m, Some(1), 1, None)?);
            }
            let out = main.last().unwrap().conv.out_channels;
            let shortcut = if r.has(&format!("{p}_branch1.kernel")) || s != 1 || out != c {
                Some(conv(&mut b, r, &format!("{p}_branch1"), &format!("{q}_branch1"), c, Some(1), s, Some(0))?)
            } else {
                None
            };
            let kind = if shortcut.is_some() { BlockKind::Convolutional } else { BlockKind::Identity };
            blocks.push(Block { name: p, stage: stage - 1, kind, main, shortcut });
            c = out;
        }
    }
    // The dense layer is `fc<classes>` (fc1000, fc6, …).
    let fc = r
        .st
        .names()
        .into_iter()
        .filter_map(|n| n.strip_suffix(".kernel"))
        .find(|n| n.len() > 2 && n.starts_with("fc") && n[2..].bytes().all(|c| c.is_ascii_digit()))
        .map(str::to_string)
        .ok_or_else(|| Error::new("missing tensor `fc<classes>.kernel` (the dense layer, e.g. `fc1000.kernel`)"))?;
    let (k, s) = r.get(&format!("{fc}.kernel"), &[Some(c), None])?;
    let classes = s[1];
    let mut weight = vec![0.0; k.len()];
    for i in 0..c {
        for o in 0..classes {
            weight[o * c + i] = k[i * classes + o];
        }
    }
    let bias = r.get(&format!("{fc}.bias"), &[Some(classes)])?.0;
    let head = DenseSpec { name: fc, in_features: c, classes };
    let description = depth_name(&blocks, bottleneck, "v1");
    let stride_placement = StridePlacement::FirstConv;
    let model = Model { scheme: Scheme::Keras, description, stride_placement, stem, blocks, head };
    Ok(b.finish(model, DenseParams { weight, bias }))
}
