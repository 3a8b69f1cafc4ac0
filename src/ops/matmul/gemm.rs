//! The fast CPU matrix product: `matrixmultiply`'s blocked, vectorised
//! sgemm/dgemm. Its row and column strides describe every transpose form, so
//! nothing is copied; the CPU backend adds bias and activation afterwards.

use std::any::TypeId;

/// Where `op(X)` lives in a row-major buffer: `(row stride, column stride)`
/// of the `rows × cols` matrix op(X), stored transposed when `transposed`.
fn strides(rows: usize, cols: usize, transposed: bool) -> (isize, isize) {
    if transposed {
        (1, rows as isize)
    } else {
        (cols as isize, 1)
    }
}

/// `c = op(A)·op(B)` with `op(A)` of shape `m × k` and `op(B)` of shape
/// `k × n`, for `T` = `f32` or `f64`. Returns false, touching nothing, for
/// any other `T`, which then needs the reference loop.
///
/// The slices must hold `m·k`, `k·n` and `m·n` elements (checked by the
/// caller's shape check; asserted here because the product reads raw pointers).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<T: 'static>(
    (m, n, k): (usize, usize, usize),
    a: &[T],
    transpose_a: bool,
    b: &[T],
    transpose_b: bool,
    c: &mut [T],
) -> bool {
    assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n);
    let (rsa, csa) = strides(m, k, transpose_a);
    let (rsb, csb) = strides(k, n, transpose_b);
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
    // identities; the strides stay inside the slices, whose lengths were
    // asserted above; `c` is borrowed mutably and does not alias `a` or `b`;
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
