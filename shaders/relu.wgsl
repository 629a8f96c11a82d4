// max(x, 0), elementwise.

// #include lib/flat_index.wgsl

// `act`: the activations' storage type (f16 on the f16 path, see kernels/source.rs).
alias act = f32;

struct Params {
    len: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<storage, read> input: array<act>;
@group(0) @binding(1) var<storage, read_write> output: array<act>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    output[i] = max(input[i], act(0.0));
}
