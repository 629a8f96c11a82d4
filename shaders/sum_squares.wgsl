// Sum of squares of a tensor, or of the difference of two, into one slot of
// `out`: ‖F(x)‖² and ‖x‖² for the "how close to the identity" view of each
// residual block. One workgroup strides over the whole tensor.

// `act`: the activations' storage type (f16 on the f16 path, see kernels.rs).
alias act = f32;

struct Params {
    len: u32, diff: u32, out_index: u32, _p: u32,
}

@group(0) @binding(0) var<storage, read> a: array<act>;
@group(0) @binding(1) var<storage, read> b: array<act>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

const N: u32 = 256u;
var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
    var s = 0.0;
    for (var i = li; i < p.len; i += N) {
        var v = f32(a[i]);
        if (p.diff != 0u) {
            v -= f32(b[i]);
        }
        s += v * v;
    }
    red[li] = s;
    workgroupBarrier();
    for (var step = N / 2u; step > 0u; step >>= 1u) {
        if (li < step) {
            red[li] += red[li + step];
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        out[p.out_index] = red[0];
    }
}
