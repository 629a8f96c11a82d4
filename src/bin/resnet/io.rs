//! Files in and out of the CLI: weights, raw `.npy` tensors, images, class
//! names, and `.npy` dumps.

use std::path::Path;

use npyz::WriterBuilder;
use resnet::error::ErrorKind;
use resnet::{bail, Error, Result, Weights};

/// One input of `classify`, `dump` or `bench`.
pub enum Input {
    /// A raw `3×H×W` NCHW tensor (no preprocessing).
    Tensor { h: usize, w: usize, data: Vec<f32> },
    /// RGBA8 pixels, preprocessed on the GPU.
    Image { w: usize, h: usize, rgba: Vec<u8> },
}

pub fn read_weights(path: &Path) -> Result<Weights> {
    let bytes = std::fs::read(path).map_err(|e| Error::of(ErrorKind::Io, format!("cannot read {}: {e}", path.display())))?;
    let w = Weights::from_safetensors(&bytes).map_err(|e| e.context(path.display()))?;
    if !w.unused.is_empty() {
        eprintln!("warning: {} tensor(s) in {} are not used by {}, e.g. `{}`", w.unused.len(), path.display(), w.model.description, w.unused[0]);
    }
    Ok(w)
}

/// Reads a float32 `.npy` of shape `1×3×H×W` (or `3×H×W`).
pub fn read_tensor(path: &Path) -> Result<Input> {
    let ctx = |e: &dyn std::fmt::Display| Error::new(format!("{}: {e}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| ctx(&e))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| ctx(&format!("not a valid .npy file ({e})")))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let (c, h, w) = match shape[..] {
        [1, c, h, w] | [c, h, w] => (c, h, w),
        _ => return Err(ctx(&format!("expected a 1×3×H×W tensor, got shape {shape:?}"))),
    };
    if c != 3 {
        return Err(ctx(&format!("expected 3 channels, got shape {shape:?}")));
    }
    if npy.dtype() != npyz::DType::Plain("<f4".parse().unwrap()) {
        return Err(ctx(&format!("expected little-endian float32 data, got {:?}", npy.dtype())));
    }
    if npy.order() != npyz::Order::C {
        return Err(ctx(&"expected C (row-major) order"));
    }
    // Check the header's sizes against the file before trusting them.
    let n = c.checked_mul(h).and_then(|v| v.checked_mul(w)).filter(|n| n * 4 <= bytes.len());
    if n.is_none() {
        return Err(ctx(&format!("the header claims shape {shape:?}, more data than the file holds")));
    }
    let data: Vec<f32> = npy.into_vec().map_err(|e| ctx(&e))?;
    Ok(Input::Tensor { h, w, data })
}

pub fn read_image(path: &Path) -> Result<Input> {
    let img = image::open(path).map_err(|e| Error::new(format!("{}: cannot decode image: {e}", path.display())))?;
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    Ok(Input::Image { w: w as usize, h: h as usize, rgba: rgba.into_raw() })
}

pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::new(format!("cannot read labels {}: {e}", path.display())))?;
    let labels: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text).map_err(|e| Error::new(format!("{}: not a JSON array of strings: {e}", path.display())))?
    } else {
        text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
    };
    if labels.len() != classes {
        bail!("{} has {} labels but the network has {} classes", path.display(), labels.len(), classes);
    }
    Ok(labels)
}

pub fn write_npy(path: &Path, shape: &[u64], data: &[f32]) -> Result<()> {
    let ctx = |e: std::io::Error| Error::of(ErrorKind::Io, format!("cannot write {}: {e}", path.display()));
    let file = std::io::BufWriter::new(std::fs::File::create(path).map_err(ctx)?);
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(file).begin_nd().map_err(ctx)?;
    w.extend(data.iter().copied()).map_err(ctx)?;
    w.finish().map_err(ctx)
}

