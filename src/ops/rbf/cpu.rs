//! The CPU reference of the RBF units: the formulas of `mod.rs`, loop by loop.

use crate::backend::cpu::cast;
use crate::backend::CpuTensor;
use num_traits::Float;

/// `dist[n, j] = Σₖ (x − c)²`, `out[n, j] = exp(−βⱼ·dist)`.
pub(crate) fn forward<T: Float>(
    x: &CpuTensor<T>,
    c: &CpuTensor<T>,
    beta: &CpuTensor<T>,
    out: &mut CpuTensor<T>,
    dist: &mut CpuTensor<T>,
) {
    let (k, m) = (x.cols, c.rows);
    for (n, row) in x.data.chunks(k.max(1)).enumerate().take(x.rows) {
        for j in 0..m {
            let centre = &c.data[j * k..(j + 1) * k];
            let d = row
                .iter()
                .zip(centre)
                .fold(T::zero(), |s, (&a, &b)| s + (a - b) * (a - b));
            dist.data[n * m + j] = d;
            out.data[n * m + j] = (-beta.data[j] * d).exp();
        }
    }
}

/// The gradients with respect to the centres, the widths and (when
/// `grad_x` is given) the input, from `g` at the output.
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward<T: Float>(
    x: &CpuTensor<T>,
    c: &CpuTensor<T>,
    beta: &CpuTensor<T>,
    dist: &CpuTensor<T>,
    g: &CpuTensor<T>,
    grad_c: &mut CpuTensor<T>,
    grad_beta: &mut CpuTensor<T>,
    grad_x: Option<&mut CpuTensor<T>>,
) {
    let (rows, k, m) = (x.rows, x.cols, c.rows);
    let two: T = cast(2.0);
    // h recomputed from the kept distance exactly as the forward pass made it.
    let h = |i: usize| (-beta.data[i % m] * dist.data[i]).exp();
    let a = |n: usize, j: usize| -two * beta.data[j] * g.data[n * m + j] * h(n * m + j);
    for j in 0..m {
        for kk in 0..k {
            let s = (0..rows).fold(T::zero(), |s, n| {
                s + a(n, j) * (x.data[n * k + kk] - c.data[j * k + kk])
            });
            grad_c.data[j * k + kk] = -s;
        }
        grad_beta.data[j] = -(0..rows).fold(T::zero(), |s, n| {
            let i = n * m + j;
            s + g.data[i] * h(i) * dist.data[i]
        });
    }
    if let Some(gx) = grad_x {
        for n in 0..rows {
            for kk in 0..k {
                gx.data[n * k + kk] = (0..m).fold(T::zero(), |s, j| {
                    s + a(n, j) * (x.data[n * k + kk] - c.data[j * k + kk])
                });
            }
        }
    }
}
