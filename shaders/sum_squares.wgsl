// Σ v² of a tensor, in slices of `chunk` values: workgroup w writes its
// slice's sum to output[at + w], and the host adds the slices up in f64
// (a gradient's norm at a block's input).

struct Params {
    len: u32, chunk: u32, at: u32, _p0: u32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const RED_N: u32 = 256u;
// #include lib/reduce.wgsl

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let begin = wg.x * p.chunk;
    let end = min(begin + p.chunk, p.len);
    var s = 0.0;
    for (var i = begin + li; i < end; i += RED_N) {
        s += input[i] * input[i];
    }
    let total = workgroup_sum(li, s);
    if (li == 0u) {
        output[p.at + wg.x] = total;
    }
}
