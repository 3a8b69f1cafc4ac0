// Gaussian noise injection: y = x + σ·z, z a standard normal drawn by
// Box–Muller from the uniforms of counters 2j and 2j + 1 of the
// counter-based generator (common/random.wgsl, placed before this file),
// j the element's global index; src/ops/noise computes the same.

// Mirrors NoiseParams in src/ops/noise/gpu.rs field for field.
struct Params {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    step_lo: u32,
    step_hi: u32,
    sigma: f32,
    first: u32,  // global index of element 0 (a replica's shard offset), mod 2³²
    _pad: u32,
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

const TAU: f32 = 6.283185307179586;

@compute @workgroup_size(256)
fn add_noise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if (i < prm.n) {
        let key = draw_key(prm.seed_lo, prm.seed_hi, prm.step_lo, prm.step_hi);
        let j = prm.first + i;
        let u1 = 1.0 - uniform01(key, j * 2u);
        let u2 = uniform01(key, j * 2u + 1u);
        y[i] = x[i] + prm.sigma * (sqrt(-2.0 * log(u1)) * cos(TAU * u2));
    }
}
