//! The CPU reference of the reductions.

use super::Reduce;
use crate::backend::cpu::cast;
use crate::backend::{CpuIndex, CpuTensor};
use crate::Result;
use num_traits::Float;

pub(crate) fn sum_rows<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    x: &CpuTensor<T>,
    out: &mut CpuTensor<T>,
) -> Result<()> {
    column_sums(&x.data, x.cols, 0, &mut out.data);
    Ok(())
}

/// `out[j] = Σᵢ x[i, first + j]` over the rows of the row-major `x` with
/// `cols` columns, each summed down the rows in order: the column sums of
/// [`sum_rows`], and of any block of its columns (the dense backward pass
/// sums its bias gradient in blocks on several threads, to the same bits).
pub(crate) fn column_sums<T: Float>(x: &[T], cols: usize, first: usize, out: &mut [T]) {
    out.iter_mut().for_each(|v| *v = T::zero());
    for row in x.chunks(cols) {
        for (o, &v) in out.iter_mut().zip(&row[first..]) {
            *o = *o + v;
        }
    }
}

pub(crate) fn sum_cols<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    x: &CpuTensor<T>,
    out: &mut CpuTensor<T>,
) -> Result<()> {
    for (o, row) in out.data.iter_mut().zip(x.data.chunks(x.cols)) {
        *o = row.iter().fold(T::zero(), |s, &v| s + v);
    }
    Ok(())
}

pub(crate) fn reduce<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    op: Reduce,
    x: &CpuTensor<T>,
    out: &mut CpuTensor<T>,
) -> Result<()> {
    let sum = |f: fn(T) -> T| x.data.iter().fold(T::zero(), |s, &v| s + f(v));
    // NaN propagates, as torch.max does.
    let max = |f: fn(T) -> T| {
        x.data.iter().fold(T::neg_infinity(), |m, &v| {
            if v.is_nan() || m.is_nan() {
                T::nan()
            } else {
                m.max(f(v))
            }
        })
    };
    out.data[0] = match op {
        Reduce::Sum => sum(|v| v),
        Reduce::Mean => sum(|v| v) / cast(x.data.len() as f64),
        Reduce::Max => max(|v| v),
        Reduce::AbsMax => max(T::abs),
        Reduce::AbsSum => sum(T::abs),
    };
    Ok(())
}

pub(crate) fn count_top_k<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    pred: &CpuTensor<T>,
    labels: &CpuIndex,
    k: usize,
    correct: &mut CpuTensor<T>,
) -> Result<()> {
    let c = pred.cols;
    let hits = pred.data.chunks(c).zip(&labels.data).filter(|(row, &y)| {
        let score = row[y as usize];
        row.iter().filter(|&&v| v > score).count() < k
    });
    correct.data[0] = correct.data[0] + cast(hits.count() as f64);
    Ok(())
}
