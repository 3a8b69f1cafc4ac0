// Load piece of matmul/tiled.wgsl for any shape: op(A) and op(B) are read
// one float at a time (after matmul/operands_scalar.wgsl). Defines fetch()
// (the next slice into registers) and stage() (registers into workgroup
// memory).

const A_LOADS: u32 = BK * BM / THREADS; // elements of A each invocation stages per slice
const B_LOADS: u32 = BK * BN / THREADS;
const_assert BK * BM % THREADS == 0u && BK * BN % THREADS == 0u;
var<private> a_next: array<f32, A_LOADS>;
var<private> b_next: array<f32, B_LOADS>;

// Where staged element e of this invocation comes from: its row (A) or
// column (B) within the block and its k within the slice. Consecutive
// invocations take consecutive addresses in the buffer: along k for A and
// Bᵀ, along rows for Aᵀ, along columns for B.
fn a_slot(e: u32, li: u32) -> vec2<u32> {
    let idx = e * THREADS + li;
    return select(vec2(idx / BK, idx % BK), vec2(idx % BM, idx / BM), TA);
}

fn b_slot(e: u32, li: u32) -> vec2<u32> {
    let idx = e * THREADS + li;
    return select(vec2(idx % BN, idx / BN), vec2(idx / BK, idx % BK), TB);
}

// Reads the slice starting at k0 into a_next / b_next. Rows and columns past
// the edge are clamped (their results are not stored); k at or past k_end
// reads as 0, so it adds nothing.
fn fetch(wrow: u32, wcol: u32, k0: u32, k_end: u32, li: u32) {
    let a_row = select(p.k, 1u, TA);
    let a_k = select(1u, p.m, TA);
    let b_k = select(p.n, 1u, TB);
    let b_col = select(1u, p.k, TB);
    for (var e = 0u; e < A_LOADS; e++) {
        let s = a_slot(e, li);
        let k = k0 + s.y;
        let v = a[min(wrow + s.x, p.m - 1u) * a_row + min(k, p.k - 1u) * a_k];
        a_next[e] = select(0.0, v, k < k_end);
    }
    for (var e = 0u; e < B_LOADS; e++) {
        let s = b_slot(e, li);
        let k = k0 + s.y;
        let v = b[min(k, p.k - 1u) * b_k + min(wcol + s.x, p.n - 1u) * b_col];
        b_next[e] = select(0.0, v, k < k_end);
    }
}

fn stage(li: u32) {
    for (var e = 0u; e < A_LOADS; e++) {
        let s = a_slot(e, li);
        a_tile[s.y * AS + s.x / 4u][s.x % 4u] = a_next[e];
    }
    for (var e = 0u; e < B_LOADS; e++) {
        let s = b_slot(e, li);
        b_tile[s.y * BS + s.x / 4u][s.x % 4u] = b_next[e];
    }
}
