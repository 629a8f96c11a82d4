// Per-block statistics for the page, one dispatch per block, one workgroup
// per channel of the block's output: the channel's mean and, for a residual
// block, the channel's sums of squares of F(x) (the main path before the
// add) and of x (the shortcut). stats_norms.wgsl then adds the channels'
// sums into ‖F(x)‖² and ‖x‖². Every channel reduces in parallel: a whole
// tensor in one workgroup would leave all but one core of a large GPU idle.

// `act`: the activations' storage type (f16 on the f16 path, see kernels/source.rs).
alias act = f32;

struct Params {
    channels: u32, plane: u32,
    // Where this block's means, and its squares (F(x)'s channels, then x's), go in `stats`.
    means_at: u32, squares_at: u32,
    // 1 for a residual block (main_path and shortcut bound), else 0.
    residual: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<storage, read> block_out: array<act>;
@group(0) @binding(1) var<storage, read> main_path: array<act>;
@group(0) @binding(2) var<storage, read> shortcut: array<act>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

const RED_N: u32 = 64u;
// #include lib/reduce.wgsl

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let c = wg.x + wg.y * nwg.x;
    let live = c < p.channels;
    var sum = 0.0;
    var fx = 0.0;
    var x = 0.0;
    if (live) {
        let base = c * p.plane;
        for (var i = li; i < p.plane; i += RED_N) {
            sum += f32(block_out[base + i]);
            if (p.residual != 0u) {
                let a = f32(main_path[base + i]);
                let b = f32(shortcut[base + i]);
                fx += a * a;
                x += b * b;
            }
        }
    }
    let sum_total = workgroup_sum(li, sum);
    let fx_total = workgroup_sum(li, fx);
    let x_total = workgroup_sum(li, x);
    if (li == 0u && live) {
        stats[p.means_at + c] = sum_total / f32(p.plane);
        if (p.residual != 0u) {
            stats[p.squares_at + c] = fx_total;
            stats[p.squares_at + p.channels + c] = x_total;
        }
    }
}
