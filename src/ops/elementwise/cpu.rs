//! The CPU kernels of the elementwise ops.

use crate::backend::cpu::cast;
use crate::backend::par::split;
use crate::backend::CpuTensor;
use crate::Result;
use num_traits::Float;

pub(crate) fn fill<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    t: &mut CpuTensor<T>,
    value: f64,
) -> Result<()> {
    t.data.iter_mut().for_each(|v| *v = cast(value));
    Ok(())
}

pub(crate) fn scale<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    t: &mut CpuTensor<T>,
    alpha: f64,
) -> Result<()> {
    let a: T = cast(alpha);
    t.data.iter_mut().for_each(|v| *v = *v * a);
    Ok(())
}

pub(crate) fn axpy<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    alpha: f64,
    x: &CpuTensor<T>,
    y: &mut CpuTensor<T>,
) -> Result<()> {
    let a: T = cast(alpha);
    let lanes = (y.data.as_mut_slice(), x.data.as_slice());
    split(
        x.data.len(),
        1,
        lanes,
        #[inline(always)]
        move |(y, x): (&mut [T], &[T])| {
            for (yv, &xv) in y.iter_mut().zip(x) {
                *yv = a * xv + *yv;
            }
        },
    );
    Ok(())
}
