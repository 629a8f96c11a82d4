// Mean over each channel's whole map: C×H×W -> C.
// One workgroup per channel; 64 invocations stride over the map and reduce in
// workgroup memory, so large final maps stay cheap.

// `act`: the activations' storage type (f16 on the f16 path, see kernels/source.rs).
alias act = f32;

struct Params {
    channels: u32, plane: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<storage, read> input: array<act>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const RED_N: u32 = 64u;
// #include lib/reduce.wgsl

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let c = wg.x + wg.y * nwg.x;
    var s = 0.0;
    if (c < p.channels) {
        for (var i = li; i < p.plane; i += RED_N) {
            s += f32(input[c * p.plane + i]);
        }
    }
    let total = workgroup_sum(li, s);
    if (li == 0u && c < p.channels) {
        output[c] = total / f32(p.plane);
    }
}
