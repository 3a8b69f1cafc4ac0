//! The CPU backend's optimizer step. The rule, its clipping and which state
//! tensors it keeps are decided once per call: each combination gets its own
//! monomorphised loop with no branch and no bounds check per element, so the
//! compiler vectorises it, and large tensors are split over the cores.
//!
//! The arithmetic is that of the formulas in [`crate::optim`], operation for
//! operation in the same order: specialising changes no result (a rule
//! without regularisation skips adding its zero terms, which for a finite
//! parameter changes nothing; for an infinite one it keeps `0·∞ = NaN` out,
//! as PyTorch, which adds no zero terms either).

use super::{GradClip, StepScalars, UpdateMethod, UpdateRule};
use crate::backend::par::{split, Lanes};
use crate::backend::CpuTensor;
use num_traits::Float;

/// One step of `rule` on `param` (the front has checked the operands).
pub(crate) fn optimizer_update<T: Float + Send + Sync>(
    rule: &UpdateRule,
    step: u64,
    param: &mut CpuTensor<T>,
    grad: &CpuTensor<T>,
    state: &mut [CpuTensor<T>],
    grad_sq_norm: Option<&CpuTensor<T>>,
) {
    // State tensors sit at fixed positions of the rule; absent ones are None.
    let mut s: [Option<&mut [T]>; 3] = [None, None, None];
    let mut given = state.iter_mut();
    for (slot, used) in s.iter_mut().zip(rule.method.slots()) {
        if used.is_some() {
            *slot = given.next().map(|t| t.data_mut());
        }
    }
    let piece = Piece {
        p: param.data_mut(),
        g: grad.data(),
        s,
    };
    update(
        rule.method,
        rule.clip,
        &rule.scalars(step),
        grad_sq_norm.map(|n| n.data()[0]),
        piece,
    );
}

/// How a loop prepares each gradient, as its const parameter `PREP`:
/// `rule.clip`'s variant in the low bits, and [`REGULARISED`] when the
/// rule has an L1 or L2 term or decays the parameter.
const CLIP_NONE: u8 = 0;
const CLIP_VALUE: u8 = 1;
const CLIP_NORM: u8 = 2;
const CLIP_BITS: u8 = 3;
/// Without it the loop skips `g + l1·sign(w) + λ·w` and `w·decay`, which
/// with l1 = λ = 0 and decay = 1 give back g and w exactly (for finite w):
/// five vector operations per element fewer in a loop that is otherwise
/// bound by its two divisions and square root.
const REGULARISED: u8 = 4;

/// The per-step constants in the backend's scalar.
#[derive(Clone, Copy)]
struct Consts<T> {
    first: bool,
    nesterov: bool,
    step_size: T,
    a: T,
    a_c: T,
    b: T,
    b_c: T,
    eps: T,
    bc2_sqrt: T,
    clip: T,
    norm_coef: T,
    l1: T,
    weight_decay: T,
    decay: T,
}

/// A piece of one parameter: its values, gradient and the rule's three fixed
/// state positions ([`UpdateMethod::slots`]), `None` where unused.
pub(super) struct Piece<'a, T> {
    pub p: &'a mut [T],
    pub g: &'a [T],
    pub s: [Option<&'a mut [T]>; 3],
}

impl<T: Send + Sync> Lanes for Piece<'_, T> {
    fn split_at(self, mid: usize) -> (Self, Self) {
        let (p0, p1) = self.p.split_at_mut(mid);
        let (g0, g1) = Lanes::split_at(self.g, mid);
        let [s0, s1, s2] = self.s;
        let ((a0, b0, c0), (a1, b1, c1)) = (s0, s1, s2).split_at(mid);
        (
            Piece {
                p: p0,
                g: g0,
                s: [a0, b0, c0],
            },
            Piece {
                p: p1,
                g: g1,
                s: [a1, b1, c1],
            },
        )
    }
}

/// The state slot at position `i`, cut to `n` elements when the loop's switch
/// `used` says the rule keeps it, else empty (and then never indexed). The
/// fixed length lets the compiler drop the bounds checks.
fn slot<'a, T>(s: &mut [Option<&'a mut [T]>; 3], i: usize, used: bool, n: usize) -> &'a mut [T] {
    match (used, s[i].take()) {
        (true, Some(v)) => &mut v[..n],
        (false, _) => &mut [],
        (true, None) => unreachable!("checked: the rule keeps state slot {i}"),
    }
}

/// One optimizer step over a whole parameter. `norm_sq` is the squared
/// gradient norm when clipping by norm.
fn update<T: Float + Send + Sync>(
    method: UpdateMethod,
    clip: GradClip,
    k: &StepScalars,
    norm_sq: Option<T>,
    piece: Piece<'_, T>,
) {
    let cast = |v: f64| T::from(v).expect("every f64 converts to a float type");
    let clip_t = cast(k.clip);
    // torch.nn.utils.clip_grad_norm_: the 1e-6 keeps a zero norm finite.
    let norm_coef = match (clip, norm_sq) {
        (GradClip::Norm(_), Some(sq)) => (clip_t / (sq.sqrt() + cast(1e-6))).min(T::one()),
        _ => T::one(),
    };
    let c = Consts::new(method, k, norm_coef);
    let regularised = k.l1 != 0.0 || k.weight_decay != 0.0 || k.decay != 1.0;
    by_preparation(method, clip, regularised, &c, piece);
}

impl<T: Float> Consts<T> {
    /// The step's scalars in `T`, with the clipping-by-norm factor.
    fn new(method: UpdateMethod, k: &StepScalars, norm_coef: T) -> Consts<T> {
        let cast = |v: f64| T::from(v).expect("every f64 converts to a float type");
        Consts {
            first: k.first,
            nesterov: matches!(method, UpdateMethod::Sgd { nesterov: true, .. }),
            step_size: cast(k.step_size),
            a: cast(k.a),
            a_c: cast(k.a_c),
            b: cast(k.b),
            b_c: cast(k.b_c),
            eps: cast(k.eps),
            bc2_sqrt: cast(k.bc2_sqrt),
            clip: cast(k.clip),
            norm_coef,
            l1: cast(k.l1),
            weight_decay: cast(k.weight_decay),
            decay: cast(k.decay),
        }
    }
}

/// Picks the loops' `PREP` from the clipping and whether the rule
/// regularises, then the loop of `method`.
fn by_preparation<T: Float + Send + Sync>(
    method: UpdateMethod,
    clip: GradClip,
    regularised: bool,
    c: &Consts<T>,
    piece: Piece<'_, T>,
) {
    match (clip, regularised) {
        (GradClip::None, false) => by_method::<T, CLIP_NONE>(method, c, piece),
        (GradClip::Value(_), false) => by_method::<T, CLIP_VALUE>(method, c, piece),
        (GradClip::Norm(_), false) => by_method::<T, CLIP_NORM>(method, c, piece),
        (GradClip::None, true) => by_method::<T, { CLIP_NONE | REGULARISED }>(method, c, piece),
        (GradClip::Value(_), true) => {
            by_method::<T, { CLIP_VALUE | REGULARISED }>(method, c, piece)
        }
        (GradClip::Norm(_), true) => by_method::<T, { CLIP_NORM | REGULARISED }>(method, c, piece),
    }
}

/// Picks the loop of `method` and its switches, and runs it over the cores.
fn by_method<T: Float + Send + Sync, const PREP: u8>(
    method: UpdateMethod,
    c: &Consts<T>,
    piece: Piece<'_, T>,
) {
    // Each arm calls its loop from an inlined closure (not through a
    // function pointer or a function item's call shim, which the compiler
    // keeps out of line), so that `par::split` inlines it into its
    // widest-vector copy.
    macro_rules! run {
        ($kernel:ident $(, $switch:literal)*) => {
            over_cores(
                c,
                piece,
                #[inline(always)]
                |c, p| $kernel::<T, PREP $(, $switch)*>(c, p),
            )
        };
    }
    match method {
        UpdateMethod::Sgd { momentum, .. } if momentum != 0.0 => run!(sgd, true),
        UpdateMethod::Sgd { .. } => run!(sgd, false),
        UpdateMethod::EmaMomentum { .. } => run!(ema),
        UpdateMethod::Adagrad { .. } => run!(adagrad),
        UpdateMethod::RmsProp {
            centered, momentum, ..
        } => match (centered, momentum > 0.0) {
            (false, false) => run!(rmsprop, false, false),
            (false, true) => run!(rmsprop, false, true),
            (true, false) => run!(rmsprop, true, false),
            (true, true) => run!(rmsprop, true, true),
        },
        UpdateMethod::Adam { amsgrad: false, .. } => run!(adam, false),
        UpdateMethod::Adam { amsgrad: true, .. } => run!(adam, true),
    }
}

/// `kernel` over `piece`, split across the cores.
fn over_cores<T: Send + Sync>(
    c: &Consts<T>,
    piece: Piece<'_, T>,
    kernel: impl Fn(&Consts<T>, Piece<'_, T>) + Sync,
) {
    split(
        piece.p.len(),
        1,
        piece,
        #[inline(always)]
        |piece| kernel(c, piece),
    );
}

/// The clipped, regularised gradient and the decayed parameter of one element.
#[inline(always)]
fn prepare<T: Float, const PREP: u8>(c: &Consts<T>, g: T, w: T) -> (T, T) {
    let g = match PREP & CLIP_BITS {
        CLIP_NONE => g,
        CLIP_VALUE => g.max(-c.clip).min(c.clip),
        _ => g * c.norm_coef,
    };
    if PREP & REGULARISED == 0 {
        return (g, w);
    }
    // sign(w), 0 at 0, as selects rather than jumps.
    let sign = if w > T::zero() {
        T::one()
    } else if w < T::zero() {
        -T::one()
    } else {
        T::zero()
    };
    (g + c.l1 * sign + c.weight_decay * w, w * c.decay)
}

#[inline(always)]
fn sgd<T: Float, const PREP: u8, const MOMENTUM: bool>(c: &Consts<T>, mut x: Piece<'_, T>) {
    let n = x.p.len();
    let (p, gr) = (x.p, &x.g[..n]);
    let buf = slot(&mut x.s, 0, MOMENTUM, n);
    for i in 0..n {
        let (mut g, w) = prepare::<T, PREP>(c, gr[i], p[i]);
        if MOMENTUM {
            // PyTorch starts the buffer at the gradient, not at zero.
            buf[i] = if c.first { g } else { c.a * buf[i] + c.a_c * g };
            g = if c.nesterov { g + c.a * buf[i] } else { buf[i] };
        }
        p[i] = w - c.step_size * g;
    }
}

#[inline(always)]
fn ema<T: Float, const PREP: u8>(c: &Consts<T>, mut x: Piece<'_, T>) {
    let n = x.p.len();
    let (p, gr) = (x.p, &x.g[..n]);
    let v = slot(&mut x.s, 0, true, n);
    for i in 0..n {
        let (g, w) = prepare::<T, PREP>(c, gr[i], p[i]);
        v[i] = c.a * v[i] + c.a_c * g;
        p[i] = w - c.step_size * v[i];
    }
}

#[inline(always)]
fn adagrad<T: Float, const PREP: u8>(c: &Consts<T>, mut x: Piece<'_, T>) {
    let n = x.p.len();
    let (p, gr) = (x.p, &x.g[..n]);
    let sum = slot(&mut x.s, 0, true, n);
    for i in 0..n {
        let (g, w) = prepare::<T, PREP>(c, gr[i], p[i]);
        sum[i] = sum[i] + g * g;
        p[i] = w - c.step_size * (g / (sum[i].sqrt() + c.eps));
    }
}

#[inline(always)]
fn rmsprop<T: Float, const PREP: u8, const CENTERED: bool, const MOMENTUM: bool>(
    c: &Consts<T>,
    mut x: Piece<'_, T>,
) {
    let n = x.p.len();
    let (p, gr) = (x.p, &x.g[..n]);
    let sq = slot(&mut x.s, 0, true, n);
    let grad_avg = slot(&mut x.s, 1, CENTERED, n);
    let buf = slot(&mut x.s, 2, MOMENTUM, n);
    for i in 0..n {
        let (g, w) = prepare::<T, PREP>(c, gr[i], p[i]);
        sq[i] = c.a * sq[i] + c.a_c * g * g;
        let avg = if CENTERED {
            grad_avg[i] = grad_avg[i] + c.a_c * (g - grad_avg[i]);
            (sq[i] - grad_avg[i] * grad_avg[i] + c.b_c).sqrt() + c.eps
        } else {
            (sq[i] + c.b_c).sqrt() + c.eps
        };
        let d = if MOMENTUM {
            buf[i] = c.b * buf[i] + g / avg;
            buf[i]
        } else {
            g / avg
        };
        p[i] = w - c.step_size * d;
    }
}

#[inline(always)]
fn adam<T: Float, const PREP: u8, const AMSGRAD: bool>(c: &Consts<T>, mut x: Piece<'_, T>) {
    let n = x.p.len();
    let (p, gr) = (x.p, &x.g[..n]);
    let m = slot(&mut x.s, 0, true, n);
    let v = slot(&mut x.s, 1, true, n);
    let v_max = slot(&mut x.s, 2, AMSGRAD, n);
    for i in 0..n {
        let (g, w) = prepare::<T, PREP>(c, gr[i], p[i]);
        // torch's lerp_: m + (1−β₁)(g − m).
        m[i] = m[i] + c.a_c * (g - m[i]);
        v[i] = c.b * v[i] + c.b_c * g * g;
        let second = if AMSGRAD {
            v_max[i] = v_max[i].max(v[i]);
            v_max[i]
        } else {
            v[i]
        };
        p[i] = w - c.step_size * (m[i] / (second.sqrt() / c.bc2_sqrt + c.eps));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The loops without the regularisation terms give the bits of the
    /// loops with them at l1 = λ = 0 and decay = 1, for every rule and
    /// clipping, on random finite inputs (zeros included).
    #[test]
    fn skipping_zero_regularisation_changes_no_bit() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let n = 4099;
        let mut draw = |zeros: bool| -> Vec<f32> {
            (0..n)
                .map(|i| {
                    if zeros && i % 5 == 0 {
                        0.0
                    } else {
                        rng.random_range(-2.0..2.0)
                    }
                })
                .collect()
        };
        let (p0, g) = (draw(true), draw(true));
        let s0 = [
            draw(false).iter().map(|v| v.abs()).collect::<Vec<_>>(),
            draw(false),
            draw(false),
        ];
        let methods = [
            UpdateMethod::Sgd {
                momentum: 0.9,
                dampening: 0.1,
                nesterov: true,
            },
            UpdateMethod::EmaMomentum {
                beta: 0.9,
                bias_correction: true,
            },
            UpdateMethod::Adagrad {
                lr_decay: 0.01,
                initial_accumulator_value: 0.1,
                eps: 1e-10,
            },
            UpdateMethod::RmsProp {
                alpha: 0.99,
                eps: 1e-8,
                momentum: 0.9,
                centered: true,
                eps_inside: false,
            },
            UpdateMethod::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                amsgrad: true,
            },
        ];
        for method in methods {
            // Clipping by value at 0.5, so the scalars carry a bound.
            let rule = UpdateRule {
                method,
                lr: 1e-2,
                weight_decay: 0.0,
                decoupled_weight_decay: false,
                l1: 0.0,
                clip: GradClip::Value(0.5),
            };
            let k = rule.scalars(3);
            assert!(k.l1 == 0.0 && k.weight_decay == 0.0 && k.decay == 1.0);
            let c = Consts::new(method, &k, 0.75f32);
            let run = |clip: GradClip, regularised: bool| {
                let (mut p, mut s) = (p0.clone(), s0.clone());
                let [s_0, s_1, s_2] = &mut s;
                let piece = Piece {
                    p: &mut p,
                    g: &g,
                    s: [Some(&mut s_0[..]), Some(&mut s_1[..]), Some(&mut s_2[..])],
                };
                by_preparation(method, clip, regularised, &c, piece);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                (bits(&p), s.map(|v| bits(&v)))
            };
            for clip in [GradClip::None, GradClip::Value(0.5), GradClip::Norm(0.5)] {
                assert!(
                    run(clip, false) == run(clip, true),
                    "{method:?}, {clip:?}: the bits differ"
                );
            }
        }
    }
}
