//! Activations: the formulas against f64 finite differences, the GPU
//! kernels against the CPU on awkward sizes (inputs over [-8, 8], into the
//! saturated regions), and the generated WGSL dispatch against the table.

use super::Activation;
use crate::ops::testing::{assert_parity, gpu};
use crate::{Backend, Cpu};
use rand::{Rng, SeedableRng};

/// exp and tanh differ by a few ulps between libm and the driver.
const TOL: f64 = 1e-6;

fn inputs(n: usize) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    (0..n).map(|_| rng.random_range(-8.0f32..8.0)).collect()
}

/// `σ(x)`, or `g ⊙ σ'(x)` with `g` random, on backend `b`.
fn run<B: Backend>(b: &B, act: Activation, n: usize, backward: bool) -> Vec<f64> {
    let x = b.upload(1, n, &inputs(n)).unwrap();
    let mut out = b.zeros(1, n).unwrap();
    if backward {
        let g: Vec<f32> = inputs(n + 1)[1..].iter().map(|v| v / 8.0).collect();
        let g = b.upload(1, n, &g).unwrap();
        b.activation_backward(act, &x, &g, &mut out).unwrap();
    } else {
        b.activation(act, &x, &mut out).unwrap();
    }
    b.download(&out).unwrap()
}

#[test]
fn gpu_matches_cpu_forward_and_backward() {
    let Some(g) = gpu() else { return };
    let cpu = Cpu::<f32>::new();
    for act in Activation::all() {
        for &n in &[1, 7, 257, 100_003] {
            for backward in [false, true] {
                let what = format!(
                    "{act:?} {} n={n}",
                    if backward { "backward" } else { "forward" }
                );
                assert_parity(
                    &what,
                    &run(&g, act, n, backward),
                    &run(&cpu, act, n, backward),
                    TOL,
                );
            }
        }
    }
}

/// σ' against the central difference of σ in f64, away from the kinks of
/// ReLU and leaky ReLU (where σ' is a subgradient).
#[test]
fn derivatives_match_finite_differences() {
    let h = 1e-6;
    for act in Activation::all() {
        for x in inputs(64) {
            let x = x as f64;
            if x.abs() < 1e-3 {
                continue;
            }
            let numeric = (act.apply(x + h) - act.apply(x - h)) / (2.0 * h);
            let analytic = act.derivative(x);
            assert!(
                (numeric - analytic).abs() <= 1e-7 * analytic.abs().max(1.0),
                "{act:?} at {x}: σ' = {analytic}, finite difference {numeric}"
            );
        }
    }
}

/// Codes are the places in `all()`, one WGSL case per activation, and every
/// case calls functions that the activation WGSL defines.
#[test]
fn the_generated_dispatch_covers_every_activation() {
    let all = Activation::all();
    let wgsl = Activation::wgsl_dispatch();
    let functions = include_str!("../../../shaders/activation/activation.wgsl");
    for (i, act) in all.iter().enumerate() {
        assert_eq!(act.code() as usize, i, "{act:?}");
        for prefix in ["act", "grad"] {
            let name = format!("{prefix}_{}(", act.wgsl_name());
            assert!(wgsl.contains(&name), "{name} is dispatched");
            assert!(
                functions.contains(&format!("fn {name}")),
                "{name} is defined"
            );
        }
    }
    assert_eq!(wgsl.matches("case ").count(), 2 * all.len());
}

/// SiLU at points whose values are known in closed form (torch.nn.SiLU
/// gives the same to the last f64 digit): x/(1 + e^(−x)).
#[test]
fn silu_matches_its_closed_form() {
    let silu = Activation::Silu;
    assert_eq!(silu.apply(0.0_f64), 0.0);
    assert!((silu.apply(1.0_f64) - 0.731_058_578_630_004_9).abs() < 1e-16);
    assert!((silu.apply(-1.0_f64) + 0.268_941_421_369_995_1).abs() < 1e-16);
    assert_eq!(silu.derivative(0.0_f64), 0.5);
    // Far out, x·σ(x) → x and → 0 without overflow.
    assert_eq!(silu.apply(800.0_f64), 800.0);
    assert_eq!(silu.apply(-800.0_f64), -0.0);
}

/// `derivative_reads_output` holds exactly where claimed: σ'(σ(x)) = σ'(x)
/// bit for bit at random inputs and the edge cases (±0, tiny, ±inf, NaN)
/// for those that say so, and differs somewhere for the rest, so the
/// training step's choice to keep only the output is safe.
#[test]
fn derivative_reads_output_exactly_where_claimed() {
    let mut xs: Vec<f32> = inputs(1000);
    xs.extend([
        0.0,
        -0.0,
        1e-30,
        -1e-30,
        f32::MIN_POSITIVE,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ]);
    let mut acts = Activation::all().to_vec();
    acts.extend([
        Activation::LeakyRelu { slope: 0.0 },
        Activation::LeakyRelu { slope: -0.5 },
        Activation::LeakyRelu { slope: 2.0 },
    ]);
    for act in acts {
        let differs =
            |x: f32| act.derivative(act.apply(x)).to_bits() != act.derivative(x).to_bits();
        let differs_f64 = |x: f32| {
            let x = x as f64;
            act.derivative(act.apply(x)).to_bits() != act.derivative(x).to_bits()
        };
        let wrong: Vec<f32> = xs
            .iter()
            .copied()
            .filter(|&x| differs(x) || differs_f64(x))
            .collect();
        if act.derivative_reads_output() {
            assert!(
                wrong.is_empty(),
                "{act:?}: σ'(σ(x)) ≠ σ'(x) at {:?}",
                &wrong[..wrong.len().min(5)]
            );
        } else {
            assert!(
                !wrong.is_empty(),
                "{act:?} could read its output but says it cannot"
            );
        }
    }
}
