// Dropout and batch normalisation (BatchNorm1d semantics).

struct Params {
    rows: u32,
    cols: u32,
    seed_lo: u32,
    seed_hi: u32,
    step_lo: u32,
    step_hi: u32,
    p: f32,          // dropout probability
    momentum: f32,   // batch norm running-statistics momentum
    eps: f32,        // batch norm epsilon
    scale: f32,      // dropout: 1 / (1 − p), rounded once on the host
}

@group(0) @binding(0) var<uniform> prm: Params;

// ---- dropout: y = x · keep · (1 / (1 − p)), keep drawn from hash(seed, step, i)
// Multiplying by the host's rounded reciprocal, as PyTorch does, rather than
// dividing: WGSL division may be off by 2.5 ulp (NVIDIA's is), a product is
// correctly rounded, so both backends give identical values.
// The same integer hash runs in src/backend/cpu.rs, so both backends drop the
// same elements. Backward applies the same mask to the gradient.
fn mix(x: u32) -> u32 {   // lowbias32 (Chris Wellons): a full-avalanche 32-bit mixer
    var h = x;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

fn keep_element(i: u32) -> bool {
    let key = mix(mix(mix(mix(prm.seed_lo) ^ prm.seed_hi) ^ prm.step_lo) ^ prm.step_hi);
    let u = f32(mix(key ^ i) >> 8u) * (1.0 / 16777216.0);
    return u >= prm.p;
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256)
fn dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if (i < prm.rows * prm.cols) {
        y[i] = select(0.0, x[i] * prm.scale, keep_element(i));
    }
}

// ---- batch norm, training: one invocation per feature column --------------
@group(0) @binding(1) var<storage, read> bn_x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(6) var<storage, read_write> saved: array<f32>;   // [mean | 1/std]
@group(0) @binding(7) var<storage, read_write> bn_y: array<f32>;

@compute @workgroup_size(64)
fn bn_train(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let n = prm.rows;
    let c = prm.cols;
    if (j >= c) {
        return;
    }
    var s = 0.0;
    for (var i = 0u; i < n; i++) {
        s += bn_x[i * c + j];
    }
    let mean = s / f32(n);
    var ss = 0.0;   // two passes: no cancellation from E[x²] − E[x]²
    for (var i = 0u; i < n; i++) {
        let d = bn_x[i * c + j] - mean;
        ss += d * d;
    }
    let inv_std = 1.0 / sqrt(ss / f32(n) + prm.eps);
    saved[j] = mean;
    saved[c + j] = inv_std;
    // As PyTorch: the running variance takes the unbiased estimate.
    running_mean[j] = (1.0 - prm.momentum) * running_mean[j] + prm.momentum * mean;
    running_var[j] = (1.0 - prm.momentum) * running_var[j] + prm.momentum * ss / f32(n - 1u);
    for (var i = 0u; i < n; i++) {
        bn_y[i * c + j] = gamma[j] * (bn_x[i * c + j] - mean) * inv_std + beta[j];
    }
}

// ---- batch norm, evaluation: elementwise with the running statistics ------
@group(0) @binding(1) var<storage, read> ev_x: array<f32>;
@group(0) @binding(2) var<storage, read> ev_gamma: array<f32>;
@group(0) @binding(3) var<storage, read> ev_beta: array<f32>;
@group(0) @binding(4) var<storage, read> ev_mean: array<f32>;
@group(0) @binding(5) var<storage, read> ev_var: array<f32>;
@group(0) @binding(6) var<storage, read_write> ev_y: array<f32>;

@compute @workgroup_size(256)
fn bn_eval(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    let c = prm.cols;
    if (i < prm.rows * c) {
        let j = i % c;
        ev_y[i] = ev_gamma[j] * (ev_x[i] - ev_mean[j]) / sqrt(ev_var[j] + prm.eps) + ev_beta[j];
    }
}

// ---- batch norm, backward (training statistics) ---------------------------
// dβ = Σg, dγ = Σ g·x̂, dx = γ·inv_std/N · (N·g − Σg − x̂·Σ(g·x̂)).
@group(0) @binding(1) var<storage, read> bb_x: array<f32>;
@group(0) @binding(2) var<storage, read> bb_gamma: array<f32>;
@group(0) @binding(3) var<storage, read> bb_saved: array<f32>;
@group(0) @binding(4) var<storage, read> bb_g: array<f32>;
@group(0) @binding(5) var<storage, read_write> bb_dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> bb_dgamma: array<f32>;
@group(0) @binding(7) var<storage, read_write> bb_dbeta: array<f32>;

@compute @workgroup_size(64)
fn bn_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let n = prm.rows;
    let c = prm.cols;
    if (j >= c) {
        return;
    }
    let mean = bb_saved[j];
    let inv_std = bb_saved[c + j];
    var sg = 0.0;
    var sgx = 0.0;
    for (var i = 0u; i < n; i++) {
        let g = bb_g[i * c + j];
        sg += g;
        sgx += g * (bb_x[i * c + j] - mean) * inv_std;
    }
    bb_dgamma[j] = sgx;
    bb_dbeta[j] = sg;
    let k = bb_gamma[j] * inv_std / f32(n);
    for (var i = 0u; i < n; i++) {
        let xhat = (bb_x[i * c + j] - mean) * inv_std;
        bb_dx[i * c + j] = k * (f32(n) * bb_g[i * c + j] - sg - xhat * sgx);
    }
}
