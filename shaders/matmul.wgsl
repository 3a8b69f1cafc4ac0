// out = act(op(A)·op(B) + bias), op = transpose when TA / TB.
//
// Register-blocked: each invocation computes TM rows × (4·TN4) columns with
// vec4 accumulators and no workgroup memory. On lavapipe (a CPU) barriers and
// shared-memory staging cost more than the re-reads they save (see
// LAVAPIPE.md); the tile constants below are the knobs to tune per adapter.
//
// Out-of-range rows and columns are clamped to the last valid one instead of
// branched on, so the inner loop has no conditionals; the store is guarded.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    act_param: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

override TA: bool = false;
override TB: bool = false;
override ACT: u32 = 0u;
override HAS_BIAS: bool = false;

const TM: u32 = 4u;       // rows per invocation
const TN4: u32 = 2u;      // vec4 column groups per invocation
const WG_X: u32 = 8u;     // invocations along columns
const WG_Y: u32 = 8u;     // invocations along rows

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * TM;
    let col0 = gid.x * TN4 * 4u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    // Element (i, kk) of op(A) lives at i·a_row + kk·a_k; likewise for B.
    let a_row = select(p.k, 1u, TA);
    let a_k = select(1u, p.m, TA);
    let b_k = select(p.n, 1u, TB);
    let b_col = select(1u, p.k, TB);

    var a_off: array<u32, TM>;
    for (var r = 0u; r < TM; r++) {
        a_off[r] = min(row0 + r, p.m - 1u) * a_row;
    }
    var b_off: array<u32, TN4 * 4u>;
    for (var c = 0u; c < TN4 * 4u; c++) {
        b_off[c] = min(col0 + c, p.n - 1u) * b_col;
    }

    var acc: array<vec4<f32>, TM * TN4>;
    for (var kk = 0u; kk < p.k; kk++) {
        let ak = kk * a_k;
        let bk = kk * b_k;
        var bv: array<vec4<f32>, TN4>;
        for (var c = 0u; c < TN4; c++) {
            bv[c] = vec4<f32>(b[bk + b_off[4u * c]], b[bk + b_off[4u * c + 1u]], b[bk + b_off[4u * c + 2u]], b[bk + b_off[4u * c + 3u]]);
        }
        for (var r = 0u; r < TM; r++) {
            let av = a[a_off[r] + ak];
            for (var c = 0u; c < TN4; c++) {
                acc[r * TN4 + c] = fma(vec4<f32>(av), bv[c], acc[r * TN4 + c]);
            }
        }
    }

    for (var r = 0u; r < TM; r++) {
        let i = row0 + r;
        if (i >= p.m) {
            break;
        }
        for (var c = 0u; c < TN4 * 4u; c++) {
            let j = col0 + c;
            if (j < p.n) {
                var z = acc[r * TN4 + c / 4u][c % 4u];
                if (HAS_BIAS) {
                    z += bias[j];
                }
                out[i * p.n + j] = activate(z, ACT, p.act_param);
            }
        }
    }
}
