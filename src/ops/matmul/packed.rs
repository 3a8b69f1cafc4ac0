//! wgtrain's own f32 product for x86-64 CPUs with AVX2 and FMA but no
//! AVX-512, one piece of C on the calling thread, blocked as BLIS blocks
//! it: op(B) is packed in panels of [`NR`] columns for a block of
//! [`k_block`] rows of depth, op(A) in panels of [`MR`] rows for a block of
//! [`MC`] rows (which stays in L2), and a 6 × 16 register tile sums each
//! pair of panels (the A panel streams from L2, the B panel stays in L1).
//!
//! Why not the `gemm` crate's kernels on such a CPU: its `x2x6` tile reads
//! the unpacked operand at strides, one address add per broadcast (about
//! 25 instructions per 12 FMAs against 21 here), and its blocks keep less
//! in L2. On a 2-vCPU AMD EPYC (Zen 3), whose speed moved by up to 1.5×
//! within seconds while a plain FMA loop's did not, the crate ran the
//! peer network's first-layer product at 48–59 GFLOP/s in its slow
//! seconds and 65–74 in the fast ones, and with this kernel the peer
//! step ran 1.07–1.09× faster than with the crate's, before the tile's
//! loop was unrolled (1.03× more; PERFORMANCE.md, "a packed AVX2 kernel
//! of our own").
//!
//! Every element of C is summed alike wherever its piece starts: over
//! each depth block in order (the blocks depend on k alone), one FMA per
//! term, the block's sum started from the previous blocks' value in C.

use super::gemm::{At, Block};
use std::arch::x86_64::*;
use std::cell::RefCell;

/// Rows of the register tile: each a broadcast of op(A).
const MR: usize = 6;
/// Columns of the register tile: two 8-float registers of op(B).
const NR: usize = 16;
/// Rows of op(A) packed at a time: 96 × 512 floats (192 KB) stay in L2.
const MC: usize = 96;
/// The deepest block of k: a B panel of 16 × 512 floats (32 KB) fills L1,
/// and C is read and written once per block. Of 48 or 96 rows by 256, 392,
/// 512 or 784 deep, 96 × 512 ran the peer step fastest (PERFORMANCE.md).
const KC: usize = 512;

/// Whether [`product`] runs an f32 product of `m × n`: on a CPU with AVX2
/// and FMA without AVX-512 (with AVX-512 the `gemm` crate's 512-bit
/// kernels run), for C at least [`NR`] on each side and at most
/// [`MAX_OUTPUT`] elements. Narrower, the padded
/// panels waste much of the tile, and packing op(B) for a few rows of C
/// costs as much as the product: the crate ran the output layer's `X·W₃ᵀ`
/// (n = 10) and `δᵀ·H` (m = 10) 1.3–1.6× faster.
pub(crate) fn runs((m, n, _): Block) -> bool {
    m >= NR && n >= NR && m * n <= MAX_OUTPUT && on_this_cpu()
}

/// Whether this CPU is one the packed kernel runs on: AVX2 and FMA
/// without AVX-512.
pub(crate) fn on_this_cpu() -> bool {
    use super::cpu_engine::{has_avx2_fma, has_avx512};
    has_avx2_fma() && !has_avx512()
}

/// The most elements of C a product runs here with: at width 4096 (C of
/// 256 × 4096 and more) op(B)'s packed block outgrows L2 and is read
/// again from L3 for every block of rows, and the `gemm` crate ran the
/// step 1.05–1.18× faster.
const MAX_OUTPUT: usize = 1 << 19;

/// The most floats of packed op(B) a thread keeps between products (4 MiB:
/// a 2048-wide piece at depth 512); a wider product's are freed after it.
const KEPT_B: usize = 1 << 20;

/// The depth of every block of a product of depth `k`: as even as [`KC`]
/// allows, so that it depends on `k` alone.
fn k_block(k: usize) -> usize {
    k.div_ceil(k.div_ceil(KC).max(1)).max(1)
}

thread_local! {
    /// This thread's packed panels of op(A) and op(B), kept between
    /// products so that a step allocates nothing (op(A)'s hold at most
    /// [`MC`] × [`KC`] floats; op(B)'s are dropped after a product that
    /// needed more than [`KEPT_B`]).
    static PANELS: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `c = op(A)·op(B)` for one block of C (`m × n`, depth `k`) on the calling
/// thread, every operand a pointer and its strides; C's columns are
/// contiguous.
///
/// # Safety
/// The CPU has AVX2 and FMA (as [`runs`] checks); each operand's block
/// lies inside its allocation at its strides; no other thread touches C's
/// block meanwhile, and C aliases neither input.
pub(crate) unsafe fn product(
    (m, n, k): Block,
    a: At<*const f32>,
    b: At<*const f32>,
    (c, (rsc, csc)): At<*mut f32>,
) {
    debug_assert_eq!(csc, 1);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for i in 0..m {
            // SAFETY: row i of C's block, inside it by the caller's contract.
            unsafe { std::slice::from_raw_parts_mut(c.offset(i as isize * rsc), n).fill(0.0) };
        }
        return;
    }
    // SAFETY: the caller's contract, AVX2 and FMA included.
    unsafe { blocked((m, n, k), a, b, (c, rsc)) }
}

/// [`product`]'s blocks, compiled for AVX2 and FMA.
///
/// # Safety
/// As [`product`], with `m`, `n` and `k` nonzero.
#[target_feature(enable = "avx2,fma")]
unsafe fn blocked(
    (m, n, k): Block,
    a: At<*const f32>,
    b: At<*const f32>,
    (c, rsc): (*mut f32, isize),
) {
    let depth = k_block(k);
    PANELS.with(|panels| {
        let (pa, pb) = &mut *panels.borrow_mut();
        let col_panels = n.div_ceil(NR);
        for p0 in (0..k).step_by(depth) {
            let kc = depth.min(k - p0);
            let pb = grown(pb, col_panels * kc * NR);
            // SAFETY: the caller's contract: the block's rows p0..p0+kc
            // of op(B) are inside its allocation.
            unsafe { pack_b(b, (p0, kc), n, pb) };
            for i0 in (0..m).step_by(MC) {
                let mc = MC.min(m - i0);
                let row_panels = mc.div_ceil(MR);
                let pa = grown(pa, row_panels * kc * MR);
                // SAFETY: as above, for rows i0..i0+mc of op(A).
                unsafe { pack_a(a, (i0, mc), (p0, kc), pa) };
                for jp in 0..col_panels {
                    let cols = NR.min(n - jp * NR);
                    for ip in 0..row_panels {
                        let rows = MR.min(mc - ip * MR);
                        let at = (i0 + ip * MR) as isize * rsc + (jp * NR) as isize;
                        // SAFETY: the panels hold kc steps each; the tile's
                        // rows × cols lie inside C's block.
                        unsafe {
                            tile(
                                kc,
                                pa.as_ptr().add(ip * kc * MR),
                                pb.as_ptr().add(jp * kc * NR),
                                (c.offset(at), rsc),
                                (rows, cols),
                                p0 > 0,
                            )
                        };
                    }
                }
            }
        }
        if pb.capacity() > KEPT_B {
            *pb = Vec::new();
        }
    });
}

/// The first `len` floats of `panels`, grown to hold them if need be
/// (zeroed only as it grows: packing writes every float it uses, and
/// resizing on each product cleared up to a megabyte each time).
fn grown(panels: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if panels.len() < len {
        panels.resize(len, 0.0);
    }
    &mut panels[..len]
}

/// Packs rows `i0..i0+mc` of op(A), depth `p0..p0+kc`, into panels of
/// [`MR`] rows: `pa[panel][p][row]`, the rows past `mc` zero.
///
/// # Safety
/// Those elements of op(A) lie inside its allocation; AVX exists.
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_a(
    (a, (rsa, csa)): At<*const f32>,
    (i0, mc): (usize, usize),
    (p0, kc): (usize, usize),
    pa: &mut [f32],
) {
    for (ip, panel) in pa.chunks_exact_mut(kc * MR).enumerate() {
        let first = i0 + ip * MR;
        let rows = MR.min(i0 + mc - first);
        // SAFETY (every branch): element (first + r, p0 + p) with r < rows
        // and p < kc is inside the block the caller vouched for; the
        // panel holds kc × MR floats.
        unsafe {
            let at =
                |r: usize, p: usize| a.offset((first + r) as isize * rsa + (p0 + p) as isize * csa);
            if rows == MR && csa == 1 {
                // Rows contiguous along k (X, δ): 8 steps at a time, the
                // six rows transposed as eight.
                let mut p = 0;
                while p + 8 <= kc {
                    let rows8 = std::array::from_fn(|r| _mm256_loadu_ps(at(r.min(MR - 1), p)));
                    let steps = transpose8(rows8);
                    for (t, step) in steps.iter().enumerate() {
                        let out = panel.as_mut_ptr().add((p + t) * MR);
                        _mm_storeu_ps(out, _mm256_castps256_ps128(*step));
                        _mm_storel_epi64(
                            out.add(4).cast(),
                            _mm_castps_si128(_mm256_extractf128_ps::<1>(*step)),
                        );
                    }
                    p += 8;
                }
                for p in p..kc {
                    (0..MR).for_each(|r| panel[p * MR + r] = *at(r, p));
                }
            } else if rows == MR && rsa == 1 {
                // Columns contiguous along m (δᵀ): six floats a step.
                for p in 0..kc {
                    std::ptr::copy_nonoverlapping(at(0, p), panel.as_mut_ptr().add(p * MR), MR);
                }
            } else {
                for p in 0..kc {
                    for r in 0..MR {
                        panel[p * MR + r] = if r < rows { *at(r, p) } else { 0.0 };
                    }
                }
            }
        }
    }
}

/// Packs depth `p0..p0+kc` of op(B)'s `n` columns into panels of [`NR`]
/// columns: `pb[panel][p][column]`, the columns past `n` zero.
///
/// # Safety
/// Those elements of op(B) lie inside its allocation; AVX exists.
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_b(
    (b, (rsb, csb)): At<*const f32>,
    (p0, kc): (usize, usize),
    n: usize,
    pb: &mut [f32],
) {
    for (jp, panel) in pb.chunks_exact_mut(kc * NR).enumerate() {
        let first = jp * NR;
        let cols = NR.min(n - first);
        // SAFETY (every branch): element (p0 + p, first + j) with p < kc
        // and j < cols is inside the block the caller vouched for; the
        // panel holds kc × NR floats.
        unsafe {
            let at =
                |p: usize, j: usize| b.offset((p0 + p) as isize * rsb + (first + j) as isize * csb);
            if cols == NR && csb == 1 {
                // Rows contiguous along n (W, H): sixteen floats a step.
                for p in 0..kc {
                    std::ptr::copy_nonoverlapping(at(p, 0), panel.as_mut_ptr().add(p * NR), NR);
                }
            } else if cols == NR && rsb == 1 {
                // Columns contiguous along k (Wᵀ): 8 × 8 transposes.
                let mut p = 0;
                while p + 8 <= kc {
                    for half in [0, 8] {
                        let steps =
                            transpose8(std::array::from_fn(|j| _mm256_loadu_ps(at(p, half + j))));
                        for (t, step) in steps.iter().enumerate() {
                            _mm256_storeu_ps(panel.as_mut_ptr().add((p + t) * NR + half), *step);
                        }
                    }
                    p += 8;
                }
                for p in p..kc {
                    (0..NR).for_each(|j| panel[p * NR + j] = *at(p, j));
                }
            } else {
                for p in 0..kc {
                    for j in 0..NR {
                        panel[p * NR + j] = if j < cols { *at(p, j) } else { 0.0 };
                    }
                }
            }
        }
    }
}

/// The 8 × 8 transpose: lane `j` of row `i` becomes lane `i` of row `j`.
#[inline(always)]
unsafe fn transpose8(r: [__m256; 8]) -> [__m256; 8] {
    // SAFETY: register shuffles only; the callers run with AVX.
    unsafe {
        let t = [
            _mm256_unpacklo_ps(r[0], r[1]),
            _mm256_unpackhi_ps(r[0], r[1]),
            _mm256_unpacklo_ps(r[2], r[3]),
            _mm256_unpackhi_ps(r[2], r[3]),
            _mm256_unpacklo_ps(r[4], r[5]),
            _mm256_unpackhi_ps(r[4], r[5]),
            _mm256_unpacklo_ps(r[6], r[7]),
            _mm256_unpackhi_ps(r[6], r[7]),
        ];
        let s = [
            _mm256_shuffle_ps::<0x44>(t[0], t[2]),
            _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
            _mm256_shuffle_ps::<0x44>(t[1], t[3]),
            _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
            _mm256_shuffle_ps::<0x44>(t[4], t[6]),
            _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
            _mm256_shuffle_ps::<0x44>(t[5], t[7]),
            _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
        ];
        [
            _mm256_permute2f128_ps::<0x20>(s[0], s[4]),
            _mm256_permute2f128_ps::<0x20>(s[1], s[5]),
            _mm256_permute2f128_ps::<0x20>(s[2], s[6]),
            _mm256_permute2f128_ps::<0x20>(s[3], s[7]),
            _mm256_permute2f128_ps::<0x31>(s[0], s[4]),
            _mm256_permute2f128_ps::<0x31>(s[1], s[5]),
            _mm256_permute2f128_ps::<0x31>(s[2], s[6]),
            _mm256_permute2f128_ps::<0x31>(s[3], s[7]),
        ]
    }
}

/// One tile of C, `rows × cols` (at most [`MR`] × [`NR`]) at `c` with row
/// stride `rsc`: `c = Σ_p a[p]·b[p]` over the panels' `kc` steps, added to
/// what C holds when `accumulate`.
///
/// # Safety
/// The panels hold `kc` steps; the tile lies inside C; AVX2 and FMA exist.
#[target_feature(enable = "avx2,fma")]
unsafe fn tile(
    kc: usize,
    a: *const f32,
    b: *const f32,
    (c, rsc): (*mut f32, isize),
    (rows, cols): (usize, usize),
    accumulate: bool,
) {
    if rows == MR && cols == NR {
        // SAFETY: the caller's contract, the tile whole.
        return unsafe { kernel(kc, a, b, (c, rsc), accumulate) };
    }
    // An edge tile: through a full tile on the stack, zero unless C's
    // values are to be added to.
    let mut edge = [0.0f32; MR * NR];
    // SAFETY: each of the tile's `rows` rows of C holds `cols` floats
    // inside C; `edge` is a whole tile with row stride NR.
    unsafe {
        let row = |r: usize| c.offset(r as isize * rsc);
        if accumulate {
            for r in 0..rows {
                std::ptr::copy_nonoverlapping(row(r), edge.as_mut_ptr().add(r * NR), cols);
            }
        }
        kernel(kc, a, b, (edge.as_mut_ptr(), NR as isize), true);
        for r in 0..rows {
            std::ptr::copy_nonoverlapping(edge.as_ptr().add(r * NR), row(r), cols);
        }
    }
}

/// Steps of k the register tile's loop takes at a time.
const UNROLL: usize = 4;

/// The 6 × 16 register tile: twelve sums, each step two loads of B, six
/// broadcasts of A and twelve FMAs.
///
/// # Safety
/// As [`tile`], for a whole tile.
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel(
    kc: usize,
    a: *const f32,
    b: *const f32,
    (c, rsc): (*mut f32, isize),
    accumulate: bool,
) {
    // SAFETY: the caller's contract: every read is inside the panels,
    // every row of the tile inside C.
    unsafe {
        let row = |r: usize| c.offset(r as isize * rsc);
        let mut lo = [_mm256_setzero_ps(); MR];
        let mut hi = [_mm256_setzero_ps(); MR];
        if accumulate {
            for r in 0..MR {
                lo[r] = _mm256_loadu_ps(row(r));
                hi[r] = _mm256_loadu_ps(row(r).add(8));
            }
        }
        // Four steps an iteration, then the rest one by one: the same
        // FMAs in the same order, with a quarter of the loop's own
        // instructions (the peer step 1.03× faster than one step an
        // iteration, 197 of 278 block pairs; PERFORMANCE.md).
        let step = |p: usize, lo: &mut [__m256; MR], hi: &mut [__m256; MR]| {
            let b_lo = _mm256_loadu_ps(b.add(p * NR));
            let b_hi = _mm256_loadu_ps(b.add(p * NR + 8));
            for r in 0..MR {
                let ar = _mm256_broadcast_ss(&*a.add(p * MR + r));
                lo[r] = _mm256_fmadd_ps(ar, b_lo, lo[r]);
                hi[r] = _mm256_fmadd_ps(ar, b_hi, hi[r]);
            }
        };
        let whole = kc / UNROLL * UNROLL;
        for p0 in (0..whole).step_by(UNROLL) {
            for p in p0..p0 + UNROLL {
                step(p, &mut lo, &mut hi);
            }
        }
        for p in whole..kc {
            step(p, &mut lo, &mut hi);
        }
        for r in 0..MR {
            _mm256_storeu_ps(row(r), lo[r]);
            _mm256_storeu_ps(row(r).add(8), hi[r]);
        }
    }
}
