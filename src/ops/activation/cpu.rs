//! The CPU kernels of the activations: the formulas of `mod.rs` over all
//! cores, with the variant fixed by a type where that lets the loop
//! vectorise.

use super::Activation;
use crate::backend::par::split;
use crate::backend::{CpuTensor, Shaped};
use num_traits::Float;

/// [`Activation`]'s formulas with the variant fixed by a type. A loop that
/// is handed an `Activation` value (in a closure, to a pool thread) reads the
/// variant back per element and does not vectorise; with the variant in the
/// type, the match in `apply` and `derivative` folds away.
pub(crate) mod fixed {
    use super::Activation;
    use num_traits::Float;

    pub(crate) trait Act: Copy + Sync {
        fn apply<T: Float>(self, x: T) -> T;
        fn derivative<T: Float>(self, x: T) -> T;
    }

    /// Implements [`Act`] on `$ty` by building the variant `$variant` from it.
    macro_rules! fixed_act {
        ($ty:ty, |$s:ident| $variant:expr) => {
            impl Act for $ty {
                fn apply<T: Float>(self, x: T) -> T {
                    let $s = self;
                    $variant.apply(x)
                }
                fn derivative<T: Float>(self, x: T) -> T {
                    let $s = self;
                    $variant.derivative(x)
                }
            }
        };
    }

    #[derive(Clone, Copy)]
    pub(crate) struct Identity;
    #[derive(Clone, Copy)]
    pub(crate) struct Relu;
    #[derive(Clone, Copy)]
    pub(crate) struct LeakyRelu(pub f32);

    fixed_act!(Identity, |_s| Activation::Identity);
    fixed_act!(Relu, |_s| Activation::Relu);
    fixed_act!(LeakyRelu, |s| Activation::LeakyRelu { slope: s.0 });
    // The rest call `exp` or `tanh` per element, which costs far more than
    // the match, and share one copy of each loop.
    fixed_act!(Activation, |s| s);
}

pub(crate) use fixed::Act;

/// Evaluates `$body` with `$a` bound to `$act` as a [`fixed::Act`], in a
/// copy of its own for each variant whose formulas are a select or a product.
macro_rules! with_act {
    ($act:expr, |$a:ident| $body:expr) => {
        match $act {
            $crate::Activation::Identity => {
                let $a = $crate::ops::activation::cpu::fixed::Identity;
                $body
            }
            $crate::Activation::Relu => {
                let $a = $crate::ops::activation::cpu::fixed::Relu;
                $body
            }
            $crate::Activation::LeakyRelu { slope } => {
                let $a = $crate::ops::activation::cpu::fixed::LeakyRelu(slope);
                $body
            }
            other => {
                let $a = other;
                $body
            }
        }
    };
}
pub(crate) use with_act;

/// `out = σ(x)`.
pub(crate) fn forward<T: Float + Send + Sync>(
    act: Activation,
    x: &CpuTensor<T>,
    out: &mut CpuTensor<T>,
) {
    let n = x.len();
    let lanes = (out.data_mut(), x.data());
    with_act!(act, |act| split(
        n,
        1,
        lanes,
        #[inline(always)]
        move |(o, x): (&mut [T], &[T])| {
            for (o, &v) in o.iter_mut().zip(x) {
                *o = act.apply(v);
            }
        }
    ));
}

/// `grad_in = grad_out ⊙ σ'(z)`.
pub(crate) fn backward<T: Float + Send + Sync>(
    act: Activation,
    z: &CpuTensor<T>,
    grad_out: &CpuTensor<T>,
    grad_in: &mut CpuTensor<T>,
) {
    let n = z.len();
    let lanes = (grad_in.data_mut(), grad_out.data(), z.data());
    with_act!(act, |act| split(
        n,
        1,
        lanes,
        #[inline(always)]
        move |(gi, g, z): (&mut [T], &[T], &[T])| {
            for ((gi, &g), &zv) in gi.iter_mut().zip(g).zip(z) {
                *gi = g * act.derivative(zv);
            }
        }
    ));
}
