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

/// Reads a `.safetensors` file through a memory map: the header is checked
/// before any tensor is touched, and a tensor's pages are read only when it
/// is converted, so a bad file is refused at once and a good one costs about
/// what its parameters need.
pub fn read_weights(path: &Path) -> Result<Weights> {
    let io = |e: std::io::Error| Error::of(ErrorKind::Io, format!("cannot read {}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        bail!(Io, "cannot read {}: it is a folder", path.display());
    }
    // A pipe or device (`--weights <(curl …)`) has no length to map: read it.
    // An empty file cannot be mapped; the parser explains what is wrong with it.
    let w = if !meta.is_file() {
        Weights::from_safetensors(&std::fs::read(path).map_err(io)?)
    } else if meta.len() == 0 {
        Weights::from_safetensors(&[])
    } else {
        // SAFETY: the map is read-only and lives only for this call; a file
        // changed underneath it at worst gives wrong weights or a parse error.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Weights::from_safetensors(&map)
    };
    let w = w.map_err(|e| e.context(path.display()))?;
    if !w.unused.is_empty() {
        eprintln!("warning: {} tensor(s) in {} are not used by {}, e.g. `{}`", w.unused.len(), path.display(), w.model.description, w.unused[0]);
    }
    Ok(w)
}

/// Reads a float32 `.npy` of shape `1×3×H×W` (or `3×H×W`).
pub fn read_tensor(path: &Path) -> Result<Input> {
    let ctx = |e: &dyn std::fmt::Display| Error::of(ErrorKind::BadInput, format!("{}: {e}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| Error::of(ErrorKind::Io, format!("cannot read {}: {e}", path.display())))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| ctx(&format!("not a valid .npy file ({e})")))?;
    let shape: Vec<u64> = npy.shape().to_vec();
    let (c, h, w) = match shape[..] {
        [1, c, h, w] | [c, h, w] => (c, h, w),
        _ => return Err(ctx(&format!("expected a 1×3×H×W tensor, got shape {shape:?}"))),
    };
    if c != 3 {
        return Err(ctx(&format!("expected 3 channels, got shape {shape:?}")));
    }
    let f4: npyz::DType = npyz::DType::Plain("<f4".parse().expect("a valid type string"));
    if npy.dtype() != f4 {
        return Err(ctx(&format!("expected little-endian float32 values (numpy dtype '<f4'), got {}", npy.dtype().descr())));
    }
    if npy.order() != npyz::Order::C {
        return Err(ctx(&"expected C (row-major) order"));
    }
    // Check the header's sizes against the file before trusting them.
    let bytes_needed = c.checked_mul(h).and_then(|v| v.checked_mul(w)).and_then(|n| n.checked_mul(4));
    if bytes_needed.is_none_or(|b| b > bytes.len() as u64) {
        return Err(ctx(&format!("the header claims shape {shape:?}, more data than the file holds")));
    }
    let (h, w) = (h as usize, w as usize);
    resnet::model::check_input_size(h, w).map_err(|e| e.context(path.display()))?;
    let data: Vec<f32> = npy.into_vec().map_err(|_| ctx(&format!("the file holds fewer values than its shape {shape:?} needs")))?;
    Ok(Input::Tensor { h, w, data })
}

pub fn read_image(path: &Path) -> Result<Input> {
    let img = image::open(path).map_err(|e| Error::of(ErrorKind::BadInput, format!("{}: cannot decode image: {e}", path.display())))?;
    let rgba = img.to_rgba8();
    let (w, h) = rgba.dimensions();
    Ok(Input::Image { w: w as usize, h: h as usize, rgba: rgba.into_raw() })
}

pub fn read_labels(path: &Path, classes: usize) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::of(ErrorKind::Io, format!("cannot read labels {}: {e}", path.display())))?;
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

