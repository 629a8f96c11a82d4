//! Networks from a description rather than from weights: the CIFAR-style
//! ResNets of the ResNet paper (§4.2: a 3×3 stem, three stages of basic
//! blocks at widths 16/32/64, depth 6n+2) and their *plain* twins (the same
//! layers, no shortcuts), with seeded initial weights.
//!
//! What the residual experiment trains. A description travels as JSON (the
//! package's and the page's options, and the `network` entry of a saved
//! `.safetensors` file's metadata, so a saved network loads back as itself).
//!
//! Conventions (the JAX reference in tests/reference/jax_cifar.py follows them):
//! * names are torchvision's (`conv1`, `bn1`, `layer2.0.conv1`,
//!   `layer2.0.downsample.0`, `fc`), kernels OIHW;
//! * a stage's first block halves the map with a stride-2 first conv; the
//!   residual network's shortcut there is a 1×1 stride-2 conv + BN (the
//!   paper's option B; its CIFAR networks pad with zeros instead);
//! * batchnorm off keeps each conv's per-channel scale and shift (γ = 1,
//!   β = 0 at first, trained) with no normalisation: its batchnorms are
//!   `γ·x + β` (running mean 0, variance 1, ε 0), trained in frozen mode;
//! * He: every kernel uniform in ±√(6/fan_in); Glorot (Keras'
//!   `glorot_uniform`, as every conv of the lesson is made): ±√(6/(fan_in +
//!   fan_out)), fan = channels × kernel area; the dense layer likewise,
//!   its bias 0;
//! * zero-γ: the last batchnorm of each residual block's main path starts at
//!   γ = 0, so the block starts as the identity. A plain block has no
//!   identity to fall back on (γ = 0 would zero the whole signal), so its
//!   batchnorms keep γ = 1.

use std::collections::HashMap;

use crate::demo::Rng;
use crate::model::{BatchNormSpec, Block, BlockKind, ConvBn, ConvSpec, DenseSpec, Model, Scheme, Stem, StridePlacement};
use crate::weights::{BatchNormWeights, ConvWeights, DenseWeights, Weights};
use crate::{bail, Error, ErrorKind, Result};

/// How the initial weights are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    He,
    Glorot,
}

crate::named_enum!(Init { He = "he", Glorot = "glorot" });

/// The deepest network a description may ask for (n = 33 blocks a stage,
/// the paper's ResNet-1202 is far beyond what a browser trains).
pub const MAX_DEPTH: usize = 200;
/// The widest stage a description may ask for.
pub const MAX_WIDTH: usize = 512;
/// The most kernel values a described network may have (ResNet-56 has 0.85 M).
pub const MAX_PARAMETERS: u64 = 20_000_000;

/// A CIFAR-style network: what the residual experiment trains.
#[derive(Debug, Clone, PartialEq)]
pub struct NetSpec {
    /// 6n + 2: the stem conv, 3 stages of n two-conv blocks, the dense layer.
    pub depth: usize,
    /// With shortcuts (a ResNet) or without (its plain twin).
    pub residual: bool,
    pub batchnorm: bool,
    pub init: Init,
    /// Each residual block's last batchnorm starts at γ = 0.
    pub zero_gamma: bool,
    /// The three stages' widths (the stem has the first).
    pub widths: [usize; 3],
    pub classes: usize,
    /// Input channels.
    pub channels: usize,
    pub seed: u64,
}

impl Default for NetSpec {
    /// ResNet-20 with batchnorm and He's initialisation, 10 classes, RGB.
    fn default() -> Self {
        NetSpec { depth: 20, residual: true, batchnorm: true, init: Init::He, zero_gamma: false, widths: [16, 32, 64], classes: 10, channels: 3, seed: 1 }
    }
}

fn bad(msg: String) -> Error {
    Error::of(ErrorKind::BadInput, msg)
}

impl NetSpec {
    /// Blocks per stage.
    pub fn blocks_per_stage(&self) -> usize {
        (self.depth - 2) / 6
    }

    /// `ResNet-20` / `plain-20`, and what differs from the defaults.
    pub fn name(&self) -> String {
        format!("{}-{}", if self.residual { "ResNet" } else { "plain" }, self.depth)
    }

    /// Refuses descriptions the engine cannot build, naming what is wrong.
    pub fn check(&self) -> Result<()> {
        if self.depth < 8 || (self.depth - 2) % 6 != 0 || self.depth > MAX_DEPTH {
            bail!(BadInput, "depth {} is not 6n+2 with n ≥ 1 (8, 14, 20, 32, 44, 56, … up to {MAX_DEPTH}): a stem conv, three stages of n two-conv blocks and the dense layer", self.depth);
        }
        if let Some(w) = self.widths.iter().find(|&&w| w == 0 || w > MAX_WIDTH) {
            bail!(BadInput, "stage width {w} is out of range: widths are 1 to {MAX_WIDTH} channels");
        }
        if self.classes < 2 || self.classes > 10_000 {
            bail!(BadInput, "{} classes: a classifier needs 2 to 10000", self.classes);
        }
        if self.channels != 3 {
            bail!(BadInput, "{} input channels: the engine's networks take RGB, 3 channels (a grey image is fed as three equal ones)", self.channels);
        }
        // Both networks, their gradients and optimizer state are allocated
        // before any memory check: cap what a description may ask for.
        let params = self.parameters();
        if params > MAX_PARAMETERS {
            bail!(BadInput, "{} would have {params} parameters, more than the {MAX_PARAMETERS} a described network may have: use fewer blocks or narrower stages", self.name());
        }
        Ok(())
    }

    /// Kernel values (conv and dense), the bulk of the parameters, in u64.
    pub fn parameters(&self) -> u64 {
        let [a, b, c] = self.widths.map(|w| w as u64);
        let n = self.blocks_per_stage() as u64;
        let stage = |i: u64, w: u64| 9 * i * w + 9 * w * w + (n - 1) * 18 * w * w + i * w;
        9 * self.channels as u64 * a + stage(a, a) + stage(a, b) + stage(b, c) + c * self.classes as u64
    }

    /// The description as JSON (`{"depth":20,"residual":true,…}`).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "depth": self.depth, "residual": self.residual, "batchnorm": self.batchnorm, "init": self.init.as_str(),
            "zeroGamma": self.zero_gamma, "widths": self.widths, "classes": self.classes, "channels": self.channels, "seed": self.seed,
        })
        .to_string()
    }

    /// A description from JSON: every key optional (the defaults fill in),
    /// unknown keys and wrong types refused.
    pub fn from_json(text: &str) -> Result<NetSpec> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(format!("a network description is a JSON object: {e}")))?;
        let obj = v.as_object().ok_or_else(|| bad("a network description is a JSON object such as {\"depth\": 20, \"residual\": false}".into()))?;
        let mut s = NetSpec::default();
        for (k, v) in obj {
            let uint = || v.as_u64().and_then(|u| usize::try_from(u).ok()).ok_or_else(|| bad(format!("`{k}` must be a whole number, not {v}")));
            let boolean = || v.as_bool().ok_or_else(|| bad(format!("`{k}` must be true or false, not {v}")));
            match k.as_str() {
                "depth" => s.depth = uint()?,
                "residual" => s.residual = boolean()?,
                "batchnorm" => s.batchnorm = boolean()?,
                "zeroGamma" => s.zero_gamma = boolean()?,
                "classes" => s.classes = uint()?,
                "channels" => s.channels = uint()?,
                "seed" => s.seed = v.as_u64().ok_or_else(|| bad(format!("`seed` must be a whole number, not {v}")))?,
                "init" => s.init = v.as_str().ok_or_else(|| bad(format!("`init` must be 'he' or 'glorot', not {v}")))?.parse()?,
                "widths" => {
                    let a = v.as_array().filter(|a| a.len() == 3).ok_or_else(|| bad(format!("`widths` must be three whole numbers, not {v}")))?;
                    for (w, x) in s.widths.iter_mut().zip(a) {
                        *w = x.as_u64().and_then(|u| usize::try_from(u).ok()).ok_or_else(|| bad(format!("`widths` must be three whole numbers, not {v}")))?;
                    }
                }
                _ => bail!(BadInput, "unknown network option `{k}`: use depth, residual, batchnorm, init, zeroGamma, widths, classes, channels or seed"),
            }
        }
        s.check()?;
        Ok(s)
    }

    /// The architecture.
    pub fn model(&self) -> Result<Model> {
        self.check()?;
        // No normalisation: ε 0 over a variance of 1 leaves γ·x + β exactly.
        let eps = if self.batchnorm { 1e-5 } else { 0.0 };
        let cb = |conv: &str, bn: &str, i: usize, o: usize, k: usize, stride: usize| ConvBn {
            conv: ConvSpec { name: conv.into(), in_channels: i, out_channels: o, kernel: (k, k), stride, padding: (k / 2, k / 2), bias: false },
            bn: BatchNormSpec { name: bn.into(), channels: o, eps },
        };
        let stem = Stem { conv: cb("conv1", "bn1", self.channels, self.widths[0], 3, 1), pool: None };
        let mut blocks = Vec::new();
        let mut c = self.widths[0];
        for (s, &w) in self.widths.iter().enumerate() {
            for b in 0..self.blocks_per_stage() {
                let p = format!("layer{}.{b}", s + 1);
                let stride = if b == 0 && s > 0 { 2 } else { 1 };
                let main = vec![cb(&format!("{p}.conv1"), &format!("{p}.bn1"), c, w, 3, stride), cb(&format!("{p}.conv2"), &format!("{p}.bn2"), w, w, 3, 1)];
                let (kind, shortcut) = if !self.residual {
                    (BlockKind::Plain, None)
                } else if stride != 1 || c != w {
                    (BlockKind::Convolutional, Some(cb(&format!("{p}.downsample.0"), &format!("{p}.downsample.1"), c, w, 1, stride)))
                } else {
                    (BlockKind::Identity, None)
                };
                blocks.push(Block { name: p, stage: s + 1, kind, main, shortcut });
                c = w;
            }
        }
        let model = Model {
            scheme: Scheme::Torchvision,
            description: format!("{} (CIFAR-style, basic blocks{})", self.name(), if self.batchnorm { "" } else { ", no batchnorm" }),
            stride_placement: StridePlacement::FirstConv,
            stem,
            blocks,
            head: DenseSpec { name: "fc".into(), in_features: c, classes: self.classes },
        };
        model.validate()?;
        Ok(model)
    }

    /// The architecture and its seeded initial weights.
    pub fn weights(&self) -> Result<Weights> {
        let model = self.model()?;
        let mut rng = Rng::new(self.seed);
        let bound = |fan_in: usize, fan_out: usize| match self.init {
            Init::He => (6.0 / fan_in as f64).sqrt() as f32,
            Init::Glorot => (6.0 / (fan_in + fan_out) as f64).sqrt() as f32,
        };
        let mut convs = HashMap::new();
        let mut bns = HashMap::new();
        // The block-ending batchnorms that zero-γ starts at 0.
        let last: Vec<&str> = model.blocks.iter().filter(|b| b.kind != BlockKind::Plain).map(|b| b.main[1].bn.name.as_str()).collect();
        for cb in model.conv_bns() {
            let c = &cb.conv;
            let area = c.kernel.0 * c.kernel.1;
            let a = bound(c.in_channels * area, c.out_channels * area);
            convs.insert(c.name.clone(), ConvWeights { weight: rng.scaled(c.out_channels * c.in_channels * area, a, 0.0), bias: None });
            let g = if self.zero_gamma && last.contains(&cb.bn.name.as_str()) { 0.0 } else { 1.0 };
            let o = c.out_channels;
            bns.insert(cb.bn.name.clone(), BatchNormWeights { gamma: vec![g; o], beta: vec![0.0; o], mean: vec![0.0; o], var: vec![1.0; o] });
        }
        let (i, o) = (model.head.in_features, model.head.classes);
        let dense = DenseWeights { weight: rng.scaled(o * i, bound(i, o), 0.0), bias: vec![0.0; o] };
        Ok(Weights { model, convs, bns, dense, unused: Vec::new(), labels: None, network: Some(self.clone()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_build_and_refuse() {
        let s = NetSpec::from_json(r#"{"depth": 32, "residual": false, "init": "glorot", "batchnorm": false}"#).unwrap();
        assert_eq!((s.depth, s.residual, s.init, s.batchnorm, s.widths), (32, false, Init::Glorot, false, [16, 32, 64]));
        assert_eq!(NetSpec::from_json(&s.to_json()).unwrap(), s);
        let m = s.model().unwrap();
        assert_eq!(m.blocks.len(), 15);
        assert!(m.blocks.iter().all(|b| b.kind == BlockKind::Plain && b.shortcut.is_none()));
        // Convs: stem + 2 per block = depth - 1; the dense layer makes depth.
        assert_eq!(m.conv_bns().count() + 1, 32);
        assert_eq!(m.block_shapes(8, 8).unwrap().last().unwrap().1, crate::Shape::new(64, 2, 2));
        let r = NetSpec { depth: 8, ..NetSpec::default() }.model().unwrap();
        assert_eq!(r.blocks.iter().map(|b| b.kind).collect::<Vec<_>>(), [BlockKind::Identity, BlockKind::Convolutional, BlockKind::Convolutional]);
        for (json, says) in [
            (r#"{"depth": 21}"#, "6n+2"),
            (r#"{"depth": 2}"#, "6n+2"),
            (r#"{"widths": [16, 0, 64]}"#, "width 0"),
            (r#"{"widths": [16, 32]}"#, "three"),
            (r#"{"init": "xavier"}"#, "unknown init"),
            (r#"{"deep": 20}"#, "unknown network option"),
            (r#"{"depth": "20"}"#, "whole number"),
            (r#"[20]"#, "JSON object"),
            (r#"{"classes": 1}"#, "classes"),
            (r#"{"channels": 1}"#, "3 channels"),
            (r#"{"depth": 200, "widths": [512, 512, 512]}"#, "parameters"),
        ] {
            let e = NetSpec::from_json(json).unwrap_err();
            assert!(e.message().contains(says), "{json}: {}", e.message());
        }
    }

    #[test]
    fn zero_gamma_and_init() {
        let w = NetSpec { depth: 8, zero_gamma: true, ..NetSpec::default() }.weights().unwrap();
        assert!(w.bns["layer1.0.bn2"].gamma.iter().all(|&g| g == 0.0));
        assert!(w.bns["layer1.0.bn1"].gamma.iter().all(|&g| g == 1.0));
        // He on a 16→16 3×3 conv: ±√(6/144) = ±0.204.
        let k = &w.convs["layer1.0.conv1"].weight;
        let max = k.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max < 0.2042 && max > 0.19, "{max}");
        let g = NetSpec { depth: 8, init: Init::Glorot, ..NetSpec::default() }.weights().unwrap();
        let max = g.convs["layer1.0.conv1"].weight.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(max < 0.1444 && max > 0.13, "{max}");
        // Plain twins ignore zero-γ: it would zero their whole signal.
        let p = NetSpec { depth: 8, residual: false, zero_gamma: true, ..NetSpec::default() }.weights().unwrap();
        assert!(p.bns.values().all(|b| b.gamma.iter().all(|&g| g == 1.0)));
    }
}
