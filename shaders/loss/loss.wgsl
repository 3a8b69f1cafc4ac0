// Losses, summed over columns and averaged over rows, with their gradients.
// One workgroup: each invocation takes rows lid, lid + WG, …, writes their
// gradient rows and sums their losses; a tree reduction gives the mean.
// LOSS is one of the LOSS_* constants generated from src/ops/loss/mod.rs.

// Mirrors LossParams in src/ops/loss/gpu.rs field for field.
struct Params {
    rows: u32,
    cols: u32,
    smoothing: f32,   // label smoothing ε; 0 leaves the targets exactly as they are
    beta: f32,        // the RBF loss's β (0 for the others)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> targets: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;

override LOSS: u32;
override HAS_LABELS: bool = true;
const WG: u32 = 256u;

// The batch's loss is summed by workgroup_reduce (common/workgroup_sum.wgsl).
fn combine(a: f32, b: f32) -> f32 {
    return a + b;
}

// Target of (row i, column j): one-hot of the label, or the dense target,
// mixed with the uniform distribution by the label smoothing ε.
fn target_at(i: u32, j: u32) -> f32 {
    var t: f32;
    if (HAS_LABELS) {
        t = select(0.0, 1.0, labels[i] == j);
    } else {
        t = targets[i * p.cols + j];
    }
    return (1.0 - p.smoothing) * t + p.smoothing / f32(p.cols);
}

// Writes the gradient of row i (scaled by inv_n) and returns its loss.
fn row_loss(i: u32, inv_n: f32) -> f32 {
    let base = i * p.cols;
    var l = 0.0;
    switch LOSS {
        case LOSS_SOFTMAX_CROSS_ENTROPY, LOSS_SMOOTHED_CROSS_ENTROPY: {   // stable log-sum-exp
            var m = pred[base];
            for (var j = 1u; j < p.cols; j++) {
                m = max(m, pred[base + j]);
            }
            var s = 0.0;
            for (var j = 0u; j < p.cols; j++) {
                s += exp(pred[base + j] - m);
            }
            let lse = m + log(s);
            var t_sum = 0.0;
            var tz = 0.0;
            for (var j = 0u; j < p.cols; j++) {
                let t = target_at(i, j);
                t_sum += t;
                tz += t * pred[base + j];
            }
            l = lse * t_sum - tz;
            for (var j = 0u; j < p.cols; j++) {
                grad[base + j] = (exp(pred[base + j] - lse) * t_sum - target_at(i, j)) * inv_n;
            }
        }
        case LOSS_SQUARED_ERROR: {   // ½‖y − a‖²
            for (var j = 0u; j < p.cols; j++) {
                let d = pred[base + j] - target_at(i, j);
                l += 0.5 * d * d;
                grad[base + j] = d * inv_n;
            }
        }
        case LOSS_RBF_EUCLIDEAN: {   // Σ 1 − exp(−β(y − a)²)
            for (var j = 0u; j < p.cols; j++) {
                let d = pred[base + j] - target_at(i, j);
                let e = exp(-p.beta * d * d);
                l += 1.0 - e;
                grad[base + j] = 2.0 * p.beta * d * e * inv_n;
            }
        }
        case LOSS_L1: {   // ‖y − a‖₁
            for (var j = 0u; j < p.cols; j++) {
                let d = pred[base + j] - target_at(i, j);
                l += abs(d);
                grad[base + j] = sign(d) * inv_n;
            }
        }
        case LOSS_HINGE, LOSS_SQUARED_HINGE: {   // margin 1
            let y = labels[i];
            let zy = pred[base + y];
            var gy = 0.0;
            for (var j = 0u; j < p.cols; j++) {
                var g = 0.0;
                let margin = pred[base + j] - zy + 1.0;
                if (j != y && margin > 0.0) {
                    if (LOSS == LOSS_SQUARED_HINGE) {
                        l += margin * margin;
                        g = 2.0 * margin * inv_n;
                    } else {
                        l += margin;
                        g = inv_n;
                    }
                }
                gy -= g;
                grad[base + j] = g;
            }
            grad[base + y] = gy;
        }
        // WGSL's required default shares the last loss's case; LOSS is never
        // another code (it comes from Loss::code).
        case LOSS_BINARY_CROSS_ENTROPY, default: {   // sigmoid + BCE on logits, stable form
            for (var j = 0u; j < p.cols; j++) {
                let z = pred[base + j];
                let t = target_at(i, j);
                l += max(z, 0.0) - z * t + log(1.0 + exp(-abs(z)));
                grad[base + j] = (sigmoid(z) - t) * inv_n;
            }
        }
    }
    return l;
}

// Each row's loss (not averaged), one invocation per row; `grad` is scratch.
@compute @workgroup_size(WG)
fn per_row(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i < p.rows) {
        loss[i] = row_loss(i, 1.0);
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
    let inv_n = 1.0 / f32(p.rows);
    var total = 0.0;
    for (var i = lid.x; i < p.rows; i += WG) {
        total += row_loss(i, inv_n);
    }
    let sum = workgroup_reduce(lid.x, total);
    if (lid.x == 0u) {
        loss[0] = sum * inv_n;
    }
}
