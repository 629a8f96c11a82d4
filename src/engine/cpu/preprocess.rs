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

/// A frame handed over in strips of rows: the same antialiased resize, crop
/// and normalisation as [`preprocess`], bit for bit (the same sums in the
/// same order), with memory bounded by the network input and one strip
/// whatever the frame's size. Only [`Strips::rect`], the part of the frame
/// the filter taps read, is handed over.
pub struct Strips {
    p: PreprocessParams,
    /// Taps in frame coordinates, as [`preprocess`] computes them.
    xs: Vec<(usize, Vec<f32>)>,
    ys: Vec<(usize, Vec<f32>)>,
    /// The frame's part the taps read: `[x, y, width, height]`.
    pub rect: [usize; 4],
    /// Per output pixel, RGB interleaved: the vertical pass's running sums.
    acc: Vec<f32>,
    /// One row after the horizontal pass, RGB interleaved.
    row: Vec<f32>,
    /// Rows of `rect` received so far.
    rows_in: usize,
    /// The first output row whose taps can still read a row to come.
    first_open: usize,
}

impl Strips {
    pub fn new(p: &PreprocessParams) -> Result<Strips> {
        let mut s = Strips { p: *p, xs: Vec::new(), ys: Vec::new(), rect: [0; 4], acc: Vec::new(), row: Vec::new(), rows_in: 0, first_open: 0 };
        s.taps_for(p)?;
        Ok(s)
    }

    /// Starts another frame with `p`: the taps are computed again only
    /// where `p` differs from the last frame's (a webcam's frames keep
    /// their size), and the sums reuse their memory.
    pub fn restart(&mut self, p: &PreprocessParams) -> Result<()> {
        if bytemuck::bytes_of(p) != bytemuck::bytes_of(&self.p) {
            self.taps_for(p)?;
        }
        self.acc.fill(0.0);
        self.rows_in = 0;
        self.first_open = 0;
        Ok(())
    }

    fn taps_for(&mut self, p: &PreprocessParams) -> Result<()> {
        let (sw, sh, ow, oh) = (p.src_w as usize, p.src_h as usize, p.out_w as usize, p.out_h as usize);
        self.xs = (0..ow).map(|x| taps(x + p.crop_x as usize, p.scale[0], sw)).collect();
        self.ys = (0..oh).map(|y| taps(y + p.crop_y as usize, p.scale[1], sh)).collect();
        self.rect = Self::rect_of(p);
        self.acc.clear();
        if self.acc.try_reserve_exact(ow * oh * 3).is_err() {
            bail!(InputTooLarge, "no memory left for a {ow}×{oh} input");
        }
        self.acc.resize(ow * oh * 3, 0.0);
        self.row = vec![0.0; ow * 3];
        self.p = *p;
        Ok(())
    }

    /// The part of a frame that preprocessing with `p` reads: `[x, y, width, height]`.
    pub fn rect_of(p: &PreprocessParams) -> [usize; 4] {
        let span = |n: usize, crop: u32, scale: f32, size: usize| {
            let t: Vec<(usize, usize)> = (0..n).map(|o| taps(o + crop as usize, scale, size)).map(|(f, w)| (f, f + w.len())).collect();
            let a = t.iter().map(|t| t.0).min().unwrap_or(0);
            (a, t.iter().map(|t| t.1).max().unwrap_or(0).max(a))
        };
        let (x0, x1) = span(p.out_w as usize, p.crop_x, p.scale[0], p.src_w as usize);
        let (y0, y1) = span(p.out_h as usize, p.crop_y, p.scale[1], p.src_h as usize);
        [x0, y0, x1 - x0, y1 - y0]
    }

    /// Values in the network input the strips give (`3×out_h×out_w`).
    pub fn input_len(&self) -> usize {
        3 * self.p.out_w as usize * self.p.out_h as usize
    }

    /// Whether every row of [`Strips::rect`] has been received.
    pub fn complete(&self) -> bool {
        self.rows_in == self.rect[3]
    }

    /// The next `rgba.len() / (4·rect width)` rows of the rect, RGBA8.
    pub fn push(&mut self, rgba: &[u8]) -> Result<()> {
        let [x0, y0, rw, rh] = self.rect;
        if rw == 0 || rgba.len() % (rw * 4) != 0 {
            bail!(BadInput, "a strip of {} bytes is not whole rows of {rw} RGBA pixels", rgba.len());
        }
        let n = rgba.len() / (rw * 4);
        if self.rows_in + n > rh {
            bail!(BadInput, "{} rows handed over for a frame part of {rh}", self.rows_in + n);
        }
        let ow = self.p.out_w as usize;
        for (i, src) in rgba.chunks_exact(rw * 4).enumerate() {
            let y = y0 + self.rows_in + i;
            // Horizontal pass, as in `preprocess` (columns shifted by the rect's x).
            for (ox, (first, w)) in self.xs.iter().enumerate() {
                let mut acc = [0.0f32; 3];
                for (k, wk) in w.iter().enumerate() {
                    let px = &src[(first + k - x0) * 4..(first + k - x0) * 4 + 3];
                    for c in 0..3 {
                        acc[c] += wk * px[c] as f32;
                    }
                }
                self.row[ox * 3..ox * 3 + 3].copy_from_slice(&acc);
            }
            // Each output row whose taps read row y adds it, in row order as `preprocess` does.
            while self.first_open < self.ys.len() && self.ys[self.first_open].0 + self.ys[self.first_open].1.len() <= y {
                self.first_open += 1;
            }
            for oy in self.first_open..self.ys.len() {
                let (first, w) = &self.ys[oy];
                if *first > y {
                    break;
                }
                let Some(&wk) = w.get(y - first) else { continue };
                for (a, r) in self.acc[oy * ow * 3..(oy + 1) * ow * 3].iter_mut().zip(&self.row) {
                    *a += wk * r;
                }
            }
        }
        self.rows_in += n;
        Ok(())
    }

    /// The normalised `3×out_h×out_w` input, once every row is in.
    pub fn finish(&self, out: &mut [f32]) -> Result<()> {
        if !self.complete() {
            bail!(BadInput, "the frame was handed over in part: {} of {} rows", self.rows_in, self.rect[3]);
        }
        let (ow, oh) = (self.p.out_w as usize, self.p.out_h as usize);
        let plane = ow * oh;
        for (i, a) in self.acc.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + i] = (a[c] / 255.0 - self.p.mean[c]) * self.p.inv_std[c];
            }
        }
        Ok(())
    }
}
