//! RGBA8 pixels → the normalised 3×H×W input on the CPU: the same
//! antialiased bilinear resize (PIL's, which torchvision runs), centre crop
//! and ImageNet normalisation as `shaders/preprocess.wgsl`, with the same
//! parameters. The filter is separable, so it runs as a horizontal pass over
//! the rows the crop needs, then a vertical one.

use crate::kernels::PreprocessParams;
use crate::{bail, Result};

/// Filter taps for output `o` along an axis of `size` source pixels:
/// (first source index, weights normalised to sum 1).
fn taps(o: usize, scale: f32, size: usize) -> (usize, Vec<f32>) {
    let filter_scale = scale.max(1.0);
    let support = filter_scale;
    let center = (o as f32 + 0.5) * scale;
    let first = ((center - support + 0.5).floor() as isize).max(0) as usize;
    let last = ((center + support + 0.5).floor() as isize).clamp(0, size as isize) as usize;
    let inv = 1.0 / filter_scale;
    let mut w: Vec<f32> = (first..last.max(first)).map(|i| (1.0 - ((i as f32 - center + 0.5) * inv).abs()).max(0.0)).collect();
    let total: f32 = w.iter().sum();
    if total > 0.0 {
        w.iter_mut().for_each(|v| *v /= total);
    }
    (first, w)
}

/// Fills `out` (3×out_h×out_w) from `rgba` (src_w×src_h) as `p` says.
/// Fails (`InputTooLarge`) where the horizontal pass's rows find no memory:
/// every source row the crop needs, at the output's width (a very tall
/// source), which in wasm would otherwise abort the module.
pub fn preprocess(rgba: &[u8], p: &PreprocessParams, out: &mut [f32]) -> Result<()> {
    let (sw, sh, ow, oh) = (p.src_w as usize, p.src_h as usize, p.out_w as usize, p.out_h as usize);
    let xs: Vec<(usize, Vec<f32>)> = (0..ow).map(|x| taps(x + p.crop_x as usize, p.scale[0], sw)).collect();
    let ys: Vec<(usize, Vec<f32>)> = (0..oh).map(|y| taps(y + p.crop_y as usize, p.scale[1], sh)).collect();
    let y0 = ys.iter().map(|t| t.0).min().unwrap_or(0);
    let y1 = ys.iter().map(|t| t.0 + t.1.len()).max().unwrap_or(0);
    // Horizontal pass: each needed source row filtered to the crop's columns, RGB interleaved.
    let n = (y1 - y0) * ow * 3;
    let mut rows = Vec::new();
    if rows.try_reserve_exact(n).is_err() {
        bail!(InputTooLarge, "the image ({sw}×{sh}) needs {} MB to resize on the CPU, more than is free here: scale it down first", (n * 4) >> 20);
    }
    rows.resize(n, 0.0f32);
    for y in y0..y1 {
        let src = &rgba[y * sw * 4..(y + 1) * sw * 4];
        let dst = &mut rows[(y - y0) * ow * 3..(y - y0 + 1) * ow * 3];
        for (ox, (first, w)) in xs.iter().enumerate() {
            let mut acc = [0.0f32; 3];
            for (k, wk) in w.iter().enumerate() {
                let px = &src[(first + k) * 4..(first + k) * 4 + 3];
                for c in 0..3 {
                    acc[c] += wk * px[c] as f32;
                }
            }
            dst[ox * 3..ox * 3 + 3].copy_from_slice(&acc);
        }
    }
    // Vertical pass, then normalisation into the three planes.
    let plane = ow * oh;
    for (oy, (first, w)) in ys.iter().enumerate() {
        for ox in 0..ow {
            let mut acc = [0.0f32; 3];
            for (k, wk) in w.iter().enumerate() {
                let r = &rows[((first + k - y0) * ow + ox) * 3..][..3];
                for c in 0..3 {
                    acc[c] += wk * r[c];
                }
            }
            for c in 0..3 {
                out[c * plane + oy * ow + ox] = (acc[c] / 255.0 - p.mean[c]) * p.inv_std[c];
            }
        }
    }
    Ok(())
}
