//! Elementwise loops compiled for the widest vectors this CPU has, chosen
//! at run time.
//!
//! The crate is built for baseline x86-64 (SSE2), so a plain loop runs four
//! floats at a time even on a CPU with AVX-512. [`widest`] runs a closure
//! inside a function compiled with AVX-512 (or AVX2 and FMA) enabled; the
//! closure is inlined there, so its loops are vectorised at that width.
//! Rust never contracts `a*b + c` into an FMA, and vector square roots and
//! divisions round as the scalar ones do, so every width gives bit-identical
//! results: only the speed changes (the peer network's Adam step went from
//! 0.69–0.90 ms to 0.47–0.57 ms on a 2-core AVX-512 Xeon; PERFORMANCE.md).

use std::sync::atomic::{AtomicU8, Ordering};

/// The instruction sets [`widest`] picks between, narrowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Width {
    /// Whatever the crate was compiled for (SSE2 on x86-64).
    Baseline,
    /// AVX2 and FMA: 8 floats.
    Avx2,
    /// AVX-512 (F and VL) with AVX2 and FMA: 16 floats.
    Avx512,
}

impl Width {
    const ALL: [Width; 3] = [Width::Baseline, Width::Avx2, Width::Avx512];

    /// The widest this CPU runs.
    pub(crate) fn of_this_cpu() -> Width {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f") && has!("avx512vl") && has!("avx2") && has!("fma") {
                return Width::Avx512;
            }
            if has!("avx2") && has!("fma") {
                return Width::Avx2;
            }
        }
        Width::Baseline
    }
}

/// The width [`widest`] uses: [`Width::of_this_cpu`], found at the first
/// call (`UNSET` until then); the tests lower it to compare the widths.
static IN_USE: AtomicU8 = AtomicU8::new(UNSET);
const UNSET: u8 = u8::MAX;

fn in_use() -> Width {
    match IN_USE.load(Ordering::Relaxed) {
        UNSET => {
            let w = Width::of_this_cpu();
            IN_USE.store(w as u8, Ordering::Relaxed);
            w
        }
        w => Width::ALL[w as usize],
    }
}

/// `f()`, compiled for the widest vectors this CPU has.
#[inline(always)]
pub(crate) fn widest<R>(f: impl FnOnce() -> R) -> R {
    match in_use() {
        // SAFETY: `Width::of_this_cpu` found these features on this CPU
        // (the tests only ever lower the width), and each width's features
        // include the narrower ones'.
        #[cfg(target_arch = "x86_64")]
        Width::Avx512 => unsafe { avx512(f) },
        #[cfg(target_arch = "x86_64")]
        Width::Avx2 => unsafe { avx2(f) },
        _ => f(),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Activation, Backend, Cpu, GradClip, MatmulSpec};
    use crate::backend::{UpdateMethod, UpdateRule};
    use rand::{Rng, SeedableRng};

    /// Every elementwise kernel that goes through `widest`, on fresh random
    /// inputs: the optimizer rules, the activations both ways, and the
    /// product's epilogue (bias, activation, gate). Returns each output's bits.
    fn outputs() -> Vec<Vec<u32>> {
        let cpu = Cpu::<f32>::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // Odd lengths: split into pieces, each with a remainder the vector
        // loop leaves to scalar code.
        let mut draw = |rows: usize, cols: usize| {
            let v: Vec<f32> = (0..rows * cols)
                .map(|_| rng.random_range(-2.0..2.0))
                .collect();
            cpu.upload(rows, cols, &v).unwrap()
        };
        let bits = |t: &crate::backend::CpuTensor<f32>| {
            cpu.download_f32(t)
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        };
        let mut out = Vec::new();
        let adam = UpdateMethod::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            amsgrad: false,
        };
        let rms = UpdateMethod::RmsProp {
            alpha: 0.99,
            eps: 1e-8,
            momentum: 0.9,
            centered: true,
            eps_inside: false,
        };
        let sgd = UpdateMethod::Sgd {
            momentum: 0.9,
            dampening: 0.0,
            nesterov: true,
        };
        for (method, clip) in [
            (adam, GradClip::None),
            (rms, GradClip::Value(1.0)),
            (sgd, GradClip::None),
        ] {
            let rule = UpdateRule {
                method,
                lr: 1e-2,
                weight_decay: 1e-3,
                decoupled_weight_decay: false,
                l1: 1e-4,
                clip,
            };
            let (mut p, g) = (draw(1, 70_001), draw(1, 70_001));
            let mut state: Vec<_> = method
                .state_names()
                .iter()
                .map(|_| cpu.zeros(1, 70_001).unwrap())
                .collect();
            for step in 1..=3 {
                cpu.optimizer_update(&rule, step, &mut p, &g, &mut state, None)
                    .unwrap();
            }
            out.push(bits(&p));
        }
        let acts = [
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Relu,
            Activation::LeakyRelu { slope: 0.1 },
            Activation::Silu,
        ];
        let (z, g) = (draw(257, 257), draw(257, 257));
        let mut y = cpu.zeros(257, 257).unwrap();
        for act in acts {
            cpu.activation(act, &z, &mut y).unwrap();
            out.push(bits(&y));
            cpu.activation_backward(act, &z, &g, &mut y).unwrap();
            out.push(bits(&y));
        }
        // z = x·wᵀ + bias through the forward epilogue; then δ·w2 ⊙ act'(z2)
        // through the gate.
        let (x, w, bias) = (draw(33, 257), draw(127, 257), draw(1, 127));
        let (delta, w2, z2) = (draw(33, 127), draw(127, 257), draw(33, 257));
        let (mut z, mut d) = (cpu.zeros(33, 127).unwrap(), cpu.zeros(33, 257).unwrap());
        for act in acts {
            let forward = MatmulSpec {
                transpose_b: true,
                bias: Some(&bias),
                act,
                ..Default::default()
            };
            cpu.matmul(&x, &w, &mut z, forward).unwrap();
            out.push(bits(&z));
            let gated = MatmulSpec {
                gate: Some((act, &z2)),
                ..Default::default()
            };
            cpu.matmul(&delta, &w2, &mut d, gated).unwrap();
            out.push(bits(&d));
        }
        out
    }

    /// The widths differ only in speed: every output is bit-identical to
    /// the baseline's, at every width this CPU runs.
    #[test]
    fn every_vector_width_gives_the_same_bits() {
        let widest_here = Width::of_this_cpu();
        IN_USE.store(Width::Baseline as u8, Ordering::Relaxed);
        let baseline = outputs();
        for w in Width::ALL
            .into_iter()
            .filter(|&w| w > Width::Baseline && w <= widest_here)
        {
            IN_USE.store(w as u8, Ordering::Relaxed);
            assert_eq!(in_use(), w);
            for (i, (a, b)) in outputs().iter().zip(&baseline).enumerate() {
                let diff = a.iter().zip(b).filter(|(x, y)| x != y).count();
                assert_eq!(
                    diff, 0,
                    "output {i}: {diff} elements differ at {w:?} from the baseline"
                );
            }
        }
        IN_USE.store(widest_here as u8, Ordering::Relaxed);
    }
}
