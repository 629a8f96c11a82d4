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
    let (_, h, w, data) = read_npy_images(path, true)?;
    Ok(Input::Tensor { h, w, data })
}

/// Reads a `.npy` file's header and checks that its data is all there.
fn open_npy<'a>(path: &Path, bytes: &'a [u8]) -> Result<(npyz::NpyFile<&'a [u8]>, Vec<u64>)> {
    let npy = npyz::NpyFile::new(bytes).map_err(|e| Error::of(ErrorKind::BadInput, format!("{}: not a valid .npy file ({e})", path.display())))?;
    let shape: Vec<u64> = npy.shape().to_vec();
    if npy.order() != npyz::Order::C {
        bail!(BadInput, "{}: expected C (row-major) order", path.display());
    }
    Ok((npy, shape))
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::of(ErrorKind::Io, format!("cannot read {}: {e}", path.display())))
}

/// Reads a float32 `.npy` of shape `N×3×H×W` (or `3×H×W`): (N, H, W, values).
pub fn read_batch(path: &Path) -> Result<(usize, usize, usize, Vec<f32>)> {
    read_npy_images(path, false)
}

/// `N×3×H×W` (or `3×H×W`) float32; `one`: N must be 1.
fn read_npy_images(path: &Path, one: bool) -> Result<(usize, usize, usize, Vec<f32>)> {
    let ctx = |e: &dyn std::fmt::Display| Error::of(ErrorKind::BadInput, format!("{}: {e}", path.display()));
    let bytes = read_bytes(path)?;
    let (npy, shape) = open_npy(path, &bytes)?;
    let (n, c, h, w) = match shape[..] {
        [n, c, h, w] if n == 1 || !one => (n, c, h, w),
        [c, h, w] => (1, c, h, w),
        _ if one => return Err(ctx(&format!("expected a 1×3×H×W tensor, got shape {shape:?}"))),
        _ => return Err(ctx(&format!("expected an N×3×H×W tensor, got shape {shape:?}"))),
    };
    if c != 3 {
        return Err(ctx(&format!("expected 3 channels, got shape {shape:?}")));
    }
    let f4: npyz::DType = npyz::DType::Plain("<f4".parse().expect("a valid type string"));
    if npy.dtype() != f4 {
        return Err(ctx(&format!("expected little-endian float32 values (numpy dtype '<f4'), got {}", npy.dtype().descr())));
    }
    // Check the header's sizes against the file before trusting them.
    let bytes_needed = n.checked_mul(c).and_then(|v| v.checked_mul(h)).and_then(|v| v.checked_mul(w)).and_then(|n| n.checked_mul(4));
    if bytes_needed.is_none_or(|b| b > bytes.len() as u64) {
        return Err(ctx(&format!("the header claims shape {shape:?}, more data than the file holds")));
    }
    if n == 0 {
        return Err(ctx(&"the batch is empty (0 examples)"));
    }
    let (h, w) = (h as usize, w as usize);
    // The network checks its own smallest side (32 for ImageNet ResNets, 4 for CIFAR-style ones).
    resnet::model::check_input_side(h, w, 1).map_err(|e| e.context(path.display()))?;
    let data: Vec<f32> = npy.into_vec().map_err(|_| ctx(&format!("the file holds fewer values than its shape {shape:?} needs")))?;
    Ok((n as usize, h, w, data))
}

/// Reads class indices: a 1-D `.npy` of int32 or int64 (or a plain integer
/// dtype of another width), none negative.
pub fn read_class_indices(path: &Path) -> Result<Vec<usize>> {
    let ctx = |e: &dyn std::fmt::Display| Error::of(ErrorKind::BadInput, format!("{}: {e}", path.display()));
    let bytes = read_bytes(path)?;
    let (npy, shape) = open_npy(path, &bytes)?;
    let [n] = shape[..] else { return Err(ctx(&format!("expected a 1-D array of class indices, got shape {shape:?}"))) };
    if n.checked_mul(8).is_none_or(|b| b > bytes.len() as u64 * 8) {
        return Err(ctx(&format!("the header claims {n} labels, more than the file holds")));
    }
    let dtype = npy.dtype();
    let is = |s: &str| dtype == npyz::DType::Plain(s.parse().expect("a valid type string"));
    let values: Vec<i64> = if is("<i8") {
        npy.into_vec::<i64>().map_err(|e| ctx(&e))?
    } else if is("<i4") {
        npy.into_vec::<i32>().map_err(|e| ctx(&e))?.into_iter().map(i64::from).collect()
    } else if is("<i2") {
        npy.into_vec::<i16>().map_err(|e| ctx(&e))?.into_iter().map(i64::from).collect()
    } else if is("|i1") {
        npy.into_vec::<i8>().map_err(|e| ctx(&e))?.into_iter().map(i64::from).collect()
    } else if is("|u1") {
        npy.into_vec::<u8>().map_err(|e| ctx(&e))?.into_iter().map(i64::from).collect()
    } else {
        return Err(ctx(&format!("expected integer class indices (int32 or int64), got dtype {}", dtype.descr())));
    };
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| usize::try_from(v).map_err(|_| ctx(&format!("label {i} is {v}: class indices cannot be negative"))))
        .collect()
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
    write_npy_of(path, shape, data)
}

pub fn write_npy_of<T: npyz::Serialize + npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) -> Result<()> {
    let ctx = |e: std::io::Error| Error::of(ErrorKind::Io, format!("cannot write {}: {e}", path.display()));
    let file = std::io::BufWriter::new(std::fs::File::create(path).map_err(ctx)?);
    let mut w = npyz::WriteOptions::new().default_dtype().shape(shape).writer(file).begin_nd().map_err(ctx)?;
    w.extend(data.iter().copied()).map_err(ctx)?;
    w.finish().map_err(ctx)
}

