// Inverted dropout: y = x · keep · (1 / (1 − p)), keep drawn from the
// counter-based generator (common/random.wgsl, placed before this file), so
// the CPU (src/ops/dropout) drops the same elements. Multiplying by the
// host's rounded reciprocal, as PyTorch does, rather than dividing: WGSL
// division may be off by 2.5 ulp (NVIDIA's is), a product is correctly
// rounded, so both backends give identical values. Backward applies the
// same mask to the gradient.

// Mirrors DropoutParams in src/ops/dropout/gpu.rs field for field.
struct Params {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    step_lo: u32,
    step_hi: u32,
    p: f32,      // drop probability
    scale: f32,  // 1 / (1 − p), rounded once on the host
    first: u32,  // global index of element 0 (a replica's shard offset), mod 2³²
}

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if (i < prm.n) {
        let key = draw_key(prm.seed_lo, prm.seed_hi, prm.step_lo, prm.step_hi);
        y[i] = select(0.0, x[i] * prm.scale, uniform01(key, prm.first + i) >= prm.p);
    }
}
