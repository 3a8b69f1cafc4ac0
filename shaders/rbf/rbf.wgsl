// RBF units (src/ops/rbf): h = exp(−β_j ‖x_n − c_j‖²) and its gradients,
// one invocation per output element, looping over the dispatch's span
// when there are more elements than invocations.

// Mirrors RbfParams in src/ops/rbf/gpu.rs field for field.
struct Params {
    n: u32,   // rows of x
    k: u32,   // features
    m: u32,   // units
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> c: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
const WG: u32 = 256u;

// ---- forward: h_out[n, j], d_out[n, j] -----------------------------------
@group(0) @binding(4) var<storage, read_write> h_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> d_out: array<f32>;

@compute @workgroup_size(WG)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var idx = gid.x; idx < p.n * p.m; idx += groups.x * WG) {
        let row = idx / p.m;
        let j = idx % p.m;
        var d = 0.0;
        for (var kk = 0u; kk < p.k; kk++) {
            let diff = x[row * p.k + kk] - c[j * p.k + kk];
            d += diff * diff;
        }
        d_out[idx] = d;
        h_out[idx] = exp(-beta[j] * d);
    }
}

// ---- backward: read the kept distances and the output gradient g ---------
@group(0) @binding(4) var<storage, read> dist: array<f32>;
@group(0) @binding(5) var<storage, read> g: array<f32>;
@group(0) @binding(6) var<storage, read_write> res: array<f32>;

// h at element i, recomputed from the kept distance as forward made it.
fn h(i: u32, j: u32) -> f32 {
    return exp(-beta[j] * dist[i]);
}

// a = −2β_j·g·h at (row, j).
fn a(row: u32, j: u32) -> f32 {
    let i = row * p.m + j;
    return -2.0 * beta[j] * g[i] * h(i, j);
}

// res[n, k] = Σ_j a(n, j)·(x[n, k] − c[j, k])
@compute @workgroup_size(WG)
fn grad_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var idx = gid.x; idx < p.n * p.k; idx += groups.x * WG) {
        let row = idx / p.k;
        let kk = idx % p.k;
        var s = 0.0;
        for (var j = 0u; j < p.m; j++) {
            s += a(row, j) * (x[idx] - c[j * p.k + kk]);
        }
        res[idx] = s;
    }
}

// res[j, k] = −Σ_n a(n, j)·(x[n, k] − c[j, k])
@compute @workgroup_size(WG)
fn grad_centres(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var idx = gid.x; idx < p.m * p.k; idx += groups.x * WG) {
        let j = idx / p.k;
        let kk = idx % p.k;
        var s = 0.0;
        for (var row = 0u; row < p.n; row++) {
            s += a(row, j) * (x[row * p.k + kk] - c[idx]);
        }
        res[idx] = -s;
    }
}

// res[j] = −Σ_n g·h·d
@compute @workgroup_size(WG)
fn grad_beta(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    for (var j = gid.x; j < p.m; j += groups.x * WG) {
        var s = 0.0;
        for (var row = 0u; row < p.n; row++) {
            let i = row * p.m + j;
            s += g[i] * h(i, j) * dist[i];
        }
        res[j] = -s;
    }
}
