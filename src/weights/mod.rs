//! Weight loading: a `.safetensors` file in, a [`Model`] plus its parameters out.
//!
//! The architecture (depth, widths, bottleneck or basic blocks, class count)
//! and the naming scheme (torchvision/timm or the seed's Keras names) are
//! inferred from tensor names and shapes ([`naming`]: one walk over the
//! architecture, one small description per scheme). Everything is converted
//! to one canonical layout here (conv kernels OIHW, dense `(classes, in)`,
//! f32), so the planner never sees a source's quirks. [`fold`] folds each
//! batchnorm into its conv for fast mode.

use std::collections::{HashMap, HashSet};

use safetensors::{Dtype, SafeTensors};

use crate::error::ErrorKind;
use crate::model::Model;
use crate::{bail, Error, Result};

pub mod fold;
pub(crate) mod naming;
pub mod save;

/// A conv's kernel in OIHW order and its bias, if the source has one.
#[derive(Debug, Clone)]
pub struct ConvWeights {
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
}

#[derive(Debug, Clone)]
pub struct BatchNormWeights {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct DenseWeights {
    /// Row-major `(classes, in_features)`.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// A model and all its parameters, ready to be planned.
#[derive(Debug, Clone)]
pub struct Weights {
    pub model: Model,
    /// Keyed by [`crate::model::ConvSpec::name`].
    pub convs: HashMap<String, ConvWeights>,
    /// Keyed by [`crate::model::BatchNormSpec::name`].
    pub bns: HashMap<String, BatchNormWeights>,
    pub dense: DenseWeights,
    /// Tensors of the file that the model does not use (worth a warning).
    pub unused: Vec<String>,
    /// Class names from the file's metadata (`classes`, a JSON array), as
    /// training saves them; as many as the dense layer has classes.
    pub labels: Option<Vec<String>>,
    /// The description of a network built from one ([`crate::network`]),
    /// saved in the file's metadata (`network`) so it loads back as itself.
    pub network: Option<crate::network::NetSpec>,
}

impl Weights {
    /// Parses `.safetensors` bytes. Never allocates more than the data's own
    /// size on the word of a header: sizes are checked against `bytes` first.
    /// Every failure is an [`ErrorKind::BadWeights`] error.
    pub fn from_safetensors(bytes: &[u8]) -> Result<Weights> {
        Self::parse(bytes).map_err(|e| e.or_kind(ErrorKind::BadWeights))
    }

    fn parse(bytes: &[u8]) -> Result<Weights> {
        let (labels, network) = check_container(bytes)?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| Error::new(format!("not a valid safetensors file: {e}")))?;
        let mut r = Reader { st, used: HashSet::new() };
        let names: HashSet<String> = r.st.names().into_iter().map(str::to_string).collect();
        if let Some(text) = network {
            let spec = crate::network::NetSpec::from_json(&text).map_err(|e| Error::new(format!("the file's network description is not one this engine builds: {}", e.message())))?;
            let mut w = read_described(&mut r, spec)?;
            if let Some(n) = names.iter().filter(|n| !r.used.contains(*n)).min() {
                bail!("tensor `{n}` is not part of the {} the file's metadata describes", w.model.description);
            }
            check_folds(&w)?;
            w.labels = labels.filter(|l| l.len() == w.model.classes());
            return Ok(w);
        }
        let Some(scheme) = naming::detect(&names) else {
            if let Some(other) = naming::unsupported_scheme(&names) {
                bail!("these weights use {other}, which this engine does not read: it reads torchvision/timm names (`conv1.weight`, `layer1.0.conv1.weight`, …) and the lesson's Keras names (`conv1.kernel`, `res2a_branch2a.kernel`, …)");
            }
            bail!(
                "these are not ResNet weights in a naming scheme this engine reads: missing tensor `conv1.weight` (torchvision/timm names) or `conv1.kernel` (Keras names); the file has {} tensors{}",
                names.len(),
                names.iter().min().map(|n| format!(", e.g. `{n}`")).unwrap_or_default()
            );
        };
        let mut w = naming::walk(&mut r, scheme)?;
        w.model.validate()?;
        check_folds(&w)?;
        let mut unused: Vec<String> = names.into_iter().filter(|n| !r.used.contains(n) && !n.ends_with("num_batches_tracked")).collect();
        unused.sort();
        // A tensor left over inside a layer or block that was read is part
        // of it the engine would not compute (squeeze-and-excitation gates,
        // say): the answers would be wrong, so refuse rather than warn.
        // (Owned strings: a set of `&str` would add its own hashing code to the module.)
        let used_modules: HashSet<String> = r.used.iter().map(|n| module_of(n).to_string()).collect();
        if let Some(n) = unused.iter().find(|n| used_modules.contains(module_of(n))) {
            bail!(
                "tensor `{n}` belongs to `{}`, which this engine computes without it: a block extension such as squeeze-and-excitation is not supported ({} such tensor(s))",
                module_of(n),
                unused.iter().filter(|u| used_modules.contains(module_of(u))).count()
            );
        }
        w.unused = unused;
        // Names for as many classes as the dense layer has, else none.
        w.labels = labels.filter(|l| l.len() == w.model.classes());
        Ok(w)
    }
}

/// Finite tensors can still fold to infinities (γ = 1e36 over a zero
/// variance): every frame would then be NaN with no error.
fn check_folds(w: &Weights) -> Result<()> {
    for cb in w.model.conv_bns() {
        if !fold::folds_finite(&w.convs[&cb.conv.name], &w.bns[&cb.bn.name], cb.bn.eps) {
            bail!("batchnorm `{}` scales conv `{}` beyond f32's range (γ/√(var+ε) or the folded bias overflows)", cb.bn.name, cb.conv.name);
        }
    }
    Ok(())
}

/// The layer or block a tensor belongs to: `layer1.0` for
/// `layer1.0.se.fc1.weight` (torchvision), else the first part of the name
/// (`conv1`, `fc`, `res2a_branch2a`).
fn module_of(name: &str) -> &str {
    let first = name.split('.').next().unwrap_or(name);
    match name.match_indices('.').nth(1) {
        Some((at, _)) if first.starts_with("layer") => &name[..at],
        _ => first,
    }
}

/// The safetensors container: 8-byte little-endian header length, JSON header, data.
/// Checked by hand first so that every failure names what is wrong in plain
/// words. Returns the class names of the metadata, if it has them.
fn check_container(bytes: &[u8]) -> Result<(Option<Vec<String>>, Option<String>)> {
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
    check_header(&bytes[8..8 + n as usize], bytes.len() as u64 - 8 - n)
}

/// Checks every tensor's declared size against the data before the
/// safetensors crate sees it: shapes whose element count overflows, or
/// claims more than the data holds, are refused here in checked arithmetic.
/// Returns the class names and the network description of the metadata, if it has them.
fn check_header(header: &[u8], data_len: u64) -> Result<(Option<Vec<String>>, Option<String>)> {
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| Error::new(format!("not a valid safetensors file: the header is not a JSON object ({e})")))?;
    // Another tool's `classes` entry (not a JSON array of names) is not ours: ignored.
    let labels = header.get("__metadata__").and_then(|m| m.get(save::CLASSES_KEY)).and_then(|v| v.as_str()).and_then(|s| serde_json::from_str::<Vec<String>>(s).ok());
    // Ours only where it is a JSON object (another tool's `network` entry, such as a name, is ignored).
    let network = header
        .get("__metadata__")
        .and_then(|m| m.get(save::NETWORK_KEY))
        .and_then(|v| v.as_str())
        .filter(|s| serde_json::from_str::<serde_json::Value>(s).is_ok_and(|v| v.is_object()))
        .map(str::to_string);
    for (name, t) in header.iter().filter(|(name, _)| *name != "__metadata__") {
        let bad = |what: &str| Error::new(format!("not a valid safetensors file: tensor `{name}` {what}"));
        let shape = t.get("shape").and_then(|s| s.as_array()).ok_or_else(|| bad("has no shape"))?;
        let mut count = 1u64;
        for d in shape {
            count = d.as_u64().and_then(|d| count.checked_mul(d)).ok_or_else(|| bad("declares a shape whose size overflows"))?;
        }
        let offsets: Vec<u64> = t.get("data_offsets").and_then(|o| o.as_array()).map(|o| o.iter().filter_map(|v| v.as_u64()).collect()).unwrap_or_default();
        let [begin, end] = offsets[..] else { return Err(bad("has no data offsets")) };
        if begin > end || end > data_len {
            return Err(bad(&format!("lies outside the data (bytes {begin}..{end} of {data_len})")));
        }
        // Every dtype takes at least 4 bits a value: more values than that
        // would fit is a lie, whatever the dtype.
        if count > (end - begin).saturating_mul(2) {
            return Err(bad(&format!("declares {count} values in {} bytes", end - begin)));
        }
    }
    Ok((labels, network))
}

/// The tensors of a network built from a description, in its torchvision
/// names and shapes (no inference from names: the description says what
/// the network is).
fn read_described(r: &mut Reader, spec: crate::network::NetSpec) -> Result<Weights> {
    let model = spec.model()?;
    let mut convs = HashMap::new();
    let mut bns = HashMap::new();
    for cb in model.conv_bns() {
        let c = &cb.conv;
        let shape = [Some(c.out_channels), Some(c.in_channels), Some(c.kernel.0), Some(c.kernel.1)];
        convs.insert(c.name.clone(), ConvWeights { weight: r.get(&format!("{}.weight", c.name), &shape)?.0, bias: None });
        let names = ["weight", "bias", "running_mean", "running_var"].map(|k| format!("{}.{k}", cb.bn.name));
        bns.insert(cb.bn.name.clone(), r.bn(names, c.out_channels)?);
    }
    let (i, o) = (model.head.in_features, model.head.classes);
    let dense = DenseWeights { weight: r.get("fc.weight", &[Some(o), Some(i)])?.0, bias: r.get("fc.bias", &[Some(o)])?.0 };
    Ok(Weights { model, convs, bns, dense, unused: Vec::new(), labels: None, network: Some(spec) })
}

/// Reads tensors by name, widened to f32, and remembers which were used.
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

    /// A tensor's shape, without reading it.
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.st.tensor(name).ok().map(|v| v.shape().to_vec())
    }

    fn names(&self) -> Vec<&str> {
        self.st.names()
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
            Dtype::F16 => data.chunks_exact(2).map(|b| half::f16::from_le_bytes(b.try_into().unwrap()).to_f32()).collect(),
            Dtype::BF16 => data.chunks_exact(2).map(|b| half::bf16::from_le_bytes(b.try_into().unwrap()).to_f32()).collect(),
            other => bail!("tensor `{name}` has dtype {other:?}, expected F32, F16 or BF16"),
        };
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            bail!("tensor `{name}` contains NaN or infinite values (first at element {i}: {})", values[i]);
        }
        self.used.insert(name.to_string());
        Ok((values, shape))
    }

    /// A batchnorm's four vectors, named `names` (gamma, beta, mean, var).
    fn bn(&mut self, names: [String; 4], channels: usize) -> Result<BatchNormWeights> {
        let shape = [Some(channels)];
        let [g, b, m, v] = names;
        let p = BatchNormWeights { gamma: self.get(&g, &shape)?.0, beta: self.get(&b, &shape)?.0, mean: self.get(&m, &shape)?.0, var: self.get(&v, &shape)?.0 };
        if let Some(i) = p.var.iter().position(|v| *v < 0.0) {
            bail!("tensor `{v}` holds a negative variance at channel {i}");
        }
        Ok(p)
    }
}
