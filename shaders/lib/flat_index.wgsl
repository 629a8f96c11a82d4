// The flat index of an invocation in a 1-D problem spread over a 2-D grid of
// 64-wide workgroups (kernels/mod.rs `grid`): no axis may exceed 65535
// workgroups, so big tensors wrap onto y.

fn flat_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}
