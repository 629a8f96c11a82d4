// Max pooling, NCHW. Padding never wins: taps outside the input are skipped
// (as with -inf padding in PyTorch and ONNX).

// #include lib/flat_index.wgsl

// `act`: the activations' storage type (f16 on the f16 path, see kernels/source.rs).
alias act = f32;

struct Params {
    channels: u32, in_h: u32, in_w: u32, out_h: u32,
    out_w: u32, kernel: u32, stride: u32, pad: u32,
}

@group(0) @binding(0) var<storage, read> input: array<act>;
@group(0) @binding(1) var<storage, read_write> output: array<act>;
@group(0) @binding(2) var<uniform> p: Params;

// window_max():
// #include lib/pool_window.wgsl

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let plane = p.out_h * p.out_w;
    if (i >= p.channels * plane) {
        return;
    }
    let c = i / plane;
    let m = window_max(c, (i % plane) / p.out_w, i % p.out_w).value;
    output[i] = act(m);
}
