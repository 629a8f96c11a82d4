//! A small labelled image dataset with a fixed train/test split: what the
//! residual experiment trains on. The one that ships is `data/digits.bin`,
//! the UCI handwritten digits (8×8, CC BY 4.0; see data/digits.LICENSE and
//! tools/make_digits.py, which also documents the format).
//!
//! Parsing checks every size against the bytes before anything is allocated.

use crate::{bail, Result};

const MAGIC: &[u8; 8] = b"RESNETDS";
const HEADER: usize = 8 + 8 * 4;

/// Examples as `u8` pixels, channels first, and their classes; the first
/// `train` are the training split, the rest the test split.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub classes: usize,
    pub train: usize,
    /// The largest pixel value (16 for the digits).
    pub max_value: u8,
    pub labels: Vec<u8>,
    pub pixels: Vec<u8>,
}


impl Dataset {
    /// Parses a dataset file (format in tools/make_digits.py).
    pub fn parse(bytes: &[u8]) -> Result<Dataset> {
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            bail!(BadInput, "not a dataset file: it does not start with `RESNETDS` and a {HEADER}-byte header ({} bytes)", bytes.len());
        }
        let word = |i: usize| u32::from_le_bytes(bytes[8 + 4 * i..12 + 4 * i].try_into().unwrap()) as u64;
        let [version, n, h, w, c, classes, train, max] = [0, 1, 2, 3, 4, 5, 6, 7].map(word);
        if version != 1 {
            bail!(BadInput, "dataset format version {version}: this engine reads version 1");
        }
        if n == 0 || h == 0 || w == 0 || c == 0 || h > 256 || w > 256 || c > 16 {
            bail!(BadInput, "the dataset's header gives {n} examples of {c}×{h}×{w}: examples must be 1 to 16 channels of at most 256×256");
        }
        if !(2..=256).contains(&classes) || train == 0 || train >= n || max == 0 || max > 255 {
            bail!(BadInput, "the dataset's header is inconsistent: {classes} classes, {train} of {n} examples to train, pixels up to {max}");
        }
        let per = c * h * w;
        let need = n.checked_mul(per + 1).and_then(|v| v.checked_add(HEADER as u64));
        if need != Some(bytes.len() as u64) {
            bail!(BadInput, "the dataset file is {} bytes, but its header describes {} bytes", bytes.len(), need.map_or("more than 2⁶⁴".into(), |v| v.to_string()));
        }
        let (n, per) = (n as usize, per as usize);
        let labels = bytes[HEADER..HEADER + n].to_vec();
        if let Some(i) = labels.iter().position(|&y| y as u64 >= classes) {
            bail!(BadInput, "example {i} has label {}, out of range for {classes} classes", labels[i]);
        }
        let pixels = bytes[HEADER + n..].to_vec();
        if let Some(i) = pixels.iter().position(|&p| p as u64 > max) {
            bail!(BadInput, "pixel {i} is {}, above the header's largest value {max}", pixels[i]);
        }
        debug_assert_eq!(pixels.len(), n * per);
        Ok(Dataset { height: h as usize, width: w as usize, channels: c as usize, classes: classes as usize, train: train as usize, max_value: max as u8, labels, pixels })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per example.
    pub fn example_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Examples `range` as network input: each pixel scaled to [0, 1],
    /// then centred on the training split's mean and divided by its
    /// standard deviation (one value over all pixels), repeated over
    /// `channels` input channels where the dataset has one.
    pub fn inputs(&self, range: std::ops::Range<usize>, channels: usize) -> Result<Vec<f32>> {
        if range.end > self.len() || range.start > range.end {
            bail!(BadInput, "examples {range:?} are out of range: the dataset has {}", self.len());
        }
        if channels != self.channels && self.channels != 1 {
            bail!(BadInput, "the network takes {channels} input channels but the dataset has {}", self.channels);
        }
        let (mean, std) = self.train_moments();
        let per = self.example_len();
        let mut x = Vec::with_capacity(range.len() * per * channels / self.channels);
        for e in range {
            let px = &self.pixels[e * per..(e + 1) * per];
            for _ in 0..channels / self.channels {
                x.extend(px.iter().map(|&p| ((p as f32 / self.max_value as f32) - mean) / std));
            }
        }
        Ok(x)
    }

    /// Mean and standard deviation of the training split's pixels in [0, 1].
    pub fn train_moments(&self) -> (f32, f32) {
        let px = &self.pixels[..self.train * self.example_len()];
        let k = self.max_value as f64;
        let n = px.len() as f64;
        let mean = px.iter().map(|&p| p as f64 / k).sum::<f64>() / n;
        let var = px.iter().map(|&p| (p as f64 / k - mean).powi(2)).sum::<f64>() / n;
        (mean as f32, var.sqrt().max(1e-6) as f32)
    }

    /// The labels of examples `range` as class indices.
    pub fn classes_of(&self, range: std::ops::Range<usize>) -> Vec<usize> {
        self.labels[range].iter().map(|&y| y as usize).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(n: u32, train: u32, labels: &[u8], pixels: &[u8]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        for v in [1, n, 2, 2, 1, 3, train, 16] {
            b.extend_from_slice(&u32::to_le_bytes(v));
        }
        b.extend_from_slice(labels);
        b.extend_from_slice(pixels);
        b
    }

    #[test]
    fn parses_and_refuses() {
        let d = Dataset::parse(&file(2, 1, &[0, 2], &[0, 16, 8, 8, 4, 4, 4, 4])).unwrap();
        assert_eq!((d.len(), d.train, d.example_len()), (2, 1, 4));
        let (m, s) = d.train_moments();
        assert!((m - 0.5).abs() < 1e-6 && (s - 0.125f32.sqrt()).abs() < 1e-6, "{m} {s}");
        assert_eq!(d.inputs(0..1, 3).unwrap().len(), 12);
        for (bytes, says) in [
            (b"RESNETDX".to_vec(), "not a dataset"),
            (file(2, 1, &[0, 2], &[0; 7]), "bytes"),
            (file(2, 1, &[0, 3], &[0; 8]), "label 3"),
            (file(2, 2, &[0, 1], &[0; 8]), "inconsistent"),
            (file(2, 1, &[0, 1], &[17; 8]), "above"),
            (file(u32::MAX, 1, &[0, 1], &[0; 8]), "describes"),
        ] {
            let e = Dataset::parse(&bytes).unwrap_err();
            assert!(e.message().contains(says), "{says}: {}", e.message());
        }
    }

    #[test]
    fn the_digits_ship() {
        let d = Dataset::parse(include_bytes!("../data/digits.bin")).unwrap();
        assert_eq!((d.len(), d.train, d.height, d.width, d.classes), (1797, 1297, 8, 8, 10));
    }
}
