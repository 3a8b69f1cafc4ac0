// The register matmul kernel for op(B) = B with n % 4 == 0 and any k or m
// (see matmul/common.wgsl): A is read one float at a time, as in
// matmul/registers.wgsl, B four columns at a time, as in matmul/vec4.wgsl.
// It runs the lowered convolution's forward W·cols and input gradient Wᵀ·δ
// when the taps per group are not a multiple of 4 (5×5 over one channel:
// 25), where matmul/vec4.wgsl cannot: 2-3× the scalar kernel there on
// lavapipe, whose cost is the eight scalar loads of B per k. After
// matmul/rows_scalar.wgsl (A, and the k step).

@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row0 = gid.y * TM;
    let col0 = gid.x * TN;
    // Lanes sharing A stay while their row of lanes (their subgroup) does.
    if (row0 >= p.m || (!SHARE_A && col0 >= p.n)) {
        return;
    }
    let lane = li % WG_X;
    // Element (i, kk) of op(A) lives at i·a_row + kk·a_k.
    set_rows(row0, select(p.k, 1u, TA));
    let a_k = select(1u, p.m, TA);
    let n4 = p.n / 4u;
    var b_off: array<u32, TN4>;
    for (var c = 0u; c < TN4; c++) {
        b_off[c] = min(col0 / 4u + c, n4 - 1u);
    }

    let ks = k_range(gid.z);
    for (var kk = ks.x; kk < ks.y; kk++) {
        for (var c = 0u; c < TN4; c++) {
            bv[c] = b[kk * n4 + b_off[c]];
        }
        multiply_row(kk * a_k, lane);
    }
    store_tile(gid.z, row0, col0);
}
