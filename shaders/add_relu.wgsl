// The end of a residual block: relu(main path + shortcut).

// #include lib/flat_index.wgsl

struct Params {
    len: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<storage, read> main_path: array<f32>;
@group(0) @binding(1) var<storage, read> shortcut: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    output[i] = max(main_path[i] + shortcut[i], 0.0);
}
