// A training batchnorm's per-channel coefficients on batch statistics,
// y = x·scale + shift, written as coef[c] = (scale, shift, mean, 1/√(var + ε))
// from the batch's mean and biased variance over N×H×W: two passes (the
// mean, then Σ(x − mean)², which stays exact in f32 where E[x²] − mean²
// would cancel). The mean and variance also go to moments[c] for the
// running statistics. `bn` holds (γ, β, running mean, running var) per
// channel; the running statistics' own coefficients are the host's (they
// change only when the parameters do). One workgroup per channel.

struct Params {
    channels: u32, plane: u32, batch: u32, eps: f32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> bn: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> coef: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> moments: array<vec2<f32>>;
@group(0) @binding(4) var<uniform> p: Params;

const RED_N: u32 = 256u;
// #include lib/reduce.wgsl

fn at(c: u32, j: u32) -> f32 {
    return input[((j / p.plane) * p.channels + c) * p.plane + j % p.plane];
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let c = wg.x;
    let count = p.batch * p.plane;
    var sum = 0.0;
    for (var j = li; j < count; j += RED_N) {
        sum += at(c, j);
    }
    let mean = workgroup_sum(li, sum) / f32(count);
    var sq = 0.0;
    for (var j = li; j < count; j += RED_N) {
        let d = at(c, j) - mean;
        sq += d * d;
    }
    let variance = workgroup_sum(li, sq) / f32(count);
    if (li == 0u) {
        let s = bn[c];
        let inv = 1.0 / sqrt(variance + p.eps);
        let scale = s.x * inv;
        coef[c] = vec4<f32>(scale, s.y - mean * scale, mean, inv);
        moments[c] = vec2<f32>(mean, variance);
    }
}
