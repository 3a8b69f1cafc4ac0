//! The CPU reference of batch normalisation, over `rows × C` (a feature or
//! a channel per column). Every pass walks whole rows, so it reads memory
//! in order and vectorises across the columns. The column statistics are
//! split by columns across the cores, each column summed over the rows in
//! order: the same order as a loop down each column (and as the GPU's
//! kernels), whatever the thread count.

use crate::backend::cpu::cast;
use crate::backend::pool::OnPool;
use crate::backend::CpuTensor;
use crate::Result;
use num_traits::Float;

/// Rows per task of the elementwise passes: one contiguous run per thread.
fn rows_per_task(rows: usize) -> usize {
    rows.div_ceil(rayon::current_num_threads().clamp(1, rows.max(1)))
}

/// Per column, the sum over rows (in row order) that `f` accumulates from
/// each row of `a` (and of `b` in step), `c` columns. `f` gets the
/// accumulators of a run of columns starting at `first`, and that run of
/// the row; the runs go to the cores.
fn column_sums<T: Float + Send + Sync>(
    a: &[T],
    b: &[T],
    c: usize,
    f: impl Fn(&mut [T], &[T], &[T], usize) + Sync,
) -> Vec<T> {
    let per_task = c.div_ceil(rayon::current_num_threads().clamp(1, c.max(1)));
    let mut sums = vec![T::zero(); c];
    sums.chunks_mut(per_task)
        .enumerate()
        .for_each_on_pool(|(task, acc)| {
            let first = task * per_task;
            let cols = first..first + acc.len();
            for (ra, rb) in a.chunks_exact(c).zip(b.chunks_exact(c)) {
                f(acc, &ra[cols.clone()], &rb[cols.clone()], first);
            }
        });
    sums
}

/// `out[i, j] = f(j, a[i, j], b[i, j])` over all cores, a run of rows each.
fn by_rows<T: Float + Send + Sync>(
    out: &mut [T],
    a: &[T],
    b: &[T],
    c: usize,
    f: impl Fn(usize, T, T) -> T + Sync,
) {
    let per_task = rows_per_task(a.len() / c) * c;
    out.chunks_mut(per_task)
        .zip(a.chunks(per_task).zip(b.chunks(per_task)))
        .for_each_on_pool(|(o, (a, b))| {
            for (ro, (ra, rb)) in o
                .chunks_exact_mut(c)
                .zip(a.chunks_exact(c).zip(b.chunks_exact(c)))
            {
                for (j, (v, (&x, &y))) in ro.iter_mut().zip(ra.iter().zip(rb)).enumerate() {
                    *v = f(j, x, y);
                }
            }
        });
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_train<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    x: &CpuTensor<T>,
    gamma: &CpuTensor<T>,
    beta: &CpuTensor<T>,
    running_mean: &mut CpuTensor<T>,
    running_var: &mut CpuTensor<T>,
    saved: &mut CpuTensor<T>,
    out: &mut CpuTensor<T>,
    momentum: f64,
    eps: f64,
) -> Result<()> {
    let (n, c) = (x.rows, x.cols);
    let (nt, m, e) = (cast::<T>(n as f64), cast::<T>(momentum), cast::<T>(eps));
    let xs = x.data.as_slice();
    let sums = column_sums(xs, xs, c, |acc, row, _, _| {
        acc.iter_mut().zip(row).for_each(|(s, &v)| *s = *s + v)
    });
    let mean: Vec<T> = sums.iter().map(|&s| s / nt).collect();
    let squares = column_sums(xs, xs, c, |acc, row, _, first| {
        for ((s, &v), &mu) in acc.iter_mut().zip(row).zip(&mean[first..]) {
            *s = *s + (v - mu) * (v - mu);
        }
    });
    let mut inv_stds = vec![T::zero(); c];
    for j in 0..c {
        let (mean, ss) = (mean[j], squares[j]);
        let inv_std = T::one() / (ss / nt + e).sqrt();
        saved.data[j] = mean;
        saved.data[c + j] = inv_std;
        running_mean.data[j] = (T::one() - m) * running_mean.data[j] + m * mean;
        running_var.data[j] = (T::one() - m) * running_var.data[j] + m * ss / cast(n as f64 - 1.0);
        inv_stds[j] = inv_std;
    }
    let (gamma, beta, mean) = (gamma.data.as_slice(), beta.data.as_slice(), mean.as_slice());
    by_rows(&mut out.data, xs, xs, c, |j, v, _| {
        gamma[j] * (v - mean[j]) * inv_stds[j] + beta[j]
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_eval<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    x: &CpuTensor<T>,
    gamma: &CpuTensor<T>,
    beta: &CpuTensor<T>,
    running_mean: &CpuTensor<T>,
    running_var: &CpuTensor<T>,
    out: &mut CpuTensor<T>,
    eps: f64,
) -> Result<()> {
    let c = x.cols;
    let (g, b) = (gamma.data.as_slice(), beta.data.as_slice());
    let (mean, var) = (running_mean.data.as_slice(), running_var.data.as_slice());
    by_rows(&mut out.data, &x.data, &x.data, c, |j, v, _| {
        g[j] * (v - mean[j]) / (var[j] + cast(eps)).sqrt() + b[j]
    });
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_backward<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    x: &CpuTensor<T>,
    gamma: &CpuTensor<T>,
    saved: &CpuTensor<T>,
    grad_out: &CpuTensor<T>,
    grad_in: &mut CpuTensor<T>,
    grad_gamma: &mut CpuTensor<T>,
    grad_beta: &mut CpuTensor<T>,
) -> Result<()> {
    let (n, c) = (x.rows, x.cols);
    let nt = cast::<T>(n as f64);
    let (mean, inv_std) = saved.data.split_at(c);
    let (xs, gs) = (x.data.as_slice(), grad_out.data.as_slice());
    let sg = column_sums(gs, gs, c, |acc, row, _, _| {
        acc.iter_mut().zip(row).for_each(|(s, &g)| *s = *s + g)
    });
    let sgx = column_sums(gs, xs, c, |acc, grads, row, first| {
        for (i, (s, (&g, &v))) in acc.iter_mut().zip(grads.iter().zip(row)).enumerate() {
            let j = first + i;
            *s = *s + g * ((v - mean[j]) * inv_std[j]);
        }
    });
    grad_gamma.data.copy_from_slice(&sgx);
    grad_beta.data.copy_from_slice(&sg);
    let k: Vec<T> = (0..c).map(|j| gamma.data[j] * inv_std[j] / nt).collect();
    by_rows(&mut grad_in.data, gs, xs, c, |j, g, v| {
        let xhat = (v - mean[j]) * inv_std[j];
        k[j] * (nt * g - sg[j] - xhat * sgx[j])
    });
    Ok(())
}
