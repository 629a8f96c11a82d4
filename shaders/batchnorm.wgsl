// Batch normalisation in inference form, NCHW:
//   y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta
// `bn` holds one vec4 (gamma, beta, mean, var) per channel.

// #include lib/flat_index.wgsl

struct Params {
    channels: u32, plane: u32, eps: f32, _p: u32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> bn: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    if (i >= p.channels * p.plane) {
        return;
    }
    let s = bn[i / p.plane];
    output[i] = (input[i] - s.z) / sqrt(s.w + p.eps) * s.x + s.y;
}
