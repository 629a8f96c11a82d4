// The tile loaders of the implicit-GEMM convolutions (conv2d_gemm.wgsl,
// conv2d_coop.wgsl): 4 consecutive weights of one row of K×M, and 4
// consecutive im2col values of one row of K×N gathered from the NCHW input.
// The including shader declares the aliases `act`, `wt` and `in_t`, and
// includes lib/conv_params.wgsl, lib/conv_epilogue.wgsl (the flags) and
// lib/gemm_bindings.wgsl (`input`, `weight`, `in_bias`, `p`).

// A 1×1, stride-1, unpadded conv: X is the input itself, read without a gather.
override POINTWISE: bool = false;

// A folded input: `input` holds the previous conv's `p.in_splits` split-K
// partial sums (f32, one input-sized slice each) instead of its output, and
// each value is finished here as conv_splitk.wgsl would have finished it
// (sum in slice order, + in_bias[channel] if HAS_BIAS in p.in_flags, ReLU
// if RELU). That saves the reduction's dispatch between two convs, at S
// reads per loaded value.
override FOLDED: bool = false;

// Input value `i` of channel `ci`, finished when FOLDED.
fn load_in(i: u32, ci: u32) -> f32 {
    if (!FOLDED) {
        return f32(input[i]);
    }
    let len = p.in_c * p.in_h * p.in_w;
    var v = 0.0;
    for (var s = 0u; s < p.in_splits; s++) {
        v += f32(input[s * len + i]);
    }
    if ((p.in_flags & HAS_BIAS) != 0u) {
        v += in_bias[ci];
    }
    if ((p.in_flags & RELU) != 0u) {
        v = max(v, 0.0);
    }
    return v;
}

// An invocation loads 4 consecutive values of rows of each tile: columns
// `gm..gm+3` of the weights, `gn..gn+3` of the inputs. Its 4 output pixels
// stay the same for the whole K loop, so their input coordinates are
// computed once, before it.
struct Loader {
    lk: u32,
    gm: u32,          // first of the 4 output channels it loads weights for
    gn: u32,          // first of the 4 output pixels it gathers inputs for
    oy: vec4<i32>,    // top-left input row of each pixel's window
    ox: vec4<i32>,
    live: vec4<bool>, // pixel < N
}

fn weight_row(ld: Loader, k: u32, K: u32, M: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (k >= K) {
        return v;
    }
    let base = k * M + ld.gm;
    if (ld.gm + 3u < M) {
        return vec4<f32>(vec4<wt>(weight[base], weight[base + 1u], weight[base + 2u], weight[base + 3u]));
    }
    // The last tile's ragged edge. Lanes are spelled out: a dynamically
    // indexed vector could be moved to slow local memory by a driver.
    if (ld.gm < M) { v.x = f32(weight[base]); }
    if (ld.gm + 1u < M) { v.y = f32(weight[base + 1u]); }
    if (ld.gm + 2u < M) { v.z = f32(weight[base + 2u]); }
    return v;
}

// Four im2col elements X[k][gn..gn+3], zero outside the input.
fn input_row(ld: Loader, k: u32, K: u32, N: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (k >= K) {
        return v;
    }
    if (POINTWISE) {
        let base = k * N + ld.gn;
        if (ld.gn + 3u < N && !FOLDED) {
            return vec4<f32>(vec4<in_t>(input[base], input[base + 1u], input[base + 2u], input[base + 3u]));
        }
        if (ld.live.x) { v.x = load_in(base, k); }
        if (ld.live.y) { v.y = load_in(base + 1u, k); }
        if (ld.live.z) { v.z = load_in(base + 2u, k); }
        if (ld.live.w) { v.w = load_in(base + 3u, k); }
        return v;
    }
    // One division chain per step for all 4 values: k → (channel, ky, kx).
    let taps = p.k_h * p.k_w;
    let ci = k / taps;
    let r = k - ci * taps;
    let ky = r / p.k_w;
    let kx = r - ky * p.k_w;
    let iy = ld.oy + vec4<i32>(i32(ky));
    let ix = ld.ox + vec4<i32>(i32(kx));
    let ok = ld.live & (iy >= vec4<i32>(0)) & (iy < vec4<i32>(i32(p.in_h))) & (ix >= vec4<i32>(0)) & (ix < vec4<i32>(i32(p.in_w)));
    let at = vec4<i32>(i32(ci * p.in_h * p.in_w)) + iy * i32(p.in_w) + ix;
    // Padding stays 0: only values inside the input are finished.
    if (ok.x) { v.x = load_in(u32(at.x), ci); }
    if (ok.y) { v.y = load_in(u32(at.y), ci); }
    if (ok.z) { v.z = load_in(u32(at.z), ci); }
    if (ok.w) { v.w = load_in(u32(at.w), ci); }
    return v;
}

fn make_loader(lk: u32, gm: u32, gn: u32, N: u32) -> Loader {
    var ld: Loader;
    ld.lk = lk;
    ld.gm = gm;
    ld.gn = gn;
    let px = vec4<u32>(gn) + vec4<u32>(0u, 1u, 2u, 3u);
    ld.live = px < vec4<u32>(N);
    let ow = vec4<u32>(max(p.out_w, 1u));
    ld.oy = vec4<i32>((px / ow) * p.stride) - vec4<i32>(i32(p.pad_y));
    ld.ox = vec4<i32>((px % ow) * p.stride) - vec4<i32>(i32(p.pad_x));
    return ld;
}
