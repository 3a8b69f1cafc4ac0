//! The CPU reference of batch normalisation.

use crate::backend::cpu::cast;
use crate::backend::CpuTensor;
use crate::Result;
use num_traits::Float;

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
    for j in 0..c {
        let col = || (0..n).map(|i| x.data[i * c + j]);
        let mean = col().fold(T::zero(), |s, v| s + v) / nt;
        let ss = col().fold(T::zero(), |s, v| s + (v - mean) * (v - mean));
        let inv_std = T::one() / (ss / nt + e).sqrt();
        saved.data[j] = mean;
        saved.data[c + j] = inv_std;
        running_mean.data[j] = (T::one() - m) * running_mean.data[j] + m * mean;
        running_var.data[j] = (T::one() - m) * running_var.data[j] + m * ss / cast(n as f64 - 1.0);
        for i in 0..n {
            out.data[i * c + j] =
                gamma.data[j] * (x.data[i * c + j] - mean) * inv_std + beta.data[j];
        }
    }
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
    for (i, (o, &v)) in out.data.iter_mut().zip(&x.data).enumerate() {
        let j = i % c;
        *o = gamma.data[j] * (v - running_mean.data[j]) / (running_var.data[j] + cast(eps)).sqrt()
            + beta.data[j];
    }
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
    for j in 0..c {
        let (mean, inv_std) = (saved.data[j], saved.data[c + j]);
        let xhat = |i: usize| (x.data[i * c + j] - mean) * inv_std;
        let sg = (0..n).fold(T::zero(), |s, i| s + grad_out.data[i * c + j]);
        let sgx = (0..n).fold(T::zero(), |s, i| s + grad_out.data[i * c + j] * xhat(i));
        grad_gamma.data[j] = sgx;
        grad_beta.data[j] = sg;
        let k = gamma.data[j] * inv_std / nt;
        for i in 0..n {
            grad_in.data[i * c + j] = k * (nt * grad_out.data[i * c + j] - sg - xhat(i) * sgx);
        }
    }
    Ok(())
}
