// The dense layer's backward over a batch of N rows, one invocation per
// output value: the first classes·in write dW = dYᵀ·X (and, at column 0,
// db = Σ_e dY); the next N·in add dX = dY·W (WRITE_DX).

// #include lib/flat_index.wgsl

struct Params {
    in_features: u32, out_features: u32, batch: u32, write_dx: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dweight: array<f32>;
@group(0) @binding(4) var<storage, read_write> dbias: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let n_in = p.in_features;
    let weights = p.out_features * n_in;
    if (i < weights) {
        let o = i / n_in;
        let j = i % n_in;
        var g = 0.0;
        var b = 0.0;
        for (var e = 0u; e < p.batch; e++) {
            let d = dy[e * p.out_features + o];
            g += d * x[e * n_in + j];
            b += d;
        }
        dweight[i] = g;
        if (j == 0u) {
            dbias[o] = b;
        }
    } else if (p.write_dx != 0u && i < weights + p.batch * n_in) {
        let r = i - weights;
        let e = r / n_in;
        let j = r % n_in;
        var g = 0.0;
        for (var o = 0u; o < p.out_features; o++) {
            g += dy[e * p.out_features + o] * weight[o * n_in + j];
        }
        dx[r] += g;
    }
}
