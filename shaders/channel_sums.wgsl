// Per channel, the sum over a batch's examples and pixels of an NCHW
// tensor: a conv bias's gradient, Σ dy. One workgroup per channel.

struct Params {
    channels: u32, plane: u32, batch: u32, _p0: u32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const RED_N: u32 = 256u;
// #include lib/reduce.wgsl

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let c = wg.x;
    var s = 0.0;
    for (var j = li; j < p.batch * p.plane; j += RED_N) {
        s += input[((j / p.plane) * p.channels + c) * p.plane + j % p.plane];
    }
    let total = workgroup_sum(li, s);
    if (li == 0u) {
        output[c] = total;
    }
}
