// A max-pooling window's first maximum, in the scan order of the forward
// pass (rows, then columns; taps outside the input skipped, as with -inf
// padding): its value for maxpool.wgsl, its place for maxpool_backward.wgsl,
// which sends the window's gradient there. The including shader declares
// `input` and a uniform `p` with PoolParams' fields (kernels/pool.rs).

struct WindowMax {
    value: f32,
    // y·in_w + x within the plane; 0xffffffff for a window with no tap inside.
    at: u32,
}

fn window_max(c: u32, oy: u32, ox: u32) -> WindowMax {
    let y0 = i32(oy * p.stride) - i32(p.pad);
    let x0 = i32(ox * p.stride) - i32(p.pad);
    var best = WindowMax(-3.402823e38, 0xffffffffu);
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
            let j = u32(y) * p.in_w + u32(x);
            let v = f32(input[c * p.in_h * p.in_w + j]);
            if (best.at == 0xffffffffu || v > best.value) {
                best = WindowMax(v, j);
            }
        }
    }
    return best;
}
