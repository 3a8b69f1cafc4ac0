// Piece of the register kernels that read A one float at a time and make
// op(B)'s k row themselves (matmul/vec4_b.wgsl reads it, conv/implicit.wgsl
// gathers it): the binding of A, the invocation's rows of A, and the k step
// that multiplies them into `acc`. After matmul/share_subgroup.wgsl or
// matmul/share_none.wgsl: with SHARE_A, lane r of each row of lanes reads
// row r of A and the others take it from its register, as in matmul/vec4.wgsl
// (lavapipe runs every buffer read as a loop over lanes).

@group(0) @binding(1) var<storage, read> a: array<f32>;

// Element i of the split-k scratch buffer, bound as `a` (see split_k_sum).
fn partial(i: u32) -> f32 {
    return a[i];
}

// Where each of the invocation's TM rows of op(A) starts (clamped), and
// op(B)'s k row for its TN columns: module-scope, as `acc` is, so that
// llvmpipe keeps them in registers rather than copying them as arguments.
var<private> a_off: array<u32, TM>;
var<private> bv: array<vec4<f32>, TN4>;

// a_off for the rows from row0, element (i, kk) of op(A) at i·a_row + kk·a_k.
fn set_rows(row0: u32, a_row: u32) {
    for (var r = 0u; r < TM; r++) {
        a_off[r] = min(row0 + r, p.m - 1u) * a_row;
    }
}

// acc += op(A)[rows, kk] ⊗ bv, the rows' elements at a_off[r] + ak.
fn multiply_row(ak: u32, lane: u32) {
    var at: array<f32, TM>;
    if (SHARE_A) {
        let mine = a[a_off[lane] + ak];
        for (var r = 0u; r < TM; r++) {
            at[r] = from_lane_scalar(mine, r);
        }
    } else {
        for (var r = 0u; r < TM; r++) {
            at[r] = a[a_off[r] + ak];
        }
    }
    for (var r = 0u; r < TM; r++) {
        for (var c = 0u; c < TN4; c++) {
            acc[r * TN4 + c] += at[r] * bv[c];
        }
    }
}
