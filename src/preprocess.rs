//! Image preprocessing geometry: torchvision's eval transform
//! (`Resize(256)`, `CenterCrop(224)`, ImageNet mean/std), generalised to any
//! crop size. The pixel work runs on the GPU (`shaders/preprocess.wgsl`);
//! this module decides the sizes and offsets, exactly as torchvision does.

use crate::kernels::PreprocessParams;
use crate::{bail, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Preprocess {
    /// The shorter side is resized to this many pixels (256 for torchvision).
    pub resize: usize,
    /// Centre crop, which is the network's input size.
    pub crop_h: usize,
    pub crop_w: usize,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Preprocess {
    /// torchvision's ImageNet eval transform for a `crop_h`×`crop_w` input:
    /// the shorter side goes to `crop · 256/224` (256 for the usual 224).
    pub fn imagenet(crop_h: usize, crop_w: usize) -> Preprocess {
        let resize = crop_h.max(crop_w).saturating_mul(256).div_ceil(224);
        Preprocess { resize, crop_h, crop_w, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }
    }
}

/// Where one source image lands: the resized size and the crop's offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub resized_w: usize,
    pub resized_h: usize,
    pub crop_x: usize,
    pub crop_y: usize,
}

/// Python's `round` (half to even), which torchvision's centre crop uses.
fn round_half_even(x: f64) -> usize {
    let r = x.round();
    let r = if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 { r - x.signum() } else { r };
    r.max(0.0) as usize
}

/// The largest image side preprocessing takes (the browser package scales
/// larger frames down before they reach the engine).
pub const MAX_SOURCE_SIDE: usize = 1 << 16;

/// torchvision `Resize(short)`: the short side becomes `short`, the long one `int(short·long/short_src)`.
fn resized(src_w: usize, src_h: usize, short: usize) -> (usize, usize) {
    if src_w <= src_h {
        (short, short * src_h / src_w)
    } else {
        (short * src_w / src_h, short)
    }
}

impl Preprocess {
    pub fn geometry(&self, src_w: usize, src_h: usize) -> Result<Geometry> {
        if src_w == 0 || src_h == 0 {
            bail!(BadInput, "the image is empty ({src_w}×{src_h})");
        }
        if src_w > MAX_SOURCE_SIDE || src_h > MAX_SOURCE_SIDE {
            bail!(InputTooLarge, "the image ({src_w}×{src_h}) is larger than {MAX_SOURCE_SIDE} pixels on a side: scale it down first");
        }
        let max = crate::model::MAX_INPUT_SIDE;
        if self.crop_h == 0 || self.crop_w == 0 || self.crop_h > max || self.crop_w > max {
            bail!(BadInput, "a {}×{} crop is outside 1…{max} pixels on a side", self.crop_h, self.crop_w);
        }
        if self.resize == 0 || self.resize > 2 * max {
            bail!(BadInput, "cannot resize the shorter side to {} pixels", self.resize);
        }
        // A non-square crop may not fit the torchvision resize of a squarish
        // image; grow the short side until it does.
        let mut short = self.resize;
        let (mut w, mut h) = resized(src_w, src_h, short);
        while w < self.crop_w || h < self.crop_h {
            short += 1;
            (w, h) = resized(src_w, src_h, short);
        }
        Ok(Geometry {
            resized_w: w,
            resized_h: h,
            crop_x: round_half_even((w - self.crop_w) as f64 / 2.0),
            crop_y: round_half_even((h - self.crop_h) as f64 / 2.0),
        })
    }

    /// The part of a `src_w`×`src_h` image the network sees, in the image's
    /// own pixels: `[x, y, width, height]` (what a page draws as "the view").
    pub fn source_rect(&self, src_w: usize, src_h: usize) -> Result<[f64; 4]> {
        let g = self.geometry(src_w, src_h)?;
        let (sx, sy) = (src_w as f64 / g.resized_w as f64, src_h as f64 / g.resized_h as f64);
        Ok([g.crop_x as f64 * sx, g.crop_y as f64 * sy, self.crop_w as f64 * sx, self.crop_h as f64 * sy])
    }

    /// The uniform block of `preprocess.wgsl` for one source size.
    pub fn params(&self, src_w: usize, src_h: usize) -> Result<PreprocessParams> {
        let g = self.geometry(src_w, src_h)?;
        let [m0, m1, m2] = self.mean;
        let [s0, s1, s2] = self.std;
        Ok(PreprocessParams {
            src_w: src_w as u32,
            src_h: src_h as u32,
            out_w: self.crop_w as u32,
            out_h: self.crop_h as u32,
            crop_x: g.crop_x as u32,
            crop_y: g.crop_y as u32,
            _pad0: [0; 2],
            scale: [src_w as f32 / g.resized_w as f32, src_h as f32 / g.resized_h as f32],
            _pad1: [0.0; 2],
            mean: [m0, m1, m2, 0.0],
            inv_std: [1.0 / s0, 1.0 / s1, 1.0 / s2, 1.0],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torchvision_geometry() {
        let p = Preprocess::imagenet(224, 224);
        assert_eq!(p.resize, 256);
        // chelsea.png is 451×300: short side 300 → 256, long int(256·451/300) = 384.
        assert_eq!(p.geometry(451, 300).unwrap(), Geometry { resized_w: 384, resized_h: 256, crop_x: 80, crop_y: 16 });
        // (257-224)/2 = 16.5 rounds half to even: 16.
        let g = p.geometry(300, 257 * 300 / 256 + 1).unwrap();
        assert_eq!(g.resized_w, 256);
        assert_eq!(round_half_even(16.5), 16);
        assert_eq!(round_half_even(17.5), 18);
        assert_eq!(round_half_even(2.4), 2);
    }

    #[test]
    fn non_square_crop_fits() {
        let p = Preprocess::imagenet(97, 131);
        let g = p.geometry(100, 100).unwrap();
        assert!(g.resized_w >= 131 && g.resized_h >= 97);
        assert!(p.geometry(0, 5).is_err());
    }
}
