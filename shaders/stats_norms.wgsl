// The last step of the per-block statistics: one workgroup per residual
// block adds the per-channel sums of squares block_stats.wgsl left in
// `stats` into ‖F(x)‖² and ‖x‖², all blocks in one dispatch.

struct Params {
    // Where the (‖F(x)‖², ‖x‖²) pairs go, block by block.
    norms_at: u32, _p0: u32, _p1: u32, _p2: u32,
}

// Per residual block: where its squares start, its channels, its block index.
struct Entry {
    squares_at: u32, channels: u32, block: u32, _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> stats: array<f32>;
@group(0) @binding(1) var<storage, read> entries: array<Entry>;
@group(0) @binding(2) var<uniform> p: Params;

const RED_N: u32 = 64u;
// #include lib/reduce.wgsl

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let e = entries[wg.x];
    var fx = 0.0;
    var x = 0.0;
    for (var i = li; i < e.channels; i += RED_N) {
        fx += stats[e.squares_at + i];
        x += stats[e.squares_at + e.channels + i];
    }
    let fx_total = workgroup_sum(li, fx);
    let x_total = workgroup_sum(li, x);
    if (li == 0u) {
        stats[p.norms_at + 2u * e.block] = fx_total;
        stats[p.norms_at + 2u * e.block + 1u] = x_total;
    }
}
