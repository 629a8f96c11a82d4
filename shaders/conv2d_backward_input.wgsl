// The input gradient of a convolution (a transposed convolution), NCHW,
// one example per grid z:
//   dx[ci, iy, ix] += Σ_co Σ_(ky,kx) dy[co, oy, ox] · w[ci, ky, kx, co]
// over the taps of the forward pass that read pixel (iy, ix):
// oy·stride = iy + pad_y − ky (likewise x). Weights in the forward
// kernels' K×M layout ([ci][ky][kx][co]), so a tap's output channels are
// neighbouring floats.
//
// One invocation per input pixel and group of 4 input channels (`co_groups`
// counts input-channel groups here). It adds to dx: a block's input also
// receives the shortcut's gradient, written by another op.

// #include lib/flat_index.wgsl
// #include lib/conv_params.wgsl

@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = flat_index(gid, nwg);
    let plane = p.in_h * p.in_w;
    if (idx >= plane * p.co_groups) {
        return;
    }
    let g = idx / plane;
    let pix = idx % plane;
    let iy = pix / p.in_w;
    let ix = pix % p.in_w;
    let pixels = p.out_h * p.out_w;
    let dy_base = gid.z * p.out_c * pixels;
    let kk = p.k_h * p.k_w;
    let stride = i32(p.stride);

    // The 4 input channels; past the last one, repeat it (the result is discarded).
    let last = p.in_c - 1u;
    let c0 = min(g * 4u, last) * kk;
    let c1 = min(g * 4u + 1u, last) * kk;
    let c2 = min(g * 4u + 2u, last) * kk;
    let c3 = min(g * 4u + 3u, last) * kk;

    var acc = vec4<f32>(0.0);
    for (var ky = 0u; ky < p.k_h; ky++) {
        let ty = i32(iy + p.pad_y) - i32(ky);
        if (ty < 0 || ty % stride != 0 || u32(ty / stride) >= p.out_h) {
            continue;
        }
        let oy = u32(ty / stride);
        for (var kx = 0u; kx < p.k_w; kx++) {
            let tx = i32(ix + p.pad_x) - i32(kx);
            if (tx < 0 || tx % stride != 0 || u32(tx / stride) >= p.out_w) {
                continue;
            }
            let src = dy_base + oy * p.out_w + u32(tx / stride);
            let t = ky * p.k_w + kx;
            let w0 = (c0 + t) * p.out_c;
            let w1 = (c1 + t) * p.out_c;
            let w2 = (c2 + t) * p.out_c;
            let w3 = (c3 + t) * p.out_c;
            for (var co = 0u; co < p.out_c; co++) {
                let d = dy[src + co * pixels];
                acc += d * vec4<f32>(weight[w0 + co], weight[w1 + co], weight[w2 + co], weight[w3 + co]);
            }
        }
    }

    let base = gid.z * p.in_c * plane + pix;
    for (var j = 0u; j < 4u; j++) {
        let ci = g * 4u + j;
        if (ci >= p.in_c) {
            break;
        }
        dx[base + ci * plane] += acc[j];
    }
}
