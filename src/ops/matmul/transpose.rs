//! An operand stored transposed, copied into rows before a product.
//!
//! A dense layer's forward pass `X·Wᵀ` reads `W` (`n × k`, row-major) as
//! op(B) = `Wᵀ`: its `k × n` elements at row stride 1 and column stride
//! `k`. The `gemm` crate packs that operand by gathering across W's rows;
//! when they lie a multiple of 1 KiB apart (a width of 256, 512, 1024 …)
//! they share a few of the L1 cache's sets and the gather misses.
//! [`into_rows`] copies op(B) into contiguous rows first,
//! transposing 16 × 16 blocks in AVX-512 registers (31–34 µs for half of a
//! 512 × 512 weight matrix on one core of the Xeon measured), and the
//! crate then packs plain rows. [`pays`] says where that was faster. The
//! copy is exact; only the time changes, and, for op(B) deeper than
//! [`SLAB`], the order in which the slabs' sums are added.
//!
//! The weight gradient `δᵀ·X` reads `δ` as a transposed op(A) the same
//! way, but there copying took 0.97–1.03× the time of the gather at the
//! peer network's shapes, within the noise: op(A) is not copied.
//!
//! `narrow.rs` copies the output layer's 10-wide `Wᵀ` the same way.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Whether the `gemm` crate's product runs faster with a transposed f32
/// op(B) (`rows × cols` = `k × n`, column stride `cs`, each element used
/// `uses` = m times) copied by [`into_rows`] first.
/// Measured with each form in turn on a 2-core Emerald Rapids Xeon
/// (PERFORMANCE.md, "transposed weights copied into rows"):
/// - a column stride a multiple of 256 floats. At 512, 1024, 1536 and
///   2048 the copy and product took 0.50–0.95× the time of the crate's
///   own gather (0.50–0.79× at 16–64 rows, 0.86–0.95× at 256); at 256 and
///   768, 0.92–1.0×. At 640, 784 and 1000 they took 1.02–1.30×: no copy
///   there.
/// - used at least [`MIN_USES`] times: the copy costs the same whatever
///   the other side of the product.
/// - slabs of at most [`MAX_FLOATS`]. A deep op(B) is copied in slabs of
///   [`SLAB`] rows, one product each: copied whole, 8 MB copies took
///   1.03–1.10× and 32 MB (half of a 4096 × 4096 `Wᵀ`) 1.19×, at memory
///   speed; in 4 MB slabs, 0.86–0.97× (1024 to 4096 wide). Wider slabs
///   were not measured.
///
/// Only with AVX-512, where this was measured.
pub(crate) fn pays(uses: usize, (rows, cols): (usize, usize), cs: isize) -> bool {
    uses >= MIN_USES
        && cs % ALIASING_STRIDE == 0
        && rows.min(SLAB) * cols <= MAX_FLOATS
        && super::cpu_engine::has_avx512()
}

/// Column strides that are a multiple of this (in floats, 1 KiB) put the
/// gathered rows in the same few L1 sets.
const ALIASING_STRIDE: isize = 256;
/// The fewest uses measured (16 × 512 × 512 with op(B) copied: 90–103 µs,
/// gathered: 149–205 µs).
const MIN_USES: usize = 16;
/// The deepest slab of op(B) copied at a time ([`in_row_slabs`]): the
/// same for every shape, so that where C was cut never changes its sums.
pub(crate) const SLAB: usize = 512;
/// The largest slab copied: 4 MiB of f32.
const MAX_FLOATS: usize = 1 << 20;

/// `f(first, depth, rows)` for each slab of op(B)'s rows `first ..
/// first + depth`, at most [`SLAB`] deep, copied into `depth` rows of
/// `cols` (`x`: op(B), `rows × cols`, row stride 1, column stride `cs`).
///
/// # Safety
/// Every element `(r, c)` of op(B), at `x + r + c·cs`, lies inside one
/// allocation; `f` does not call [`with_rows`].
pub(crate) unsafe fn in_row_slabs(
    (rows, cols): (usize, usize),
    x: *const f32,
    cs: isize,
    mut f: impl FnMut(usize, usize, *const f32),
) {
    for first in (0..rows).step_by(SLAB) {
        let depth = SLAB.min(rows - first);
        // SAFETY: the slab's elements are op(B)'s (the caller's contract).
        unsafe {
            with_rows((depth, cols), x.add(first), cs, |slab| {
                f(first, depth, slab)
            })
        }
    }
}

/// `f` of the operand `x` (`rows × cols`, row stride 1, column stride
/// `cs`) copied into `rows` rows of `cols` by [`into_rows`], in a buffer
/// each thread keeps for its next call (as large as the largest it
/// copied).
///
/// # Safety
/// As [`into_rows`]; `f` does not call `with_rows` again.
pub(crate) unsafe fn with_rows<R>(
    (rows, cols): (usize, usize),
    x: *const f32,
    cs: isize,
    f: impl FnOnce(*const f32) -> R,
) -> R {
    thread_local! {
        static ROWS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    ROWS.with_borrow_mut(|out| {
        // SAFETY: the caller's contract.
        unsafe { into_rows((rows, cols), x, cs, out) };
        f(out.as_ptr())
    })
}

/// Writes the operand `x`, `rows × cols` with row stride 1 and column
/// stride `cs` (its stored rows, `cs` apart, are its columns), into `out`
/// as `rows` rows of `cols`.
///
/// # Safety
/// Every element `(r, c)`, at `x + r + c·cs`, lies inside one allocation.
pub(crate) unsafe fn into_rows(
    (rows, cols): (usize, usize),
    x: *const f32,
    cs: isize,
    out: &mut Vec<f32>,
) {
    // Every element is written below: only a longer buffer's new part is
    // filled first.
    out.truncate(rows * cols);
    out.resize(rows * cols, 0.0);
    #[cfg(target_arch = "x86_64")]
    if super::cpu_engine::has_avx512() {
        // SAFETY: the caller's contract; `out` holds rows × cols; AVX-512
        // was checked.
        return unsafe { blocks_avx512((rows, cols), x, cs, out) };
    }
    // SAFETY: the caller's contract.
    unsafe { edges((rows, cols), (0, 0), x, cs, out) }
}

/// The elements outside the top-left `(rows0, cols0)` corner of whole
/// 16 × 16 blocks, one at a time, each column a contiguous run of `x`.
///
/// # Safety
/// As [`into_rows`]; `out` holds `rows × cols`.
unsafe fn edges(
    (rows, cols): (usize, usize),
    (rows0, cols0): (usize, usize),
    x: *const f32,
    cs: isize,
    out: &mut [f32],
) {
    for c in 0..cols {
        let from = if c < cols0 { rows0 } else { 0 };
        for r in from..rows {
            // SAFETY: element (r, c) lies inside `x`'s allocation (the
            // contract).
            out[r * cols + c] = unsafe { *x.offset(r as isize + c as isize * cs) };
        }
    }
}

/// [`into_rows`] in 16 × 16 blocks, each loaded as 16 registers (16 runs
/// of a column), transposed by four rounds of shuffles, stored as 16 rows.
///
/// # Safety
/// As [`edges`], on a CPU with AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn blocks_avx512((rows, cols): (usize, usize), x: *const f32, cs: isize, out: &mut [f32]) {
    let (rows0, cols0) = (rows / 16 * 16, cols / 16 * 16);
    let to = out.as_mut_ptr();
    // Column blocks outer: each block reads 16 columns' runs onward, and
    // this order ran a 1024 × 2048 copy 1.2× faster than row blocks outer.
    for c in (0..cols0).step_by(16) {
        for r in (0..rows0).step_by(16) {
            // SAFETY: the block's 16 runs of 16 lie inside `x` (the
            // contract) and its 16 rows of 16 inside `out`.
            unsafe {
                let from = x.offset(r as isize + c as isize * cs);
                let block: [__m512; 16] =
                    std::array::from_fn(|i| _mm512_loadu_ps(from.offset(i as isize * cs)));
                for (i, row) in transpose16(block).iter().enumerate() {
                    _mm512_storeu_ps(to.add((r + i) * cols + c), *row);
                }
            }
        }
    }
    // SAFETY: the caller's contract.
    unsafe { edges((rows, cols), (rows0, cols0), x, cs, out) }
}

/// The transpose of a 16 × 16 block held as 16 rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transpose16(r: [__m512; 16]) -> [__m512; 16] {
    // Pairs of rows interleaved (2 × 2 blocks), then pairs of pairs (4 × 4),
    // then 128-bit lanes across rows 4 apart and 8 apart.
    let mut t = [_mm512_setzero_ps(); 16];
    for i in (0..16).step_by(2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for i in (0..16).step_by(4) {
        u[i] = _mm512_shuffle_ps::<0x44>(t[i], t[i + 2]);
        u[i + 1] = _mm512_shuffle_ps::<0xEE>(t[i], t[i + 2]);
        u[i + 2] = _mm512_shuffle_ps::<0x44>(t[i + 1], t[i + 3]);
        u[i + 3] = _mm512_shuffle_ps::<0xEE>(t[i + 1], t[i + 3]);
    }
    for i in 0..4 {
        t[i] = _mm512_shuffle_f32x4::<0x88>(u[i], u[i + 4]);
        t[i + 4] = _mm512_shuffle_f32x4::<0xDD>(u[i], u[i + 4]);
        t[i + 8] = _mm512_shuffle_f32x4::<0x88>(u[i + 8], u[i + 12]);
        t[i + 12] = _mm512_shuffle_f32x4::<0xDD>(u[i + 8], u[i + 12]);
    }
    for i in 0..4 {
        u[i] = _mm512_shuffle_f32x4::<0x88>(t[i], t[i + 8]);
        u[i + 8] = _mm512_shuffle_f32x4::<0xDD>(t[i], t[i + 8]);
        u[i + 4] = _mm512_shuffle_f32x4::<0x88>(t[i + 4], t[i + 12]);
        u[i + 12] = _mm512_shuffle_f32x4::<0xDD>(t[i + 4], t[i + 12]);
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every element lands where the textbook transpose puts it, for
    /// sizes with and without whole 16 × 16 blocks and edges on either
    /// side, at a column stride equal to and longer than `k`.
    #[test]
    fn into_rows_is_the_transpose() {
        let mut rows = Vec::new();
        for k in [1, 7, 16, 17, 33, 257] {
            for n in [1, 10, 16, 31, 48, 65] {
                for pad in [0, 3] {
                    let csb = k + pad;
                    let b: Vec<f32> = (0..n * csb).map(|i| i as f32).collect();
                    // SAFETY: element (p, j) is b[p + j·csb], inside `b`.
                    unsafe { into_rows((k, n), b.as_ptr(), csb as isize, &mut rows) };
                    assert_eq!(rows.len(), k * n);
                    for p in 0..k {
                        for j in 0..n {
                            assert_eq!(
                                rows[p * n + j],
                                b[p + j * csb],
                                "k {k} n {n} pad {pad} at ({p}, {j})"
                            );
                        }
                    }
                }
            }
        }
    }
}
