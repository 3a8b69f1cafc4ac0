// out = σ(x) and gin = gout ⊙ σ'(z) over flat arrays, with σ chosen by the
// ACT override (the generated dispatch before this file). Grids may spill
// into y for large arrays (see Context::linear_groups).

// Mirrors ActivationParams in src/ops/activation/gpu.rs.
struct Params {
    n: u32,
    param: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

override ACT: u32 = 0u;
const WG: u32 = 256u;

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn act_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WG;
    if (i < p.n) {
        y[i] = activate(x[i], ACT, p.param);
    }
}

@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> gout: array<f32>;
@group(0) @binding(3) var<storage, read_write> gin: array<f32>;

@compute @workgroup_size(WG)
fn act_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WG;
    if (i < p.n) {
        gin[i] = gout[i] * activate_grad(z[i], ACT, p.param);
    }
}
