// Mean over each channel's whole map: C×H×W -> C.
// One workgroup per channel; 64 invocations stride over the map and reduce in
// workgroup memory, so large final maps stay cheap.

// `act`: the activations' storage type (f16 on the f16 path, see kernels.rs).
alias act = f32;

struct Params {
    channels: u32, plane: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<storage, read> input: array<act>;
@group(0) @binding(1) var<storage, read_write> output: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let c = wg.x + wg.y * nwg.x;
    var s = 0.0;
    if (c < p.channels) {
        for (var i = li; i < p.plane; i += 64u) {
            s += f32(input[c * p.plane + i]);
        }
    }
    partial[li] = s;
    workgroupBarrier();
    for (var step = 32u; step > 0u; step >>= 1u) {
        if (li < step) {
            partial[li] += partial[li + step];
        }
        workgroupBarrier();
    }
    if (li == 0u && c < p.channels) {
        output[c] = partial[0] / f32(p.plane);
    }
}
