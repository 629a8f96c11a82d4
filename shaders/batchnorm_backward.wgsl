// A training batchnorm's backward pass, one workgroup per channel. With
// x̂ = (x − mean)·inv (coef from batchnorm_stats.wgsl) and M = N×H×W:
//   dγ = Σ dy·x̂,  dβ = Σ dy  (to dparams[c] and dparams[channels + c]);
//   dx += γ·inv·dy                              (running statistics), or
//   dx += γ·inv·(dy − (Σ dy + x̂·Σ dy·x̂) / M)      (BATCH: the batch's, whose
//                                                 mean and variance depend on x).

struct Params {
    channels: u32, plane: u32, batch: u32, flags: u32,
}

const BATCH: u32 = 1u;
const WRITE_DX: u32 = 2u;

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> coef: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> dparams: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;

const RED_N: u32 = 256u;
// #include lib/reduce.wgsl

fn index(c: u32, j: u32) -> u32 {
    return ((j / p.plane) * p.channels + c) * p.plane + j % p.plane;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let c = wg.x;
    let k = coef[c];
    let count = p.batch * p.plane;
    var sdy = 0.0;
    var sdyx = 0.0;
    for (var j = li; j < count; j += RED_N) {
        let i = index(c, j);
        sdy += dy[i];
        sdyx += dy[i] * (x[i] - k.z) * k.w;
    }
    sdy = workgroup_sum(li, sdy);
    sdyx = workgroup_sum(li, sdyx);
    if (li == 0u) {
        dparams[c] = sdyx;
        dparams[p.channels + c] = sdy;
    }
    if ((p.flags & WRITE_DX) == 0u) {
        return;
    }
    var mdy = 0.0;
    var mdyx = 0.0;
    if ((p.flags & BATCH) != 0u) {
        mdy = sdy / f32(count);
        mdyx = sdyx / f32(count);
    }
    for (var j = li; j < count; j += RED_N) {
        let i = index(c, j);
        dx[i] += k.x * (dy[i] - mdy - (x[i] - k.z) * k.w * mdyx);
    }
}
