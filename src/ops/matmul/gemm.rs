//! The fast CPU matrix product: `matrixmultiply`'s blocked, vectorised
//! sgemm/dgemm, or the `gemm` crate's (AVX-512 kernels; C cut into a piece
//! per thread, or for a deep product the depth split across threads), as
//! [`cpu_gemm`] chose for this machine; a product whose
//! output is tiny beside its depth always goes to `gemm`, and under `gemm`
//! one with a side of at most 16 (the output layer's) to the kernel in
//! `narrow.rs` (AVX-512), and on an AVX2 CPU without AVX-512 an f32 one
//! with an output of 16 × 16 to 2¹⁹ elements to the kernel in
//! `packed.rs`. Row and column
//! strides describe every transpose form, so nothing is copied; an
//! epilogue (the CPU matmul's bias, activation and gate) runs on each row
//! of C once it is written. The choice is fixed for the
//! process, so the same product always sums in the same order.

use super::cpu_engine::{cpu_gemm, CpuGemm};
use super::transpose;
use crate::backend::par::split;
use crate::backend::pool::{balanced, for_each_piece};
use num_traits::Float;
use std::any::TypeId;
use std::ops::Range;

/// Where `op(X)` lives in a row-major buffer: `(row stride, column stride)`
/// of the `rows × cols` matrix op(X), stored transposed when `transposed`.
pub(super) fn strides(rows: usize, cols: usize, transposed: bool) -> (isize, isize) {
    if transposed {
        (1, rows as isize)
    } else {
        (cols as isize, 1)
    }
}

/// Work on one row segment of C once the product has written it: the
/// row, its first column, and the segment's values. [`gemm`] runs it while
/// the segment is in cache, on the thread that wrote it where C was cut
/// into pieces (the CPU matmul's bias, activation and gate).
pub(crate) type Epilogue<'a, T> = &'a (dyn Fn(usize, usize, &mut [T]) + Sync);

/// `c = op(A)·op(B)` with `op(A)` of shape `m × k` and `op(B)` of shape
/// `k × n`, for `T` = `f32` or `f64`, by this machine's library
/// ([`cpu_gemm`]), then `epilogue` over every row of C. Returns false,
/// touching nothing, for any other `T`, which then needs the reference loop.
///
/// The slices must hold `m·k`, `k·n` and `m·n` elements (checked by the
/// caller's shape check; asserted here because the product reads raw pointers).
pub(crate) fn gemm<T: Float + Send + Sync + 'static>(
    mnk: (usize, usize, usize),
    (a, transpose_a): (&[T], bool),
    (b, transpose_b): (&[T], bool),
    c: &mut [T],
    epilogue: Option<Epilogue<'_, T>>,
) -> bool {
    gemm_with(
        cpu_gemm(),
        mnk,
        (a, transpose_a),
        (b, transpose_b),
        c,
        epilogue,
    )
}

/// [`gemm`] by the library `engine` (the tuner measures both).
pub(crate) fn gemm_with<T: Float + Send + Sync + 'static>(
    engine: CpuGemm,
    (m, n, k): (usize, usize, usize),
    (a, transpose_a): (&[T], bool),
    (b, transpose_b): (&[T], bool),
    c: &mut [T],
    epilogue: Option<Epilogue<'_, T>>,
) -> bool {
    assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n);
    let (rsa, csa) = strides(m, k, transpose_a);
    let (rsb, csb) = strides(k, n, transpose_b);
    if engine == CpuGemm::Gemm || k >= DEEP * m * n {
        return by_gemm_crate(m, n, k, (a, (rsa, csa)), (b, (rsb, csb)), c, epilogue);
    }
    #[cfg(feature = "openblas")]
    if engine == CpuGemm::OpenBlas {
        let ops = ((transpose_a, transpose_b), (rsa, csa), (rsb, csb));
        return openblas::product(m, n, k, (a, b), ops, c, epilogue);
    }
    if !by_matrixmultiply(m, n, k, (a, (rsa, csa)), (b, (rsb, csb)), c) {
        return false;
    }
    if let Some(epilogue) = epilogue {
        each_row(n, c, epilogue);
    }
    true
}

/// `epilogue` on every row of the `· × n` matrix `c`, the rows split over
/// the cores (`par::split`).
fn each_row<T: Send>(n: usize, c: &mut [T], epilogue: Epilogue<'_, T>) {
    let rows = 0..c.len();
    split(
        c.len(),
        n,
        (c, rows),
        #[inline(always)]
        move |(c, at): (&mut [T], Range<usize>)| {
            for (r, row) in c.chunks_mut(n).enumerate() {
                epilogue(at.start / n + r, 0, row);
            }
        },
    );
}

/// `c = op(A)·op(B)` by matrixmultiply (its own threads); false for a `T`
/// other than f32 and f64.
fn by_matrixmultiply<T: Float + 'static>(
    m: usize,
    n: usize,
    k: usize,
    (a, (rsa, csa)): (&[T], (isize, isize)),
    (b, (rsb, csb)): (&[T], (isize, isize)),
    c: &mut [T],
) -> bool {
    // A short, wide product runs 1.5–1.6× faster in matrixmultiply as its
    // transpose, Cᵀ = op(B)ᵀ·op(A)ᵀ, written through C's strides swapped
    // (64×512 outputs at k = 512 and 784: the CPU training step at batch 64;
    // PERFORMANCE.md). Only strides change: nothing is copied.
    let (m, n, a, (rsa, csa), b, (rsb, csb), (rsc, csc)) = if 2 * m <= n {
        (n, m, b, (csb, rsb), a, (csa, rsa), (1, n as isize))
    } else {
        (m, n, a, (rsa, csa), b, (rsb, csb), (n as isize, 1))
    };
    let id = TypeId::of::<T>();
    // SAFETY: T is exactly f32 (or f64) in its branch, so the casts are
    // identities; the strides stay inside the slices, whose lengths
    // `gemm_with` asserted; `c` is borrowed mutably and does not alias `a` or `b`;
    // with beta = 0 the product never reads `c`.
    unsafe {
        if id == TypeId::of::<f32>() {
            let (a, b, c) = (
                a.as_ptr().cast::<f32>(),
                b.as_ptr().cast::<f32>(),
                c.as_mut_ptr().cast::<f32>(),
            );
            matrixmultiply::sgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, 0.0, c, rsc, csc);
        } else if id == TypeId::of::<f64>() {
            let (a, b, c) = (
                a.as_ptr().cast::<f64>(),
                b.as_ptr().cast::<f64>(),
                c.as_mut_ptr().cast::<f64>(),
            );
            matrixmultiply::dgemm(m, k, n, 1.0, a, rsa, csa, b, rsb, csb, 0.0, c, rsc, csc);
        } else {
            return false;
        }
    }
    true
}

/// A product counts as deep when `k ≥ DEEP·m·n`: matrixmultiply runs it on
/// one thread at 1.7 GFLOP/s (6×25 outputs, k = 50,176: LeNet's first
/// weight gradient at batch 64), `gemm` at 20.5 on two; at 2,400 outputs
/// over k = 6,400 matrixmultiply is ahead again (PERFORMANCE.md). Deep
/// products go to `gemm` whichever library the machine chose.
const DEEP: usize = 16;

/// Products of fewer multiply-adds than this run on the calling thread
/// (about 10 µs of work: handing a piece to a pool thread costs a few).
const MIN_SPLIT_MACS: usize = 1 << 20;

/// `c = op(A)·op(B)` by the `gemm` crate on all the pool's threads, for
/// `T` = f32 or f64: in pieces ([`in_pieces`]), except deep products,
/// whose output is too small to cut: they keep the crate's split, which
/// cuts k.
fn by_gemm_crate<T: Float + Send + Sync + 'static>(
    m: usize,
    n: usize,
    k: usize,
    (a, sa): (&[T], (isize, isize)),
    (b, sb): (&[T], (isize, isize)),
    c: &mut [T],
    epilogue: Option<Epilogue<'_, T>>,
) -> bool {
    let id = TypeId::of::<T>();
    if id != TypeId::of::<f32>() && id != TypeId::of::<f64>() {
        return false;
    }
    let threads = rayon::current_num_threads();
    if k >= DEEP * m * n && threads > 1 {
        let (a_at, b_at, c_at) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
        let par = gemm::Parallelism::Rayon(threads);
        // SAFETY: as for a piece in `in_pieces`, with the whole of C.
        unsafe {
            gemm_raw(
                (m, n, k),
                (a_at, sa),
                (b_at, sb),
                (c_at, (n as isize, 1)),
                false,
                par,
            )
        };
        if let Some(epilogue) = epilogue {
            each_row(n, c, epilogue);
        }
        return true;
    }
    in_pieces(
        (m, n, k),
        (a, sa),
        (b, sb),
        c,
        epilogue,
        Library::for_gemm_crate::<T>((m, n, k), sb),
    );
    true
}

/// A block of C and its depth: `(rows, columns, k)`.
pub(crate) type Block = (usize, usize, usize);
/// Where a block of an operand starts, and the operand's `(row stride,
/// column stride)`.
pub(crate) type At<P> = (P, (isize, isize));

/// The single-threaded call that computes one piece of C.
#[derive(Clone, Copy)]
pub(crate) enum Library {
    /// The `gemm` crate's kernels; `copy_b`: a transposed f32 op(B) is
    /// first copied into rows ([`copies_b`]), decided once for all of a
    /// product's pieces ([`Library::fitted`]).
    GemmCrate { copy_b: bool },
    /// `narrow.rs`'s kernel: `f32` only, for a product it [`runs`](super::narrow::runs).
    Narrow,
    /// `packed.rs`'s kernel: `f32` only, for a product it [`runs`](super::packed::runs).
    Packed,
    /// OpenBLAS, at the leading dimensions of the whole operands.
    #[cfg(feature = "openblas")]
    OpenBlas {
        transposes: (bool, bool),
        leading: (usize, usize),
    },
}

impl Library {
    /// The `gemm` crate's kernels, or for `T` = f32 the narrow kernel where
    /// it runs the product (a side of at most 16, AVX-512) or the packed one
    /// (AVX2 without AVX-512, C from 16 × 16 to 2¹⁹ elements).
    fn for_gemm_crate<T: 'static>(mnk: Block, sb: (isize, isize)) -> Self {
        let f32 = TypeId::of::<T>() == TypeId::of::<f32>();
        if f32 && super::narrow::runs(mnk, sb) {
            Library::Narrow
        } else if f32 && super::packed::runs(mnk) {
            Library::Packed
        } else {
            Library::GemmCrate { copy_b: false }
        }
    }

    /// The library for the pieces of a product whose largest piece is
    /// `block`: whether the `gemm` crate copies op(B) is decided here, once,
    /// so that every piece, whatever its length, sums the same way.
    fn fitted<T: 'static>(self, block: Block, sb: (isize, isize)) -> Self {
        match self {
            Library::GemmCrate { .. } => Library::GemmCrate {
                copy_b: copies_b::<T>(block, sb),
            },
            other => other,
        }
    }

    /// `c = op(A)·op(B)` for one block, on the calling thread.
    ///
    /// # Safety
    /// `T` is f32 or f64 (f32 for [`Library::Narrow`]); each operand's
    /// block lies inside its allocation at its strides; C's rows are
    /// contiguous, and no other thread touches C's block meanwhile.
    unsafe fn product<T: Float + 'static>(
        self,
        block: Block,
        a: At<*const T>,
        b: At<*const T>,
        c: At<*mut T>,
    ) {
        // SAFETY: the caller's contract.
        unsafe {
            match self {
                Library::GemmCrate { copy_b } => gemm_crate(block, a, b, c, copy_b),
                Library::Narrow => super::narrow::product(
                    block,
                    (a.0.cast(), a.1),
                    (b.0.cast(), b.1),
                    (c.0.cast(), c.1),
                ),
                Library::Packed => super::packed::product(
                    block,
                    (a.0.cast(), a.1),
                    (b.0.cast(), b.1),
                    (c.0.cast(), c.1),
                ),
                #[cfg(feature = "openblas")]
                Library::OpenBlas {
                    transposes,
                    leading,
                } => openblas::block(block, (a.0, b.0, c.0), transposes, leading, c.1 .0),
            }
        }
    }
}

/// `c = op(A)·op(B)` on all the pool's threads: C is cut along its longer
/// side into one piece per thread ([`Cut`]), each as long as its thread's
/// recent speed predicts ([`balanced`]), and `epilogue` runs on each
/// piece's rows right after it, on the same core. A product under
/// [`MIN_SPLIT_MACS`] (or any, with one thread) runs whole on the calling
/// thread, its epilogue then split over the cores. The pieces' lengths
/// follow the machine's load only where every cut allowed sums each
/// element of C alike ([`Cut::least_balanced_piece`]); elsewhere they are
/// equal, the same cut on every step.
///
/// On the training step's shapes the `gemm` crate ran mostly 1.1–1.3×
/// faster cut this way than by its own split (`Parallelism::Rayon`) at
/// batch 256, and 1.4–2.1× at batch 64 (PERFORMANCE.md, "The CPU backend").
/// Cut by speed rather than in equal pieces, the peer network's step was
/// the faster in 156 of 240 pairs of 10-step blocks alternated with the
/// equal cut (four runs; the equal cut's median step took 0.987–1.061×
/// the balanced one's) on a 2-vCPU AMD EPYC whose cores' speeds drifted
/// apart; at batch 64 in 77 of 120 (PERFORMANCE.md, "an AMD EPYC with
/// AVX2 only").
fn in_pieces<T: Float + Send + Sync + 'static>(
    mnk: Block,
    a: (&[T], (isize, isize)),
    b: (&[T], (isize, isize)),
    c: &mut [T],
    epilogue: Option<Epilogue<'_, T>>,
    library: Library,
) {
    let pieces = pieces_for(mnk, 1.0);
    if pieces == 1 {
        let library = library.fitted::<T>(mnk, b.1);
        // SAFETY: the caller asserted that the slices hold op(A), op(B)
        // and C (borrowed mutably), and chose a library that suits T.
        unsafe {
            library.product(
                mnk,
                (a.0.as_ptr(), a.1),
                (b.0.as_ptr(), b.1),
                (c.as_mut_ptr(), (mnk.1 as isize, 1)),
            )
        };
        if let Some(epilogue) = epilogue {
            each_row(mnk.1, c, epilogue);
        }
        return;
    }
    let cut = Cut::new(mnk, a, b, c, epilogue, library, pieces);
    match cut.least_balanced_piece() {
        Some(least) => balanced(cut.len(), (LANES, least), &|range| cut.run_range(range)),
        None => for_each_piece(cut.count, &|p| cut.run(p)),
    }
}

/// How many pieces a product of `mnk` gets when it is `fraction` of a
/// job's multiply-adds: that fraction of the pool's threads (at least one),
/// and one under [`MIN_SPLIT_MACS`].
fn pieces_for((m, n, k): Block, fraction: f64) -> usize {
    if m * n * k < MIN_SPLIT_MACS {
        return 1;
    }
    let threads = rayon::current_num_threads() as f64;
    ((threads * fraction).round() as usize).max(1)
}

/// What a piece's rows or columns of C come in multiples of: 16 floats,
/// one AVX-512 register.
const LANES: usize = 16;

/// A product cut along C's longer side into pieces of whole [`LANES`]
/// (but for the last), each a single-threaded [`Library`]
/// call on a block inside the operands, then the epilogue on the piece's
/// rows while they are in cache. Built from borrowed slices, it can run
/// as part of any pool job: its pieces touch disjoint blocks of C.
struct Cut<'a, T> {
    mnk: Block,
    a: At<Shared<*const T>>,
    b: At<Shared<*const T>>,
    c: Shared<*mut T>,
    epilogue: Option<Epilogue<'a, T>>,
    library: Library,
    along_n: bool,
    /// Rows or columns of C a piece holds (the last may hold fewer).
    piece: usize,
    /// Pieces: at most the number asked for, at least one.
    count: usize,
}

impl<'a, T: Float + 'static> Cut<'a, T> {
    fn new(
        (m, n, k): Block,
        (a, sa): (&'a [T], (isize, isize)),
        (b, sb): (&'a [T], (isize, isize)),
        c: &'a mut [T],
        epilogue: Option<Epilogue<'a, T>>,
        library: Library,
        pieces: usize,
    ) -> Self {
        let along_n = n >= m;
        let len = if along_n { n } else { m };
        let piece = len.div_ceil(pieces.max(1)).next_multiple_of(LANES).max(1);
        let largest = if along_n {
            (m, piece.min(n), k)
        } else {
            (piece.min(m), n, k)
        };
        let library = library.fitted::<T>(largest, sb);
        Cut {
            mnk: (m, n, k),
            a: (Shared(a.as_ptr()), sa),
            b: (Shared(b.as_ptr()), sb),
            c: Shared(c.as_mut_ptr()),
            epilogue,
            library,
            along_n,
            piece,
            count: len.div_ceil(piece).max(1),
        }
    }

    /// Rows or columns of C, whichever side it is cut along.
    fn len(&self) -> usize {
        if self.along_n {
            self.mnk.1
        } else {
            self.mnk.0
        }
    }

    /// The least piece length at which [`balanced`] may cut this product
    /// anywhere (at multiples of [`LANES`]) and each element of C still
    /// be summed as in any other cut; `None` where only the even cut keeps
    /// the sums (then it is the same on every step). The `gemm` crate
    /// sums differently for pieces it takes special paths for: one column
    /// (`gemv`), at most 256 elements of C from a row-major op(A) and a
    /// column-major op(B) (dot products, k in blocks of 1,024), and at
    /// most 64 × 64 (k in blocks of 512 rather than evenly): so only cuts
    /// along n, with at least 4 rows, and pieces over 64 columns where
    /// there are 64 rows or fewer. OpenBLAS's small-matrix kernels are not
    /// known well enough: its products keep the even cut. The packed
    /// kernel sums alike in any cut along n.
    fn least_balanced_piece(&self) -> Option<usize> {
        let (m, n, _) = self.mnk;
        if matches!(self.library, Library::Packed) {
            return (self.along_n && n >= 2 * LANES).then_some(LANES);
        }
        let sums_alike = matches!(self.library, Library::GemmCrate { .. } | Library::Narrow);
        let least = if m > 64 { LANES } else { 5 * LANES };
        (self.along_n && sums_alike && m >= 4 && n >= 2 * least).then_some(least)
    }

    /// Piece `p` (`p < count`).
    fn run(&self, p: usize) {
        let start = p * self.piece;
        self.run_range(start..(start + self.piece).min(self.len()));
    }

    /// The piece of C's rows or columns `range` (inside `0..len()`).
    fn run_range(&self, range: Range<usize>) {
        let (m, n, k) = self.mnk;
        let (start, width) = (range.start, range.len());
        let ((a, sa), (b, sb)) = ((self.a.0.get(), self.a.1), (self.b.0.get(), self.b.1));
        // SAFETY: `new` borrowed the slices for 'a, whose lengths the
        // caller asserted hold op(A), op(B) and C; each piece reads a block
        // of rows of op(A) (or columns of op(B)) and writes the same block
        // of C, which no other piece writes and neither input aliases (`c`
        // was borrowed mutably). The library suits T (`Library::product`).
        unsafe {
            let (rows, cols) = if self.along_n {
                (0..m, start..start + width)
            } else {
                (start..start + width, 0..n)
            };
            let a = a.offset(rows.start as isize * sa.0);
            let b = b.offset(cols.start as isize * sb.1);
            let corner = self.c.get().add(rows.start * n + cols.start);
            let block = (rows.len(), cols.len(), k);
            self.library
                .product(block, (a, sa), (b, sb), (corner, (n as isize, 1)));
            // The piece's rows of C, still in this core's cache.
            if let Some(epilogue) = self.epilogue {
                for (r, i) in rows.enumerate() {
                    let row = corner.add(r * n);
                    epilogue(
                        i,
                        cols.start,
                        std::slice::from_raw_parts_mut(row, cols.len()),
                    );
                }
            }
        }
    }
}

/// A product for [`jointly`]: `c = op(A)·op(B)` with `op(A)` of shape
/// `m × k`, then `epilogue` over C's rows, as [`gemm`] takes it.
pub(crate) struct Product<'a, T> {
    pub mnk: Block,
    pub a: (&'a [T], bool),
    pub b: (&'a [T], bool),
    pub c: &'a mut [T],
    pub epilogue: Option<Epilogue<'a, T>>,
}

/// Runs `products` and `extra(i)` for `i` in `0..extra.0` as one job on
/// the pool: one wait for them all instead of one each, and with several,
/// fewer, larger pieces. Each product gets its share of the threads by
/// multiply-adds (at least one piece); with two threads and two products
/// of equal size, each runs whole on one core, so neither packs the
/// other's operand (PERFORMANCE.md). The products' pieces come first, the
/// extra work after, for whichever thread finishes first.
///
/// Returns false, touching nothing, where this machine's library does not
/// run products in pieces on the pool (matrixmultiply; a `T` other than
/// f32 and f64; a deep product): the caller then runs them one by one.
/// Each element of C is summed as [`gemm`] would sum it.
pub(crate) fn jointly<T: Float + Send + Sync + 'static>(
    products: Vec<Product<'_, T>>,
    extra: (usize, &(dyn Fn(usize) + Sync)),
) -> bool {
    jointly_with(cpu_gemm(), products, extra)
}

/// [`jointly`] by the library `engine`.
pub(crate) fn jointly_with<T: Float + Send + Sync + 'static>(
    engine: CpuGemm,
    products: Vec<Product<'_, T>>,
    extra: (usize, &(dyn Fn(usize) + Sync)),
) -> bool {
    let id = TypeId::of::<T>();
    if id != TypeId::of::<f32>() && id != TypeId::of::<f64>() {
        return false;
    }
    let deep = |&(m, n, k): &Block| k >= DEEP * m * n;
    let pieceable = match engine {
        CpuGemm::Gemm => true,
        #[cfg(feature = "openblas")]
        CpuGemm::OpenBlas => true,
        _ => false,
    };
    if !pieceable || products.iter().any(|p| deep(&p.mnk)) {
        return false;
    }
    let macs = |&(m, n, k): &Block| (m * n * k) as f64;
    let total: f64 = products.iter().map(|p| macs(&p.mnk)).sum::<f64>().max(1.0);
    let cuts: Vec<Cut<'_, T>> = products
        .into_iter()
        .map(|p| {
            let (m, n, k) = p.mnk;
            assert!(p.a.0.len() == m * k && p.b.0.len() == k * n && p.c.len() == m * n);
            let sa = strides(m, k, p.a.1);
            let sb = strides(k, n, p.b.1);
            // OpenBLAS sums a piece differently by its size (on an AMD
            // EPYC, the backward products of a 144-160 layer at batch 96
            // differed run whole and in two pieces), so its products are
            // cut as `gemm` cuts them alone.
            let (library, fraction) = match engine {
                #[cfg(feature = "openblas")]
                CpuGemm::OpenBlas => (openblas::library(p.mnk, p.a.1, p.b.1), 1.0),
                _ => (
                    Library::for_gemm_crate::<T>(p.mnk, sb),
                    macs(&p.mnk) / total,
                ),
            };
            let pieces = pieces_for(p.mnk, fraction);
            Cut::new(
                p.mnk,
                (p.a.0, sa),
                (p.b.0, sb),
                p.c,
                p.epilogue,
                library,
                pieces,
            )
        })
        .collect();
    let (extra_count, extra) = extra;
    let count = cuts.iter().map(|c| c.count).sum::<usize>() + extra_count;
    for_each_piece(count, &|mut p| {
        for cut in &cuts {
            if p < cut.count {
                return cut.run(p);
            }
            p -= cut.count;
        }
        extra(p)
    });
    true
}

/// Whether the `gemm` crate's product of `block` should first copy a
/// transposed f32 op(B) (`Wᵀ`, at strides `(rsb, csb)`) into rows: where
/// [`transpose::pays`].
fn copies_b<T: 'static>((m, n, k): Block, (rsb, csb): (isize, isize)) -> bool {
    TypeId::of::<T>() == TypeId::of::<f32>()
        && rsb == 1
        && csb != 1
        && n > 1
        && transpose::pays(m, (k, n), csb)
}

/// The `gemm` crate's `c = op(A)·op(B)` on the calling thread. With
/// `copy_b` ([`copies_b`]), the transposed f32 op(B) is first copied into
/// rows, in slabs of its depth, one product each.
///
/// # Safety
/// As [`gemm_raw`]; with `copy_b`, `T` is f32 and op(B) has row stride 1.
unsafe fn gemm_crate<T: Float + 'static>(
    (m, n, k): Block,
    a: At<*const T>,
    b: At<*const T>,
    c: At<*mut T>,
    copy_b: bool,
) {
    let (b, (rsb, csb)) = b;
    if !copy_b {
        // SAFETY: the caller's contract.
        return unsafe {
            gemm_raw(
                (m, n, k),
                a,
                (b, (rsb, csb)),
                c,
                false,
                gemm::Parallelism::None,
            )
        };
    }
    let (a, (rsa, csa)) = a;
    // SAFETY: T is f32; the caller's contract puts every element of op(A)
    // and op(B) inside its allocation; each slab's rows live until its
    // product returns, which adds to C after the first.
    unsafe {
        transpose::in_row_slabs((k, n), b.cast(), csb, |first, depth, slab| {
            gemm_raw(
                (m, n, depth),
                (a.offset(first as isize * csa), (rsa, csa)),
                (slab.cast::<T>(), (n as isize, 1)),
                c,
                first > 0,
                gemm::Parallelism::None,
            )
        })
    }
}

/// A pointer that [`in_pieces`]' pieces share across threads: each
/// piece touches its own block of C, and A and B are only read.
#[derive(Clone, Copy)]
struct Shared<P>(P);
impl<P: Copy> Shared<P> {
    /// The pointer (a method, so that a closure captures the whole
    /// `Shared` rather than the bare pointer field).
    fn get(self) -> P {
        self.0
    }
}

// SAFETY: see `Shared`: the pieces' accesses do not overlap in writes.
unsafe impl<P> Send for Shared<P> {}
// SAFETY: as above.
unsafe impl<P> Sync for Shared<P> {}

/// The `gemm` crate's `c = op(A)·op(B)` (`c += …` when `accumulate`), every
/// operand a pointer and its `(row stride, column stride)`.
///
/// # Safety
/// `T` is f32 or f64; each operand's `m × k`, `k × n` and `m × n` elements
/// at its strides lie inside one allocation; `c` aliases neither input, and
/// no other thread touches its elements meanwhile.
unsafe fn gemm_raw<T: Float + 'static>(
    (m, n, k): (usize, usize, usize),
    (a, (rsa, csa)): (*const T, (isize, isize)),
    (b, (rsb, csb)): (*const T, (isize, isize)),
    (c, (rsc, csc)): (*mut T, (isize, isize)),
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    // SAFETY: the caller's contract.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c,
            csc,
            rsc,
            accumulate,
            a,
            csa,
            rsa,
            b,
            csb,
            rsb,
            T::one(),
            T::one(),
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// A matrix operand of [`gemm_on_thread`]: its elements and
/// `(row stride, column stride)`.
pub(crate) type Strided<'a, T> = (&'a [T], (usize, usize));

/// Whether a `rows × cols` matrix at `strides` lies inside `len` elements.
fn fits(len: usize, rows: usize, cols: usize, (rs, cs): (usize, usize)) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
}

/// `c = op(A)·op(B)`, or `c += op(A)·op(B)` when `accumulate`, with
/// `(m, n, k)` and every operand given by its strides, on the calling
/// thread only: for work already split across the cores (the CPU
/// convolution runs one sample per task). The `gemm` crate's kernels
/// (AVX-512 where the CPU has it) for `f32` and `f64`, the textbook loop
/// for any other `T`.
pub(crate) fn gemm_on_thread<T: Float + 'static>(
    (m, n, k): (usize, usize, usize),
    (a, sa): Strided<'_, T>,
    (b, sb): Strided<'_, T>,
    (c, sc): (&mut [T], (usize, usize)),
    accumulate: bool,
) {
    assert!(fits(a.len(), m, k, sa) && fits(b.len(), k, n, sb) && fits(c.len(), m, n, sc));
    let id = TypeId::of::<T>();
    if id != TypeId::of::<f32>() && id != TypeId::of::<f64>() {
        for i in 0..m {
            for j in 0..n {
                let dot = (0..k).fold(T::zero(), |s, l| {
                    s + a[i * sa.0 + l * sa.1] * b[l * sb.0 + j * sb.1]
                });
                let at = i * sc.0 + j * sc.1;
                c[at] = if accumulate { c[at] + dot } else { dot };
            }
        }
        return;
    }
    let s = |(r, c): (usize, usize)| (r as isize, c as isize);
    // SAFETY: T is f32 or f64, which the crate dispatches on; every
    // operand's reach was asserted above; `c` is borrowed mutably, so it
    // aliases neither input; it is read only when accumulating.
    unsafe {
        gemm_raw(
            (m, n, k),
            (a.as_ptr(), s(sa)),
            (b.as_ptr(), s(sb)),
            (c.as_mut_ptr(), s(sc)),
            accumulate,
            gemm::Parallelism::None,
        );
    }
}

/// The products by the system's OpenBLAS (feature `openblas`), through its
/// CBLAS interface, cut into pieces like the `gemm` crate's.
#[cfg(feature = "openblas")]
pub(crate) mod openblas {
    use super::{in_pieces, Block, Epilogue, Library};
    use cblas_sys::{cblas_dgemm, cblas_sgemm, CBLAS_LAYOUT, CBLAS_TRANSPOSE};
    use num_traits::Float;
    use std::any::TypeId;
    use std::sync::Once;

    #[link(name = "openblas")]
    unsafe extern "C" {
        fn openblas_set_num_threads(threads: std::ffi::c_int);
        fn openblas_get_corename() -> *const std::ffi::c_char;
    }

    /// The kernels OpenBLAS picked for this CPU (`SkylakeX`, `Haswell`...;
    /// `Prescott`, its SSE3 ones, when it does not know the CPU, as
    /// Debian's 0.3.21 does not know an Emerald Rapids Xeon: set
    /// `OPENBLAS_CORETYPE` then).
    pub(crate) fn core_name() -> String {
        // SAFETY: OpenBLAS returns a static NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(openblas_get_corename()) }
            .to_string_lossy()
            .into_owned()
    }

    /// `c = op(A)·op(B)` for `T` = f32 or f64 (false, touching nothing,
    /// otherwise), each piece one single-threaded OpenBLAS call: the pool's
    /// threads supply the parallelism, as OpenBLAS's own would otherwise
    /// spin on the same cores after each call.
    pub(crate) fn product<T: Float + Send + Sync + 'static>(
        m: usize,
        n: usize,
        k: usize,
        (a, b): (&[T], &[T]),
        ((ta, tb), sa, sb): ((bool, bool), (isize, isize), (isize, isize)),
        c: &mut [T],
        epilogue: Option<Epilogue<'_, T>>,
    ) -> bool {
        let id = TypeId::of::<T>();
        if id != TypeId::of::<f64>() && id != TypeId::of::<f32>() {
            return false;
        }
        let library = library((m, n, k), ta, tb);
        in_pieces((m, n, k), (a, sa), (b, sb), c, epilogue, library);
        true
    }

    /// The pieces' calls for the product `mnk` of op(A), op(B) stored
    /// transposed as `ta`, `tb`: the leading dimension is the stored
    /// matrix's row length, which a piece's offset does not change.
    pub(crate) fn library((m, n, k): Block, ta: bool, tb: bool) -> Library {
        static ONE_THREAD: Once = Once::new();
        // SAFETY: sets a global thread count; called before any product.
        ONE_THREAD.call_once(|| unsafe { openblas_set_num_threads(1) });
        Library::OpenBlas {
            transposes: (ta, tb),
            leading: (if ta { m } else { k }, if tb { k } else { n }),
        }
    }

    /// One piece: `rows × cols` of C at depth `k`, by `cblas_sgemm` or
    /// `cblas_dgemm` as `T` is.
    ///
    /// # Safety
    /// `T` is f32 or f64; the blocks lie inside the operands at the
    /// leading dimensions `(lda, ldb)` and `ldc`; no other thread touches
    /// C's block meanwhile.
    pub(crate) unsafe fn block<T: 'static>(
        (rows, cols, k): Block,
        (a, b, c): (*const T, *const T, *mut T),
        (ta, tb): (bool, bool),
        (lda, ldb): (usize, usize),
        ldc: isize,
    ) {
        let op = |t| {
            if t {
                CBLAS_TRANSPOSE::CblasTrans
            } else {
                CBLAS_TRANSPOSE::CblasNoTrans
            }
        };
        // (BLAS wants every leading dimension ≥ 1, even for an empty matrix.)
        let [rows, cols, k, lda, ldb, ldc] =
            [rows, cols, k, lda.max(1), ldb.max(1), (ldc as usize).max(1)]
                .map(|v| v.try_into().expect("BLAS dimensions fit in an int"));
        let layout = CBLAS_LAYOUT::CblasRowMajor;
        // One call per scalar type: the same arguments, cast.
        macro_rules! call {
            ($gemm:ident, $t:ty) => {
                $gemm(
                    layout,
                    op(ta),
                    op(tb),
                    rows,
                    cols,
                    k,
                    1.0,
                    a.cast::<$t>(),
                    lda,
                    b.cast::<$t>(),
                    ldb,
                    0.0,
                    c.cast::<$t>(),
                    ldc,
                )
            };
        }
        // SAFETY: T is f64 (or f32) in its branch, so the casts are
        // identities; the caller's contract covers the rest.
        unsafe {
            if TypeId::of::<T>() == TypeId::of::<f64>() {
                call!(cblas_dgemm, f64)
            } else {
                call!(cblas_sgemm, f32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::random;

    #[test]
    fn a_product_gives_the_same_bits_wherever_balanced_may_cut_it() {
        // `balanced` cuts C where the threads' recent speeds say, so the
        // cut moves from one step to the next. Where it may
        // (`least_balanced_piece`), every cut must give the bits of the
        // even cut, epilogue included (it marks each element with its row
        // and column, so a piece at the wrong offset shows): `X·Wᵀ` with
        // more than 64 rows (pieces of 16 columns and more), with 64 rows
        // and fewer (pieces over 64 columns, k past one block of 512), and
        // the input gradient `δ·W`. Cut along m (more rows than columns,
        // the output layer's `X·W₃ᵀ`), or at 3 rows, it may not.
        let mark = |i: usize, j0: usize, row: &mut [f32]| {
            for (j, v) in row.iter_mut().enumerate() {
                *v += (i * 1000 + j0 + j) as f32;
            }
        };
        for ((m, n, k), (ta, tb), balances) in [
            ((96, 200, 512), (false, true), true),
            ((64, 200, 784), (false, true), true),
            ((7, 400, 600), (false, true), true),
            ((80, 176, 77), (false, false), true),
            ((256, 10, 512), (false, true), false),
            ((3, 400, 600), (false, true), false),
        ] {
            let (a, b) = (random(1, m * k), random(2, k * n));
            let (sa, sb) = (strides(m, k, ta), strides(k, n, tb));
            let library = Library::for_gemm_crate::<f32>((m, n, k), sb);
            let cut_at = |ends: &[usize]| {
                let mut c = vec![0.0f32; m * n];
                let cut = Cut::new(
                    (m, n, k),
                    (&a, sa),
                    (&b, sb),
                    &mut c,
                    Some(&mark),
                    library,
                    2,
                );
                let mut start = 0;
                for &end in ends.iter().chain([cut.len()].iter()) {
                    cut.run_range(start..end);
                    start = end;
                }
                c
            };
            let mut c = vec![0.0f32; m * n];
            let least = Cut::new((m, n, k), (&a, sa), (&b, sb), &mut c, None, library, 2)
                .least_balanced_piece();
            assert_eq!(least.is_some(), balances, "{m}x{n}x{k}");
            let Some(least) = least else { continue };
            let even = n.div_ceil(2).next_multiple_of(LANES);
            let want = cut_at(&[even]);
            for end in (least..=n - least).step_by(LANES) {
                assert!(cut_at(&[end]) == want, "{m}x{n}x{k} cut at {end}");
            }
            // Three pieces, as on three threads.
            if n >= 3 * least {
                assert!(cut_at(&[least, 2 * least]) == want, "{m}x{n}x{k} in three");
            }
        }
    }
}
