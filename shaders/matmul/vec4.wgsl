// The vec4 matmul kernel (see matmul/common.wgsl): A and B are read four
// floats at a time along their contiguous dimension, which on lavapipe costs
// about as much as one scalar read. Needs k % 4 == 0, m % 4 == 0 when TA and
// n % 4 == 0 unless TB (the host checks); m and n need not fill the tile.
// Preceded by matmul/share_subgroup.wgsl or matmul/share_none.wgsl, which
// decide whether the lanes of a subgroup share their reads of A (SHARE_A),
// and matmul/operands_vec4.wgsl. With split k, k_chunk is a multiple of 4.

const TM4: u32 = TM / 4u;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row0 = gid.y * TM;
    let col0 = gid.x * TN;
    // Lanes sharing A must all stay while their subgroup does; past the
    // right edge they compute clamped values that store_tile does not store.
    // The subgroup is one row of WG_X lanes, all with this row0: below the
    // bottom edge it leaves whole (for a short output such as a convolution's
    // weight gradient, 6 rows, that is 3 rows of lanes of the 4 doing nothing).
    if (row0 >= p.m || (!SHARE_A && col0 >= p.n)) {
        return;
    }
    let lane = li % WG_X;
    let m4 = p.m / 4u;
    let n4 = p.n / 4u;
    let k4 = p.k / 4u;
    // Where each row of op(A) and column of op(B) starts, in vec4s, clamped:
    // per row (A) or per column (Bᵀ) when k is contiguous, per group of four
    // rows (Aᵀ) or columns (B) when those are.
    var a_off: array<u32, TM>;
    if (TA) {
        for (var g = 0u; g < TM4; g++) {
            a_off[g] = min(row0 / 4u + g, m4 - 1u);
        }
    } else {
        for (var r = 0u; r < TM; r++) {
            a_off[r] = min(row0 + r, p.m - 1u) * k4;
        }
    }
    var b_off: array<u32, TN>;
    if (TB) {
        for (var c = 0u; c < TN; c++) {
            b_off[c] = min(col0 + c, p.n - 1u) * k4;
        }
    } else {
        for (var c = 0u; c < TN4; c++) {
            b_off[c] = min(col0 / 4u + c, n4 - 1u);
        }
    }

    // lavapipe runs the WG_Y rows of a workgroup one after another, each
    // through the whole k loop, and all of them read the same k × TN·WG_X
    // panel of B. When B's row stride is a power of two (n = 1024, 2048) that
    // panel maps onto a sliver of the cache sets and is evicted before the
    // next row comes back to its start. Odd rows walk k backwards, so each
    // row starts on what the previous one read last: +5–10% at 1024³ and
    // 2048³ A·B (PERFORMANCE.md). Bᵀ's panel is k-contiguous and does not alias;
    // there the backward walk cost 2–5%, so it is left out.
    let backwards = !TB && (lid.y & 1u) == 1u;
    let ks = k_range(gid.z) / 4u;
    for (var step = ks.x; step < ks.y; step++) {
        let kq = select(step, ks.y - 1u - (step - ks.x), backwards);
        // at[r][s] = op(A)[row0 + r, 4kq + s]; bt[s·TN4 + c][q] = op(B)[4kq + s, col0 + 4c + q].
        var at: array<vec4<f32>, TM>;
        if (TA) {
            // With SHARE_A, lane 4g + s reads the v that every lane needs at (g, s).
            var mine: vec4<f32>;
            if (SHARE_A) {
                mine = a[(4u * kq + lane % 4u) * m4 + a_off[lane / 4u]];
            }
            for (var s = 0u; s < 4u; s++) {
                for (var g = 0u; g < TM4; g++) {
                    var v: vec4<f32>;
                    if (SHARE_A) {
                        v = from_lane(mine, 4u * g + s);
                    } else {
                        v = a[(4u * kq + s) * m4 + a_off[g]];
                    }
                    at[4u * g][s] = v.x;
                    at[4u * g + 1u][s] = v.y;
                    at[4u * g + 2u][s] = v.z;
                    at[4u * g + 3u][s] = v.w;
                }
            }
        } else if (SHARE_A) {
            let mine = a[a_off[lane] + kq];
            for (var r = 0u; r < TM; r++) {
                at[r] = from_lane(mine, r);
            }
        } else {
            for (var r = 0u; r < TM; r++) {
                at[r] = a[a_off[r] + kq];
            }
        }
        var bt: array<vec4<f32>, 4u * TN4>;
        if (TB) {
            for (var c = 0u; c < TN; c++) {
                let v = b[b_off[c] + kq];
                bt[c / 4u][c % 4u] = v.x;
                bt[TN4 + c / 4u][c % 4u] = v.y;
                bt[2u * TN4 + c / 4u][c % 4u] = v.z;
                bt[3u * TN4 + c / 4u][c % 4u] = v.w;
            }
        } else {
            for (var s = 0u; s < 4u; s++) {
                for (var c = 0u; c < TN4; c++) {
                    bt[s * TN4 + c] = b[(4u * kq + s) * n4 + b_off[c]];
                }
            }
        }
        for (var s = 0u; s < 4u; s++) {
            for (var r = 0u; r < TM; r++) {
                for (var c = 0u; c < TN4; c++) {
                    acc[r * TN4 + c] += at[r][s] * bt[s * TN4 + c];
                }
            }
        }
    }
    store_tile(gid.z, row0, col0);
}
