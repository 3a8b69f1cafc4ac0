//! The CPU kernel of Gaussian noise injection.

use super::{normal, NoiseDraw};
use crate::backend::cpu::cast;
use crate::backend::par::split;
use crate::backend::CpuTensor;
use crate::ops::random;
use num_traits::Float;

pub(crate) fn add_noise<T: Float + Send + Sync + 'static>(
    x: &CpuTensor<T>,
    out: &mut CpuTensor<T>,
    draw: &NoiseDraw,
) {
    let (n, key, first) = (
        x.data.len(),
        random::key(draw.seed, draw.step),
        draw.first as u32,
    );
    // σ rounded to f32 once, as the GPU receives it.
    let std: T = cast(draw.std as f32 as f64);
    let lanes = (out.data.as_mut_slice(), x.data.as_slice(), 0..n);
    split(
        n,
        1,
        lanes,
        #[inline(always)]
        move |(o, x, at): (&mut [T], &[T], _)| {
            for ((o, &v), i) in o.iter_mut().zip(x).zip(at) {
                let z: T = cast(normal(key, first.wrapping_add(i as u32)) as f64);
                *o = v + std * z;
            }
        },
    );
}
