//! The CPU backend's kernels against a plain float64 computation, on awkward
//! shapes: convolutions through each of its paths (the 1×1 GEMM, im2col with
//! strides split into phases, Winograd F(2×2, 3×3) and F(4×4, 3×3) on maps
//! from 1×1 up, ragged tiles included), the fused epilogue, and max pooling
//! with and without padding. Whole networks are checked against ONNX Runtime
//! (tests/test_networks.py) and against the GPU (tests/engine.rs).

use resnet::engine::cpu::conv::{CpuConv, Epilogue, Scratch};
use resnet::engine::cpu::winograd::{self, Winograd};
use resnet::engine::cpu::ops;
use resnet::demo::Rng;
use resnet::model::{ConvSpec, PoolSpec, Shape};

/// The direct sum, in f64.
fn conv_ref(x: &[f32], i: Shape, w: &[f32], c: &ConvSpec, o: Shape) -> Vec<f64> {
    let (kh, kw) = c.kernel;
    let mut out = vec![0.0f64; o.len()];
    for co in 0..o.c {
        for oy in 0..o.h {
            for ox in 0..o.w {
                let mut s = 0.0f64;
                for ci in 0..i.c {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * c.stride + ky) as isize - c.padding.0 as isize;
                            let ix = (ox * c.stride + kx) as isize - c.padding.1 as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < i.h && (ix as usize) < i.w {
                                s += x[(ci * i.h + iy as usize) * i.w + ix as usize] as f64 * w[((co * i.c + ci) * kh + ky) * kw + kx] as f64;
                            }
                        }
                    }
                }
                out[(co * o.h + oy) * o.w + ox] = s;
            }
        }
    }
    out
}

#[test]
fn conv_paths_match_the_direct_sum() {
    let mut rng = Rng::new(11);
    let mut scratch = Scratch::default();
    // (in channels, h, w, out channels, kernel, stride, padding)
    let cases = [
        (5, 13, 9, 7, 3, 1, 1),    // Winograd F(4, 3): ragged 4×4 tiles
        (130, 7, 7, 9, 3, 1, 1),   // Winograd F(2, 3): ragged 2×2 tiles
        (64, 30, 31, 70, 3, 1, 1), // F(4, 3) on a larger map
        (3, 1, 1, 4, 3, 1, 1),     // a 1×1 map: one tile, mostly padding
        (200, 2, 3, 5, 3, 1, 1),   // F(2, 3), a map smaller than a tile
        (3, 17, 13, 5, 7, 2, 3),   // stem-like 7×7/2: im2col with phases
        (6, 9, 11, 7, 3, 2, 1),    // 3×3/2 on odd sizes
        (4, 11, 7, 9, 1, 2, 0),    // 1×1/2 (a shortcut)
        (67, 9, 11, 13, 1, 1, 0),  // 1×1/1: the input is the GEMM operand
        (3, 12, 9, 6, 5, 1, 0),    // 5×5 valid
    ];
    for (n, &(ci, h, w, co, k, s, p)) in cases.iter().enumerate() {
        let spec = ConvSpec { name: format!("case{n}"), in_channels: ci, out_channels: co, kernel: (k, k), stride: s, padding: (p, p), bias: true };
        let i = Shape::new(ci, h, w);
        let o = spec.output_shape(i).unwrap();
        let x = rng.vec(i.len());
        let wt = rng.vec(co * ci * k * k);
        let bias = rng.vec(co);
        let res = rng.vec(o.len());
        let want = conv_ref(&x, i, &wt, &spec, o);
        let conv = CpuConv::new(spec, wt, Some(bias.clone()));
        let (mut out, mut main) = (vec![f32::NAN; o.len()], vec![f32::NAN; o.len()]);
        let ep = Epilogue { residual: Some(&res), relu: true, main_out: Some(&mut main) };
        conv.run(&x, i, &mut out, o, ep, &mut scratch);
        let plane = o.h * o.w;
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1.0);
        for j in 0..o.len() {
            let f = want[j] + bias[j / plane] as f64;
            let y = (f + res[j] as f64).max(0.0);
            assert!((main[j] as f64 - f).abs() <= 1e-5 * scale, "case {n}: F(x)[{j}] {} vs {f}", main[j]);
            assert!((out[j] as f64 - y).abs() <= 1e-5 * scale, "case {n}: out[{j}] {} vs {y}", out[j]);
        }
    }
}

#[test]
fn both_winograd_tiles_match_the_direct_sum() {
    // Either tile size on every kind of map, whichever a platform picks.
    let mut rng = Rng::new(13);
    let mut scratch = winograd::Scratch::default();
    for (ci, h, w, co) in [(5, 13, 9, 7), (130, 7, 7, 9), (3, 1, 1, 4), (200, 2, 3, 5), (16, 30, 31, 20), (8, 5, 6, 3)] {
        let spec = ConvSpec { name: "w".into(), in_channels: ci, out_channels: co, kernel: (3, 3), stride: 1, padding: (1, 1), bias: false };
        let i = Shape::new(ci, h, w);
        let o = spec.output_shape(i).unwrap();
        let x = rng.vec(i.len());
        let wt = rng.vec(co * ci * 9);
        let want = conv_ref(&x, i, &wt, &spec, o);
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1.0);
        for tile in [2, 4] {
            let mut out = vec![f32::NAN; o.len()];
            let ep = Epilogue { residual: None, relu: false, main_out: None };
            Winograd::new(&wt, co, ci, tile).run(&x, i, &mut out, o, None, ep, &mut scratch);
            for j in 0..o.len() {
                assert!((out[j] as f64 - want[j]).abs() <= 1e-5 * scale, "F({tile}, 3) {ci}×{h}×{w}→{co}: [{j}] {} vs {}", out[j], want[j]);
            }
        }
    }
}

#[test]
fn maxpool_matches_the_direct_max() {
    let mut rng = Rng::new(12);
    for (c, h, w, k, s, pad) in [(5, 11, 8, 3, 2, 1), (3, 9, 9, 3, 2, 0), (2, 7, 10, 2, 2, 0), (4, 1, 1, 3, 2, 1), (2, 112, 111, 3, 2, 1), (2, 3, 1, 5, 1, 2), (3, 6, 7, 5, 3, 2)] {
        let p = PoolSpec { kernel: k, stride: s, padding: pad };
        let i = Shape::new(c, h, w);
        let o = p.output_shape(i).unwrap();
        // All-negative inputs: padding must never win.
        let x: Vec<f32> = rng.vec(i.len()).iter().map(|v| v - 2.0).collect();
        let mut want = vec![f32::MIN; o.len()];
        for ch in 0..c {
            for oy in 0..o.h {
                for ox in 0..o.w {
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix) = ((oy * s + ky) as isize - pad as isize, (ox * s + kx) as isize - pad as isize);
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                let m = &mut want[(ch * o.h + oy) * o.w + ox];
                                *m = m.max(x[(ch * h + iy as usize) * w + ix as usize]);
                            }
                        }
                    }
                }
            }
        }
        let mut got = vec![0.0; o.len()];
        ops::maxpool(&x, i, &p, &mut got, o, &mut Scratch::default());
        assert_eq!(got, want, "maxpool {c}×{h}×{w} k{k} s{s} p{pad}");
    }
}

/// The conv's gradients by the direct sums, in f64: (dW, db, dx) for output gradient `dy`.
fn conv_grads_ref(x: &[f32], i: Shape, w: &[f32], c: &ConvSpec, dy: &[f32], o: Shape) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (kh, kw) = c.kernel;
    let (mut dw, mut db, mut dx) = (vec![0.0f64; w.len()], vec![0.0f64; o.c], vec![0.0f64; i.len()]);
    for co in 0..o.c {
        for oy in 0..o.h {
            for ox in 0..o.w {
                let g = dy[(co * o.h + oy) * o.w + ox] as f64;
                db[co] += g;
                for ci in 0..i.c {
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * c.stride + ky) as isize - c.padding.0 as isize;
                            let ix = (ox * c.stride + kx) as isize - c.padding.1 as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < i.h && (ix as usize) < i.w {
                                let xi = (ci * i.h + iy as usize) * i.w + ix as usize;
                                let wi = ((co * i.c + ci) * kh + ky) * kw + kx;
                                dw[wi] += g * x[xi] as f64;
                                dx[xi] += g * w[wi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    (dw, db, dx)
}

#[test]
fn conv_backward_matches_the_direct_sums() {
    use resnet::engine::cpu::conv::{conv_backward, ConvGrads};
    let mut rng = Rng::new(12);
    let mut scratch = Scratch::default();
    // (in channels, h, w, out channels, kernel, stride, padding)
    let cases = [
        (3, 17, 13, 5, 7, 2, 3),   // the stem's 7×7/2
        (6, 9, 11, 7, 3, 2, 1),    // 3×3/2 on odd sizes
        (5, 13, 9, 7, 3, 1, 1),    // 3×3/1
        (4, 11, 7, 9, 1, 2, 0),    // 1×1/2 (a shortcut)
        (67, 9, 11, 13, 1, 1, 0),  // 1×1/1
        (16, 3, 3, 8, 1, 1, 0),    // 1×1/1 on a tiny map
        (8, 3, 3, 16, 3, 1, 1),    // 3×3/1 on a tiny map
        (3, 12, 9, 6, 5, 1, 0),    // 5×5 valid
        (2, 300, 290, 3, 3, 1, 1), // im2col in several column blocks
    ];
    for &(ci, h, w, co, k, s, p) in &cases {
        let spec = ConvSpec { name: "c".into(), in_channels: ci, out_channels: co, kernel: (k, k), stride: s, padding: (p, p), bias: true };
        let i = Shape::new(ci, h, w);
        let o = spec.output_shape(i).unwrap();
        let x = rng.vec(i.len());
        let wt = rng.vec(co * ci * k * k);
        let dy = rng.vec(o.len());
        // Accumulates: start from ones and subtract them after.
        let (mut dw, mut db, mut dx) = (vec![1.0f32; wt.len()], vec![1.0f32; co], vec![1.0f32; i.len()]);
        conv_backward(&spec, &wt, &x, i, &dy, o, ConvGrads { weight: Some(&mut dw), bias: Some(&mut db), input: Some(&mut dx) }, &mut scratch);
        let (rw, rb, rx) = conv_grads_ref(&x, i, &wt, &spec, &dy, o);
        for (what, got, want) in [("dW", &dw, &rw), ("db", &db, &rb), ("dx", &dx, &rx)] {
            let scale = want.iter().fold(1.0f64, |a, b| a.max(b.abs()));
            for (j, (g, r)) in got.iter().zip(want.iter()).enumerate() {
                assert!((*g as f64 - 1.0 - r).abs() <= 1e-5 * scale, "{ci}×{h}×{w} → {co}, {k}×{k}/{s} pad {p}: {what}[{j}] = {} , want {r}", *g as f64 - 1.0);
            }
        }
        // Only what is asked for is computed.
        let mut dx2 = vec![0.0f32; i.len()];
        conv_backward(&spec, &wt, &x, i, &dy, o, ConvGrads { weight: None, bias: None, input: Some(&mut dx2) }, &mut scratch);
        for (a, b) in dx2.iter().zip(&dx) {
            assert!((a - (b - 1.0)).abs() <= 1e-4 * (1.0 + a.abs()));
        }
    }
}

#[test]
fn strips_give_the_preprocessing_bit_for_bit() {
    use resnet::engine::cpu::preprocess::{preprocess, Strips};
    use resnet::Preprocess;
    let mut rng = Rng::new(13);
    let mut reused: Option<Strips> = None;
    // (frame width, height, network input h, w, rows per strip)
    for &(w, h, ih, iw, strip) in &[(517, 389, 64, 64, 7), (4000, 300, 224, 224, 64), (97, 1030, 40, 56, 1), (33, 35, 32, 32, 100), (1537, 1025, 97, 131, 33)] {
        let rgba: Vec<u8> = (0..w * h * 4).map(|_| (rng.next_u64() >> 56) as u8).collect();
        let p = Preprocess::imagenet(ih, iw).params(w, h).unwrap();
        let mut want = vec![0.0; 3 * ih * iw];
        preprocess(&rgba, &p, &mut want).unwrap();
        // A new resize, and one kept from the frame before (restarted, as the bindings do: twice, the second reusing its taps).
        let mut fresh = Strips::new(&p).unwrap();
        for s in [&mut fresh, reused.get_or_insert_with(|| Strips::new(&p).unwrap())] {
            for _ in 0..2 {
                s.restart(&p).unwrap();
                let [x0, y0, rw, rh] = s.rect;
                assert!(x0 + rw <= w && y0 + rh <= h);
                for r0 in (0..rh).step_by(strip) {
                    let rows: Vec<u8> = (r0..(r0 + strip).min(rh)).flat_map(|r| rgba[((y0 + r) * w + x0) * 4..((y0 + r) * w + x0 + rw) * 4].iter().copied()).collect();
                    assert!(!s.complete());
                    s.push(&rows).unwrap();
                }
                let mut got = vec![0.0; s.input_len()];
                s.finish(&mut got).unwrap();
                assert!(got == want, "{w}×{h} → {ih}×{iw}: not bit for bit");
            }
        }
        let s = &mut fresh;
        let rw = s.rect[2];
        // Too many rows, or a ragged strip, is refused.
        assert!(s.push(&rgba[..rw * 4]).is_err());
        assert!(Strips::new(&p).unwrap().push(&[0; 3]).is_err());
    }
}
