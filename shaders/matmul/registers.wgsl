// The scalar matmul kernel: any shape (see matmul/common.wgsl), after
// matmul/operands_scalar.wgsl.

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * TM;
    let col0 = gid.x * TN;
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
    var b_off: array<u32, TN>;
    for (var c = 0u; c < TN; c++) {
        b_off[c] = min(col0 + c, p.n - 1u) * b_col;
    }

    let ks = k_range(gid.z);
    for (var kk = ks.x; kk < ks.y; kk++) {
        let ak = kk * a_k;
        let bk = kk * b_k;
        var bv: array<vec4<f32>, TN4>;
        for (var c = 0u; c < TN4; c++) {
            bv[c] = vec4<f32>(b[bk + b_off[4u * c]], b[bk + b_off[4u * c + 1u]], b[bk + b_off[4u * c + 2u]], b[bk + b_off[4u * c + 3u]]);
        }
        for (var r = 0u; r < TM; r++) {
            let av = a[a_off[r] + ak];
            for (var c = 0u; c < TN4; c++) {
                acc[r * TN4 + c] += av * bv[c];
            }
        }
    }
    store_tile(gid.z, row0, col0);
}
