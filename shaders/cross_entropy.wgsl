// Softmax cross-entropy of a batch, one workgroup per example:
// loss[e] = log Σ exp(z) − z[label], and the gradient of the batch's mean
// loss, dz = (softmax(z) − onehot(label)) / N.

struct Params {
    classes: u32, batch: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<u32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const RED_N: u32 = 64u;
// #include lib/reduce.wgsl

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = wg.x;
    let row = e * p.classes;
    var m = -3.402823e38;
    for (var k = li; k < p.classes; k += RED_N) {
        m = max(m, logits[row + k]);
    }
    m = workgroup_max(li, m);
    var s = 0.0;
    for (var k = li; k < p.classes; k += RED_N) {
        s += exp(logits[row + k] - m);
    }
    let lse = m + log(workgroup_sum(li, s));
    let y = labels[e];
    for (var k = li; k < p.classes; k += RED_N) {
        let onehot = select(0.0, 1.0, k == y);
        dlogits[row + k] = (exp(logits[row + k] - lse) - onehot) / f32(p.batch);
    }
    if (li == 0u) {
        loss[e] = lse - logits[row + y];
    }
}
