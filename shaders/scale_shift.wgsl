// y = x·scale[c] + shift[c] over a batch of NCHW tensors: a training
// batchnorm's forward pass, with the coefficients batchnorm_stats.wgsl wrote.

// #include lib/flat_index.wgsl

struct Params {
    len: u32, channels: u32, plane: u32, _p0: u32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> coef: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.len) {
        return;
    }
    let k = coef[(i / p.plane) % p.channels];
    output[i] = input[i] * k.x + k.y;
}
