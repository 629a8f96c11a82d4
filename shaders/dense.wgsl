// Fully connected layer: out[o] = bias[o] + sum_i weight[o, i] * input[i].
// One workgroup per output; 64 invocations split the dot product.

struct Params {
    in_features: u32, out_features: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> output: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const RED_N: u32 = 64u;
// #include lib/reduce.wgsl

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let o = wg.x + wg.y * nwg.x;
    var s = 0.0;
    if (o < p.out_features) {
        let row = o * p.in_features;
        for (var i = li; i < p.in_features; i += RED_N) {
            s += weight[row + i] * input[i];
        }
    }
    let total = workgroup_sum(li, s);
    if (li == 0u && o < p.out_features) {
        output[o] = total + bias[o];
    }
}
