// Workgroup-wide reductions over RED_N invocations: the including shader
// declares `const RED_N: u32` (its workgroup size) and calls these from
// uniform control flow, every invocation with its own value.

var<workgroup> red: array<f32, RED_N>;

fn workgroup_sum(li: u32, v: f32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var step = RED_N / 2u; step > 0u; step >>= 1u) {
        if (li < step) {
            red[li] += red[li + step];
        }
        workgroupBarrier();
    }
    let total = red[0];
    // Everyone has read red[0] before the next reduction overwrites it.
    workgroupBarrier();
    return total;
}

fn workgroup_max(li: u32, v: f32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var step = RED_N / 2u; step > 0u; step >>= 1u) {
        if (li < step) {
            red[li] = max(red[li], red[li + step]);
        }
        workgroupBarrier();
    }
    let m = red[0];
    workgroupBarrier();
    return m;
}
