// Softmax over one vector of logits, in a single workgroup:
// max-subtracted for stability, reductions in workgroup memory.

struct Params {
    len: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const RED_N: u32 = 256u;
// #include lib/reduce.wgsl

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
    var m = -3.402823e38;
    for (var i = li; i < p.len; i += RED_N) {
        m = max(m, input[i]);
    }
    let mx = workgroup_max(li, m);
    var s = 0.0;
    for (var i = li; i < p.len; i += RED_N) {
        s += exp(input[i] - mx);
    }
    let total = workgroup_sum(li, s);
    for (var i = li; i < p.len; i += RED_N) {
        output[i] = exp(input[i] - mx) / total;
    }
}
