// Softmax over one vector of logits, in a single workgroup:
// max-subtracted for stability, reductions in workgroup memory.

struct Params {
    len: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const N: u32 = 256u;
var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
    var m = -3.402823e38;
    for (var i = li; i < p.len; i += N) {
        m = max(m, input[i]);
    }
    red[li] = m;
    workgroupBarrier();
    for (var step = N / 2u; step > 0u; step >>= 1u) {
        if (li < step) {
            red[li] = max(red[li], red[li + step]);
        }
        workgroupBarrier();
    }
    let mx = red[0];
    workgroupBarrier();

    var s = 0.0;
    for (var i = li; i < p.len; i += N) {
        s += exp(input[i] - mx);
    }
    red[li] = s;
    workgroupBarrier();
    for (var step = N / 2u; step > 0u; step >>= 1u) {
        if (li < step) {
            red[li] += red[li + step];
        }
        workgroupBarrier();
    }
    let total = red[0];
    for (var i = li; i < p.len; i += N) {
        output[i] = exp(input[i] - mx) / total;
    }
}
