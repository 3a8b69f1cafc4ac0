// Batch normalisation (BatchNorm1d semantics): training with the batch's
// statistics, evaluation with the running ones, and the backward pass.

// Mirrors BatchNormParams in src/ops/batch_norm/gpu.rs field for field.
struct Params {
    rows: u32,
    cols: u32,
    momentum: f32,   // running-statistics momentum
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

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
    let n = p.rows;
    let c = p.cols;
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
    let inv_std = 1.0 / sqrt(ss / f32(n) + p.eps);
    saved[j] = mean;
    saved[c + j] = inv_std;
    // As PyTorch: the running variance takes the unbiased estimate.
    running_mean[j] = (1.0 - p.momentum) * running_mean[j] + p.momentum * mean;
    running_var[j] = (1.0 - p.momentum) * running_var[j] + p.momentum * ss / f32(n - 1u);
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
    let c = p.cols;
    if (i < p.rows * c) {
        let j = i % c;
        ev_y[i] = ev_gamma[j] * (ev_x[i] - ev_mean[j]) / sqrt(ev_var[j] + p.eps) + ev_beta[j];
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
    let n = p.rows;
    let c = p.cols;
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
