// Fully connected layer: out[o] = bias[o] + sum_i weight[o, i] * input[i],
// for `batch` rows of input (1 in inference, N in training).
// One workgroup per output; 64 invocations split the dot product.

struct Params {
    in_features: u32, out_features: u32, batch: u32, _p0: u32,
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
    let flat = wg.x + wg.y * nwg.x;
    let o = flat % p.out_features;
    let x = (flat / p.out_features) * p.in_features;
    let inside = flat < p.out_features * p.batch;
    var s = 0.0;
    if (inside) {
        let row = o * p.in_features;
        for (var i = li; i < p.in_features; i += RED_N) {
            s += weight[row + i] * input[x + i];
        }
    }
    let total = workgroup_sum(li, s);
    if (li == 0u && inside) {
        output[flat] = total + bias[o];
    }
}
