//! The CPU kernel of dropout.

use super::{keep_keyed, DropoutMask};
use crate::backend::cpu::cast;
use crate::backend::par::split;
use crate::backend::CpuTensor;
use crate::ops::random;
use crate::Result;
use num_traits::Float;

pub(crate) fn dropout<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    x: &CpuTensor<T>,
    out: &mut CpuTensor<T>,
    mask: &DropoutMask,
) -> Result<()> {
    // Multiply by the reciprocal rounded once, as the GPU and PyTorch do.
    let scale = T::one() / (T::one() - cast::<T>(mask.p as f32 as f64));
    let (n, key, p) = (
        x.data.len(),
        random::key(mask.seed, mask.step),
        mask.p as f32,
    );
    let first = mask.first as u32;
    let lanes = (out.data.as_mut_slice(), x.data.as_slice(), 0..n);
    split(
        n,
        1,
        lanes,
        #[inline(always)]
        move |(o, x, at): (&mut [T], &[T], _)| {
            for ((o, &v), i) in o.iter_mut().zip(x).zip(at) {
                // Scaled whether kept or not, so that the mask picks by a
                // select: a branch on a random mask is often mispredicted.
                let scaled = v * scale;
                *o = if keep_keyed(key, first.wrapping_add(i as u32), p) {
                    scaled
                } else {
                    T::zero()
                };
            }
        },
    );
    Ok(())
}
