// Load piece of matmul/tiled.wgsl reading op(A) and op(B) four floats at a
// time along their contiguous dimension: k for A and Bᵀ, rows for Aᵀ,
// columns for B. Needs k % 4 == 0, m % 4 == 0 for Aᵀ and n % 4 == 0 for B
// (the host checks), and k_chunk a multiple of 4 (it is one of BK). Then a
// vec4 never straddles the edge of k or of the matrix, and one load replaces
// four, with their index arithmetic. After matmul/operands_vec4.wgsl.

const A_LOADS: u32 = BK * BM / 4u / THREADS; // vec4 of A each invocation stages per slice
const B_LOADS: u32 = BK * BN / 4u / THREADS;
const_assert BK * BM % (4u * THREADS) == 0u && BK * BN % (4u * THREADS) == 0u;
var<private> a_next: array<vec4<f32>, A_LOADS>;
var<private> b_next: array<vec4<f32>, B_LOADS>;

// Where staged vec4 e of this invocation comes from, within the block: for A
// (Bᵀ) its row (column) and first k, four k along; for Aᵀ (B) its first row
// (column) and its k, four rows (columns) along.
fn a_slot(e: u32, li: u32) -> vec2<u32> {
    let idx = e * THREADS + li;
    return select(vec2(idx / (BK / 4u), 4u * (idx % (BK / 4u))), vec2(4u * (idx % (BM / 4u)), idx / (BM / 4u)), TA);
}

fn b_slot(e: u32, li: u32) -> vec2<u32> {
    let idx = e * THREADS + li;
    return select(vec2(4u * (idx % (BN / 4u)), idx / (BN / 4u)), vec2(idx / (BK / 4u), 4u * (idx % (BK / 4u))), TB);
}

fn fetch(wrow: u32, wcol: u32, k0: u32, k_end: u32, li: u32) {
    let k4 = p.k / 4u;
    let m4 = p.m / 4u;
    let n4 = p.n / 4u;
    for (var e = 0u; e < A_LOADS; e++) {
        let s = a_slot(e, li);
        let k = k0 + s.y;
        var v: vec4<f32>;
        if (TA) {
            v = a[min(k, p.k - 1u) * m4 + min((wrow + s.x) / 4u, m4 - 1u)];
        } else {
            v = a[min(wrow + s.x, p.m - 1u) * k4 + min(k / 4u, k4 - 1u)];
        }
        a_next[e] = select(vec4(0.0), v, k < k_end);
    }
    for (var e = 0u; e < B_LOADS; e++) {
        let s = b_slot(e, li);
        let k = k0 + s.y;
        var v: vec4<f32>;
        if (TB) {
            v = b[min(wcol + s.x, p.n - 1u) * k4 + min(k / 4u, k4 - 1u)];
        } else {
            v = b[min(k, p.k - 1u) * n4 + min((wcol + s.x) / 4u, n4 - 1u)];
        }
        b_next[e] = select(vec4(0.0), v, k < k_end);
    }
}

fn stage(li: u32) {
    for (var e = 0u; e < A_LOADS; e++) {
        let s = a_slot(e, li);
        if (TA) {
            a_tile[s.y * AS + s.x / 4u] = a_next[e];
        } else {
            for (var q = 0u; q < 4u; q++) {
                a_tile[(s.y + q) * AS + s.x / 4u][s.x % 4u] = a_next[e][q];
            }
        }
    }
    for (var e = 0u; e < B_LOADS; e++) {
        let s = b_slot(e, li);
        if (TB) {
            for (var q = 0u; q < 4u; q++) {
                b_tile[(s.y + q) * BS + s.x / 4u][s.x % 4u] = b_next[e][q];
            }
        } else {
            b_tile[s.y * BS + s.x / 4u] = b_next[e];
        }
    }
}
