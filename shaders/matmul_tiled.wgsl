// The workgroup-memory matmul kernel (see matmul_common.wgsl), for real GPUs:
// each workgroup stages BK-deep slices of its rows of op(A) and columns of
// op(B) in workgroup memory, so every element is read from the buffer once
// per workgroup instead of once per invocation. Any shape. On lavapipe the
// barriers cost more than the reads they save (LAVAPIPE.md); there the
// register kernels are used unless asked otherwise.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

const BK: u32 = 16u;             // k depth of one staged slice
const BM: u32 = TM * WG_Y;       // rows per workgroup
const BN: u32 = TN * WG_X;       // columns per workgroup
const THREADS: u32 = WG_X * WG_Y;

// a_tile[kk·BM + r] = op(A)[row, k0 + kk]; b_tile[kk·BN/4 + c4] = op(B)[k0 + kk, 4 columns].
var<workgroup> a_tile: array<f32, BK * BM>;
var<workgroup> b_tile: array<vec4<f32>, BK * BN / 4u>;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    // No early return: every invocation must reach the barriers.
    let wrow = wid.y * BM;
    let wcol = wid.x * BN;
    let a_row = select(p.k, 1u, TA);
    let a_k = select(1u, p.m, TA);
    let b_k = select(p.n, 1u, TB);
    let b_col = select(1u, p.k, TB);

    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // Consecutive invocations take consecutive addresses: along k for A
        // and Bᵀ, along rows for Aᵀ, along columns for B. Past the edges the
        // index is clamped and the value replaced by 0 beyond k.
        for (var e = 0u; e < BK * BM / THREADS; e++) {
            let idx = e * THREADS + li;
            let r = select(idx / BK, idx % BM, TA);
            let kk = select(idx % BK, idx / BM, TA);
            let k = k0 + kk;
            let v = a[min(wrow + r, p.m - 1u) * a_row + min(k, p.k - 1u) * a_k];
            a_tile[kk * BM + r] = select(0.0, v, k < p.k);
        }
        for (var e = 0u; e < BK * BN / THREADS; e++) {
            let idx = e * THREADS + li;
            let c = select(idx % BN, idx / BK, TB);
            let kk = select(idx / BN, idx % BK, TB);
            let k = k0 + kk;
            let v = b[min(k, p.k - 1u) * b_k + min(wcol + c, p.n - 1u) * b_col];
            b_tile[kk * (BN / 4u) + c / 4u][c % 4u] = select(0.0, v, k < p.k);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var bv: array<vec4<f32>, TN4>;
            for (var c = 0u; c < TN4; c++) {
                bv[c] = b_tile[kk * (BN / 4u) + lid.x * TN4 + c];
            }
            for (var r = 0u; r < TM; r++) {
                let av = a_tile[kk * BM + lid.y * TM + r];
                for (var c = 0u; c < TN4; c++) {
                    acc[r * TN4 + c] += av * bv[c];
                }
            }
        }
        workgroupBarrier();
    }
    store_tile(wrow + lid.y * TM, wcol + lid.x * TN);
}
