// Sum of squares of a tensor into one slot of `out`: ‖F(x)‖² and ‖x‖² for
// the "how close to the identity" view of each residual block. One
// workgroup strides over the whole tensor.

// `act`: the activations' storage type (f16 on the f16 path, see kernels/source.rs).
alias act = f32;

struct Params {
    len: u32, out_index: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<storage, read> a: array<act>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

const RED_N: u32 = 256u;
// #include lib/reduce.wgsl

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) li: u32) {
    var s = 0.0;
    for (var i = li; i < p.len; i += RED_N) {
        let v = f32(a[i]);
        s += v * v;
    }
    let total = workgroup_sum(li, s);
    if (li == 0u) {
        out[p.out_index] = total;
    }
}
