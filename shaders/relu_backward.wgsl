// ReLU's backward from its output: dy passes where y > 0, added to dx_a
// and (TWO: the end of a residual block, relu(main + shortcut)) to dx_b,
// the gradient fanning out to both paths.

// #include lib/flat_index.wgsl

struct Params {
    len: u32, two: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx_a: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx_b: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    let g = select(0.0, dy[i], y[i] > 0.0);
    dx_a[i] += g;
    if (p.two != 0u) {
        dx_b[i] += g;
    }
}
