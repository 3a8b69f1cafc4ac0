// Elementwise kernels over flat arrays. Grids may spill into y for large
// arrays (see Context::linear_groups), hence the 2-D linear index.

// Mirrors ElementwiseParams in src/ops/elementwise/gpu.rs field for field.
struct Params {
    n: u32,      // elements
    alpha: f32,  // fill value, scale factor, axpy alpha
}

@group(0) @binding(0) var<uniform> p: Params;

const WG: u32 = 256u;

fn linear(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WG;
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

// ---- axpy: y += alpha · x ------------------------------------------------
@compute @workgroup_size(WG)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear(gid, groups);
    if (i < p.n) {
        y[i] = fma(p.alpha, x[i], y[i]);
    }
}

// ---- fill and scale, in place ----------------------------------------------
@group(0) @binding(1) var<storage, read_write> t: array<f32>;

@compute @workgroup_size(WG)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear(gid, groups);
    if (i < p.n) {
        t[i] = p.alpha;
    }
}

@compute @workgroup_size(WG)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = linear(gid, groups);
    if (i < p.n) {
        t[i] = p.alpha * t[i];
    }
}
