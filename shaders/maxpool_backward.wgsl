// Max pooling's backward, NCHW (a batch is N·C planes): each output's
// gradient goes to the first maximum of its window, in the scan order of
// the forward pass. Gathered per input pixel (no atomics): for each window
// that covers it, the pixel takes dy if it is that window's first maximum.

// #include lib/flat_index.wgsl

struct Params {
    channels: u32, in_h: u32, in_w: u32, out_h: u32,
    out_w: u32, kernel: u32, stride: u32, pad: u32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

// window_max():
// #include lib/pool_window.wgsl

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let plane = p.in_h * p.in_w;
    if (i >= p.channels * plane) {
        return;
    }
    let c = i / plane;
    let j = i % plane;
    let iy = i32(j / p.in_w);
    let ix = i32(j % p.in_w);
    let s = i32(p.stride);
    let k = i32(p.kernel);
    let pad = i32(p.pad);
    // The windows covering (iy, ix): oy·s − pad ≤ iy < oy·s − pad + k.
    let oy0 = max((iy + pad - k + s) / s, 0);
    let oy1 = min((iy + pad) / s, i32(p.out_h) - 1);
    let ox0 = max((ix + pad - k + s) / s, 0);
    let ox1 = min((ix + pad) / s, i32(p.out_w) - 1);
    var g = 0.0;
    for (var oy = oy0; oy <= oy1; oy++) {
        for (var ox = ox0; ox <= ox1; ox++) {
            if (window_max(c, u32(oy), u32(ox)).at == j) {
                g += dy[(c * p.out_h + u32(oy)) * p.out_w + u32(ox)];
            }
        }
    }
    dx[i] += g;
}
