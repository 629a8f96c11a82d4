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

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_index(gid, nwg);
    let plane = p.out_h * p.out_w;
    if (i >= p.channels * plane) {
        return;
    }
    let c = i / plane;
    let oy = (i % plane) / p.out_w;
    let ox = i % p.out_w;
    let y0 = i32(oy * p.stride) - i32(p.pad);
    let x0 = i32(ox * p.stride) - i32(p.pad);
    var m = -3.402823e38;
    for (var ky = 0; ky < i32(p.kernel); ky++) {
        let y = y0 + ky;
        if (y < 0 || y >= i32(p.in_h)) {
            continue;
        }
        for (var kx = 0; kx < i32(p.kernel); kx++) {
            let x = x0 + kx;
            if (x < 0 || x >= i32(p.in_w)) {
                continue;
            }
            m = max(m, f32(input[(c * p.in_h + u32(y)) * p.in_w + u32(x)]));
        }
    }
    output[i] = act(m);
}
