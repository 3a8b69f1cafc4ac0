//! Products with a side of at most [`NARROW`]: the output layer's, 10
//! classes wide. The `gemm` crate packs its operands for a 64×6 register
//! tile of f32 (`x4x6`); inside the peer network's step it ran the three
//! 10-wide products at 16–110 GFLOP/s, 0.16 ms of a 4 ms step. The kernel
//! here reads them straight from the operands, with AVX-512 (about 20 µs
//! a step faster; PERFORMANCE.md).
//!
//! One kernel serves all three (`X·W₃ᵀ`, `δ·W₃` with k = 10, `δᵀ·H` with
//! m = 10): up to twelve rows of C at a time, 32 columns a pass (masked at
//! the edge), every A element broadcast against a row of B. When op(B)'s rows
//! are not contiguous (`Wᵀ` in the forward pass), they are first copied
//! into rows (`transpose.rs`). Every element of C is the sum
//! over `p` in order, one fused multiply-add per term, whatever its row
//! block or piece: the result does not depend on how C was cut.

use super::cpu_engine::has_avx512;
use super::gemm::{At, Block};
#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// The longest side a product may have at its narrowest to run here.
pub(crate) const NARROW: usize = 16;

/// Whether [`product`] runs `m × n` (depth `k`) with op(B) at strides `sb`:
/// on a CPU with AVX-512, for a product with `n ≤ NARROW`, or with `m` or
/// `k ≤ NARROW` and op(B)'s rows contiguous.
pub(crate) fn runs((m, n, k): Block, (_, csb): (isize, isize)) -> bool {
    has_avx512() && (n <= NARROW || (m.min(k) <= NARROW && csb == 1))
}

/// Rows of C a pass computes at most (with two registers of columns, 24
/// of the 32 AVX-512 registers hold sums), so that a 10-row side is one
/// pass.
#[cfg(target_arch = "x86_64")]
const ROWS: usize = 12;

/// `c = op(A)·op(B)` on the calling thread, for a product that [`runs`]
/// accepted.
///
/// # Safety
/// As the `gemm` crate's products in `in_pieces`: every operand's block
/// lies inside its allocation at its strides, `c`'s rows are contiguous
/// (column stride 1), and no other thread touches `c`'s block meanwhile.
#[cfg(target_arch = "x86_64")]
pub(crate) unsafe fn product(
    (m, n, k): Block,
    (a, sa): At<*const f32>,
    (b, (rsb, csb)): At<*const f32>,
    (c, (rsc, _)): At<*mut f32>,
) {
    if csb == 1 {
        // SAFETY: the caller's contract; AVX-512 was checked by `runs`.
        return unsafe { rows_of_c((m, n, k), (a, sa), (b, rsb), (c, rsc)) };
    }
    // op(B) is n ≤ NARROW columns of stride csb (with rsb = 1: `Wᵀ`):
    // copied into k rows of n.
    debug_assert_eq!(rsb, 1, "op(B) with neither stride 1");
    // SAFETY: as above, with B now k × n at row stride n.
    unsafe {
        super::transpose::with_rows((k, n), b, csb, |rows| {
            rows_of_c((m, n, k), (a, sa), (rows, n as isize), (c, rsc))
        })
    }
}

/// The kernel, op(B)'s rows contiguous at row stride `rsb`: C in blocks
/// of up to [`ROWS`] rows and 32 columns, each by [`block`] compiled for
/// its row count and register count (so the sums stay in registers).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn rows_of_c(
    (m, n, k): Block,
    a: At<*const f32>,
    (b, rsb): (*const f32, isize),
    (c, rsc): (*mut f32, isize),
) {
    macro_rules! dispatch {
        ($rows:expr, $wide:expr, $($r:literal)+) => {
            match ($rows, $wide) {
                $(($r, false) => block::<$r, 1>,
                  ($r, true) => block::<$r, 2>,)+
                _ => unreachable!("at most ROWS rows"),
            }
        };
    }
    for i0 in (0..m).step_by(ROWS) {
        let rows = ROWS.min(m - i0);
        for j0 in (0..n).step_by(32) {
            let cols = 32.min(n - j0);
            let run = dispatch!(rows, cols > 16, 1 2 3 4 5 6 7 8 9 10 11 12);
            // SAFETY: rows i0.. of op(A) and C, columns j0.. of op(B) and
            // C, inside the operands (the caller's contract).
            unsafe {
                let (a, sa) = a;
                run(
                    k,
                    (a.offset(i0 as isize * sa.0), sa),
                    (b.add(j0), rsb),
                    (c.offset(i0 as isize * rsc).add(j0), rsc),
                    cols,
                )
            }
        }
    }
}

/// `R` rows × `cols` (≤ 16·`H`) columns of C: the sum over `p` of A's
/// column `p` (broadcast) times op(B)'s row `p`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn block<const R: usize, const H: usize>(
    k: usize,
    (a, (rsa, csa)): At<*const f32>,
    (b, rsb): (*const f32, isize),
    (c, rsc): (*mut f32, isize),
    cols: usize,
) {
    let masks: [__mmask16; H] = std::array::from_fn(|h| {
        let lanes = cols.saturating_sub(16 * h).min(16);
        ((1u32 << lanes) - 1) as __mmask16
    });
    let mut acc = [[_mm512_setzero_ps(); H]; R];
    for p in 0..k as isize {
        // SAFETY: row p of op(B) under the masks, and A's (r, p), lie
        // inside the operands (`rows_of_c`).
        unsafe {
            let row = b.offset(p * rsb);
            let bv: [__m512; H] =
                std::array::from_fn(|h| _mm512_maskz_loadu_ps(masks[h], row.add(16 * h)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_ps(*a.offset(r as isize * rsa + p * csa));
                for h in 0..H {
                    acc[h] = _mm512_fmadd_ps(x, bv[h], acc[h]);
                }
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        for h in 0..H {
            // SAFETY: row r of C's block, its columns under the mask.
            unsafe {
                let out = c.offset(r as isize * rsc).add(16 * h);
                _mm512_mask_storeu_ps(out, masks[h], acc[h]);
            }
        }
    }
}

/// No AVX-512 outside x86-64: [`runs`] is false there.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) unsafe fn product(_: Block, _: At<*const f32>, _: At<*const f32>, _: At<*mut f32>) {
    unreachable!("narrow::runs is false without AVX-512")
}
