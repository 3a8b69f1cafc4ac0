//! The CPU reference of the max-norm constraint, row by row.

use super::RENORM_EPS;
use crate::backend::cpu::cast;
use crate::backend::CpuTensor;
use num_traits::Float;

pub(crate) fn max_norm_rows<T: Float>(w: &mut CpuTensor<T>, max_norm: f64) {
    let cols = w.cols;
    let c: T = cast(max_norm);
    for row in w.data.chunks_exact_mut(cols) {
        let norm = row.iter().fold(T::zero(), |s, &v| s + v * v).sqrt();
        if norm > c {
            let scale = c / (norm + cast(RENORM_EPS));
            row.iter_mut().for_each(|v| *v = *v * scale);
        }
    }
}
