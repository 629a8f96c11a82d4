// Direct 2-D convolution, NCHW, with an optional fused epilogue.
//
// One invocation computes one output pixel for a group of 4 output channels:
// each input value is loaded once and multiplied into 4 accumulators, and
// neighbouring invocations share the same weights (a broadcast load).
// Weights are stored K×M: [ci][ky][kx][co], output channels contiguous, so
// the 4 channels of an invocation are 4 neighbouring floats; the
// implicit-GEMM kernel reads the same layout, so the planner can pick either
// kernel per layer and input size.
//
// A batch of examples (training) runs on the grid's z axis, one example per
// z, each an NCHW tensor after the previous one; inference runs z = 1.
//
// Epilogue (flags): + bias[co], (a copy of F(x) to main_out), + residual[o],
// then ReLU. Inspect mode uses none of it (bias only when the source conv has
// one); fast mode folds batchnorm into weights + bias and fuses the rest.

// #include lib/flat_index.wgsl

// Storage types: `act` for activations, `wt` for weights. The f16 path
// (kernels/source.rs, Precision::F16) compiles this file with both set to f16 and
// `enable f16;`; arithmetic stays f32 either way.
alias act = f32;
alias wt = f32;
// The input: `act`, or f32 when it is the network's input on the f16 path.
alias in_t = act;

// #include lib/conv_params.wgsl

// Flags HAS_BIAS, HAS_RESIDUAL, RELU, WRITE_MAIN and conv_epilogue():
// #include lib/conv_epilogue.wgsl

@group(0) @binding(0) var<storage, read> input: array<in_t>;
@group(0) @binding(1) var<storage, read> weight: array<wt>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read> residual: array<act>;
@group(0) @binding(4) var<storage, read_write> output: array<act>;
// F(x) before the residual add, for the ‖F(x)‖ statistic (flag WRITE_MAIN).
@group(0) @binding(5) var<storage, read_write> main_out: array<act>;
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    // 2-D grid so large maps stay under the 65535-workgroups-per-axis limit.
    let idx = flat_index(gid, nwg);
    let pixels = p.out_h * p.out_w;
    if (idx >= pixels * p.co_groups) {
        return;
    }
    let g = idx / pixels;
    let pix = idx % pixels;
    let oy = pix / p.out_w;
    let ox = pix % p.out_w;
    let iy0 = i32(oy * p.stride) - i32(p.pad_y);
    let ix0 = i32(ox * p.stride) - i32(p.pad_x);
    let kk = p.k_h * p.k_w;
    let plane = p.in_h * p.in_w;
    let in_base = gid.z * p.in_c * plane;
    let out_base = gid.z * p.out_c * pixels;

    // Clip the kernel window to the input once, instead of testing every tap.
    let ky0 = u32(max(-iy0, 0));
    let ky1 = u32(clamp(i32(p.in_h) - iy0, 0, i32(p.k_h)));
    let kx0 = u32(max(-ix0, 0));
    let kx1 = u32(clamp(i32(p.in_w) - ix0, 0, i32(p.k_w)));

    // The 4 output channels; past the last one, repeat it (the result is discarded).
    let last = p.out_c - 1u;
    let c0 = min(g * 4u, last);
    let c1 = min(g * 4u + 1u, last);
    let c2 = min(g * 4u + 2u, last);
    let c3 = min(g * 4u + 3u, last);

    var acc = vec4<f32>(0.0);
    for (var ci = 0u; ci < p.in_c; ci++) {
        let ibase = in_base + ci * plane;
        for (var ky = ky0; ky < ky1; ky++) {
            let row = ibase + u32(iy0 + i32(ky)) * p.in_w;
            for (var kx = kx0; kx < kx1; kx++) {
                let x = f32(input[row + u32(ix0 + i32(kx))]);
                let w = (ci * kk + ky * p.k_w + kx) * p.out_c;
                acc += x * vec4<f32>(f32(weight[w + c0]), f32(weight[w + c1]), f32(weight[w + c2]), f32(weight[w + c3]));
            }
        }
    }

    for (var j = 0u; j < 4u; j++) {
        let co = g * 4u + j;
        if (co >= p.out_c) {
            break;
        }
        let o = out_base + co * pixels + pix;
        output[o] = act(conv_epilogue(acc[j], co, o));
    }
}
