// Second half of a split-K convolution (conv2d_gemm.wgsl with flag SPLIT):
// sums the `splits` partial results of each output and applies the conv
// epilogue: + bias[co], (copy of F(x) to main_out), + residual, ReLU.

// #include lib/flat_index.wgsl

// `act`: the activations' storage type (f16 on the f16 path, see kernels/source.rs).
alias act = f32;

struct Params {
    len: u32,     // M·N outputs
    plane: u32,   // N = out_h·out_w
    splits: u32,
    flags: u32,
}

// Flags HAS_BIAS, HAS_RESIDUAL, RELU, WRITE_MAIN and conv_epilogue():
// #include lib/conv_epilogue.wgsl

@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read> residual: array<act>;
@group(0) @binding(3) var<storage, read_write> output: array<act>;
@group(0) @binding(4) var<storage, read_write> main_out: array<act>;
@group(0) @binding(5) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = flat_index(gid, nwg);
    if (o >= p.len) {
        return;
    }
    var v = 0.0;
    for (var s = 0u; s < p.splits; s++) {
        v += partial[s * p.len + o];
    }
    output[o] = act(conv_epilogue(v, o / p.plane, o));
}
