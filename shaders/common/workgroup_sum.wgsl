// A tree reduction of one value per invocation across a workgroup of WG
// (the including shader's constant) with the including shader's
// `combine(a, b)`; every invocation gets the result. The pairs are combined
// in a fixed order, so the result is the same on every run. reduce.wgsl,
// loss.wgsl and optim.wgsl share it (src/gpu/shaders.rs).

var<workgroup> scratch: array<f32, WG>;

fn workgroup_reduce(lid: u32, v: f32) -> f32 {
    scratch[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            scratch[lid] = combine(scratch[lid], scratch[lid + s]);
        }
        workgroupBarrier();
    }
    return scratch[0];
}
