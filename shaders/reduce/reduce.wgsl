// Reductions. Every order of summation is fixed by the sizes alone, so the
// results are deterministic from run to run.

// Mirrors ReduceParams in src/ops/reduce/gpu.rs field for field.
struct Params {
    rows: u32,
    cols: u32,
    n: u32,        // elements to reduce (partial, final); k (count_top_k)
    divisor: f32,  // final: n for a mean, 1 otherwise
}

@group(0) @binding(0) var<uniform> p: Params;

override MAX: bool = false;   // max, else sum (a mean divides the sum)
override ABS: bool = false;   // of |x| (the ℓ∞ and ℓ1 norms)
const WG: u32 = 256u;

// The bits of -inf, read at run time: a constant expression may not
// evaluate to an infinity, which Tint (the browsers' compiler) enforces.
var<private> NEG_INF_BITS: u32 = 0xff800000u;

fn identity() -> f32 {
    return select(0.0, bitcast<f32>(NEG_INF_BITS), MAX);   // -inf for max
}

fn combine(a: f32, b: f32) -> f32 {
    if (MAX) {
        return max(a, b);
    }
    return a + b;
}

// workgroup_reduce (common/workgroup_sum.wgsl, before this file) combines
// with `combine` above; its `scratch` also serves sum_rows below.

// ---- sum_rows: out[j] = Σ_i x[i, j] --------------------------------------
// A workgroup takes SUM_COLS adjacent columns (coalesced reads) and splits
// the rows among SUM_LANES invocations per column, so that a GPU has enough
// independent sums in flight for a batch of a few hundred rows; the lanes'
// partial sums are then added in lane order.
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const SUM_COLS: u32 = 32u;
const SUM_LANES: u32 = WG / SUM_COLS;

@compute @workgroup_size(SUM_COLS, SUM_LANES)
fn sum_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = wid.x * SUM_COLS + lid.x;
    var s = 0.0;
    if (j < p.cols) {
        for (var i = lid.y; i < p.rows; i += SUM_LANES) {
            s += x[i * p.cols + j];
        }
    }
    scratch[lid.y * SUM_COLS + lid.x] = s;
    workgroupBarrier();
    if (lid.y == 0u && j < p.cols) {
        var total = scratch[lid.x];
        for (var lane = 1u; lane < SUM_LANES; lane++) {
            total += scratch[lane * SUM_COLS + lid.x];
        }
        out[j] = total;
    }
}

// ---- sum_cols: out[i] = Σ_j x[i, j] -------------------------------------
// One workgroup per row (rows spill into y past 65,535), its invocations
// striding along the row, then the workgroup's tree (common/workgroup_sum).
@compute @workgroup_size(WG)
fn sum_cols(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = wid.x + wid.y * groups.x;
    if (i >= p.rows) {
        return;
    }
    var s = 0.0;
    for (var j = lid.x; j < p.cols; j += WG) {
        s += x[i * p.cols + j];
    }
    let r = workgroup_reduce(lid.x, s);
    if (lid.x == 0u) {
        out[i] = r;
    }
}

// ---- partial: out[g] = reduce of x[g·WG + t + s·stride] ------------------
@compute @workgroup_size(WG)
fn partial(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    var v = identity();
    let stride = groups.x * WG;
    for (var i = wid.x * WG + lid.x; i < p.n; i += stride) {
        v = combine(v, select(x[i], abs(x[i]), ABS));
    }
    let r = workgroup_reduce(lid.x, v);
    if (lid.x == 0u) {
        out[wid.x] = r;
    }
}

// ---- final: out[0] = reduce(x[0..n]) / divisor, one workgroup ------------
@compute @workgroup_size(WG)
fn final_(@builtin(local_invocation_id) lid: vec3<u32>) {
    var v = identity();
    for (var i = lid.x; i < p.n; i += WG) {
        v = combine(v, x[i]);
    }
    let r = workgroup_reduce(lid.x, v);
    if (lid.x == 0u) {
        out[0] = r / p.divisor;
    }
}

// ---- count_top_k: correct[0] += #rows whose label is among the k largest ---
// A row counts when fewer than k scores exceed the label's score. Reads
// `x` as the predictions and the labels through their own binding.
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> correct: array<f32>;
var<workgroup> hits: array<u32, WG>;

@compute @workgroup_size(WG)
fn count_top_k(@builtin(local_invocation_id) lid: vec3<u32>) {
    let k = p.n;
    var count = 0u;
    for (var i = lid.x; i < p.rows; i += WG) {
        let score = x[i * p.cols + labels[i]];
        var above = 0u;
        for (var j = 0u; j < p.cols; j++) {
            above += select(0u, 1u, x[i * p.cols + j] > score);
        }
        count += select(0u, 1u, above < k);
    }
    hits[lid.x] = count;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid.x < s) {
            hits[lid.x] += hits[lid.x + s];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        correct[0] += f32(hits[0]);
    }
}
