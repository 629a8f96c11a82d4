//! Seeded data augmentation, in the preprocessing: a random resized crop
//! (torchvision's `RandomResizedCrop`, milder: 35–100% of the image), a
//! horizontal flip and brightness/contrast jitter (torchvision's
//! `ColorJitter`: brightness scales the pixels, contrast scales them about
//! the image's mean grey). Images get all three; raw tensors, which have no
//! pixels to crop, the flip and the jitter (in the ImageNet-normalised
//! domain the eval transform produces).

use crate::demo::Rng;
use crate::kernels::PreprocessParams;
use crate::preprocess::Preprocess;
use crate::Result;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augment {
    /// The crop's share of the image's area: (least, most).
    pub scale: (f64, f64),
    /// The crop's aspect ratio relative to the network input's: (least, most), drawn log-uniformly.
    pub ratio: (f64, f64),
    pub flip: bool,
    /// Pixels scale by a factor in 1 ± this.
    pub brightness: f32,
    /// Contrast scales by a factor in 1 ± this.
    pub contrast: f32,
}

impl Default for Augment {
    fn default() -> Augment {
        Augment { scale: (0.35, 1.0), ratio: (3.0 / 4.0, 4.0 / 3.0), flip: true, brightness: 0.2, contrast: 0.2 }
    }
}

/// Uniform in [lo, hi).
fn between(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

impl Augment {
    /// Preprocessing parameters for a random crop of a `src_w`×`src_h` image,
    /// resized to the network's input (`pre`'s crop size) by the same
    /// antialiased filter as the eval transform.
    pub fn crop_params(&self, pre: &Preprocess, src_w: usize, src_h: usize, rng: &mut Rng) -> Result<PreprocessParams> {
        let mut p = pre.params(src_w, src_h)?;
        let (ow, oh) = (pre.crop_w as f64, pre.crop_h as f64);
        let area = (src_w * src_h) as f64;
        // torchvision's get_params: ten tries, else the largest centred crop.
        let mut rect = None;
        for _ in 0..10 {
            let target = area * between(rng, self.scale.0, self.scale.1);
            let aspect = between(rng, self.ratio.0.ln(), self.ratio.1.ln()).exp() * ow / oh;
            let w = (target * aspect).sqrt().round();
            let h = (target / aspect).sqrt().round();
            if w >= 1.0 && h >= 1.0 && w <= src_w as f64 && h <= src_h as f64 {
                let x = (rng.next_u64() % (src_w as u64 - w as u64 + 1)) as f64;
                let y = (rng.next_u64() % (src_h as u64 - h as u64 + 1)) as f64;
                rect = Some((x, y, w, h));
                break;
            }
        }
        let (x, y, w, h) = rect.unwrap_or_else(|| {
            let s = (src_w as f64 / ow).min(src_h as f64 / oh);
            let (w, h) = (s * ow, s * oh);
            ((src_w as f64 - w) / 2.0, (src_h as f64 - h) / 2.0, w, h)
        });
        // The crop as the shader's geometry: a resize by w/ow × h/oh, then an offset in resized pixels.
        let (sx, sy) = (w / ow, h / oh);
        p.scale = [sx as f32, sy as f32];
        p.crop_x = (x / sx).floor() as u32;
        p.crop_y = (y / sy).floor() as u32;
        Ok(p)
    }

    /// The flip and the jitter on one `3×h×w` input, normalised by `mean`
    /// and `inv_std` (per channel): in place. `clamp`: keep pixels within
    /// 0…1 (images; raw tensors are left unclamped).
    pub fn flip_jitter(&self, x: &mut [f32], h: usize, w: usize, mean: [f32; 3], inv_std: [f32; 3], clamp: bool, rng: &mut Rng) {
        let plane = h * w;
        if self.flip && rng.next_u64() & 1 == 1 {
            for row in x.chunks_exact_mut(w) {
                row.reverse();
            }
        }
        let b = 1.0 + self.brightness * (2.0 * between(rng, 0.0, 1.0) as f32 - 1.0);
        let c = 1.0 + self.contrast * (2.0 * between(rng, 0.0, 1.0) as f32 - 1.0);
        let fit = |v: f32| if clamp { v.clamp(0.0, 1.0) } else { v };
        // Back to pixels in 0…1, brightness first.
        for ch in 0..3 {
            for v in &mut x[ch * plane..(ch + 1) * plane] {
                *v = fit((*v / inv_std[ch] + mean[ch]) * b);
            }
        }
        // Contrast about the mean grey (ITU-R 601 luma, as torchvision).
        let grey: f64 = (0..plane).map(|i| 0.299 * x[i] as f64 + 0.587 * x[plane + i] as f64 + 0.114 * x[2 * plane + i] as f64).sum::<f64>() / plane as f64;
        let g = grey as f32;
        for ch in 0..3 {
            for v in &mut x[ch * plane..(ch + 1) * plane] {
                *v = (fit((*v - g) * c + g) - mean[ch]) * inv_std[ch];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_stay_inside_the_image_and_vary() {
        let pre = Preprocess::imagenet(64, 48);
        let a = Augment::default();
        let mut rng = Rng::new(1);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let p = a.crop_params(&pre, 300, 200, &mut rng).unwrap();
            // The crop's far corner, in source pixels, is inside the image.
            let right = (p.crop_x as f32 + p.out_w as f32) * p.scale[0];
            let bottom = (p.crop_y as f32 + p.out_h as f32) * p.scale[1];
            assert!(right <= 300.0 + 1e-3 && bottom <= 200.0 + 1e-3, "{p:?}");
            let area = p.out_w as f32 * p.scale[0] * p.out_h as f32 * p.scale[1] / (300.0 * 200.0);
            assert!((0.3..=1.01).contains(&area), "{area}");
            seen.insert((p.crop_x, p.crop_y));
        }
        assert!(seen.len() > 50);
    }

    #[test]
    fn no_jitter_and_no_flip_is_the_identity() {
        let a = Augment { flip: false, brightness: 0.0, contrast: 0.0, ..Augment::default() };
        let mut rng = Rng::new(2);
        let x0 = rng.vec(3 * 5 * 7);
        let mut x = x0.clone();
        a.flip_jitter(&mut x, 5, 7, [0.485, 0.456, 0.406], [1.0 / 0.229, 1.0 / 0.224, 1.0 / 0.225], false, &mut rng);
        for (u, v) in x.iter().zip(&x0) {
            assert!((u - v).abs() < 1e-5);
        }
    }
}
