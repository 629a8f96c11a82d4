// Global average pooling's backward: each pixel of plane c gets dy[c] / plane
// (a batch is N·C planes, and dy N·C values in the same order).

// #include lib/flat_index.wgsl

struct Params {
    len: u32, plane: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read_write> dx: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    dx[i] += dy[i / p.plane] / f32(p.plane);
}
