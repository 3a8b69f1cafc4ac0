//! The CPU backend's fast matmul (`matrixmultiply`) against the reference
//! triple loop, in f32 and f64, all four transpose forms, awkward sizes.

mod common;

use common::{assert_parity, random, AWKWARD};
use wgtrain::backend::reference_matmul;
use wgtrain::{Activation, Backend, Cpu, CpuTensor, MatmulSpec};

/// (fast, reference) results of one product with random operands.
#[allow(clippy::too_many_arguments)]
fn both<T>(
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    bias: bool,
    act: Activation,
    seed: u64,
) -> (Vec<f64>, Vec<f64>)
where
    Cpu<T>: Backend<Tensor = CpuTensor<T>>,
    T: num_traits::Float,
{
    let cpu = Cpu::<T>::new();
    let (ar, ac) = if ta { (k, m) } else { (m, k) };
    let (br, bc) = if tb { (n, k) } else { (k, n) };
    // Scaled by π/3 so that f64 operands use all 53 bits: products of f32
    // values would be exact in f64 and hide rounding-order differences.
    let values = |seed: u64, len: usize| -> Vec<f64> {
        random(seed, len)
            .iter()
            .map(|&v| v as f64 * std::f64::consts::FRAC_PI_3)
            .collect()
    };
    let a = cpu.upload_f64(ar, ac, &values(seed, m * k)).unwrap();
    let b = cpu.upload_f64(br, bc, &values(seed + 1, k * n)).unwrap();
    let bias_t = cpu.upload_f64(1, n, &values(seed + 2, n)).unwrap();
    let spec = MatmulSpec {
        transpose_a: ta,
        transpose_b: tb,
        bias: bias.then_some(&bias_t),
        act,
        gate: None,
    };
    let mut fast = cpu.zeros(m, n).unwrap();
    cpu.matmul(&a, &b, &mut fast, spec).unwrap();
    let mut reference = cpu.zeros(m, n).unwrap();
    reference_matmul(&a, &b, &mut reference, spec).unwrap();
    (
        cpu.download(&fast).unwrap(),
        cpu.download(&reference).unwrap(),
    )
}

// Blocked and plain sums differ only by rounding order: about k·ε relative
// to Σ|aᵢbᵢ| at worst, with k ≤ 1000 and inputs in [-1, 1].
const F32_TOL: f64 = 1e-4;
const F64_TOL: f64 = 1e-12;

#[test]
fn fast_matmul_matches_the_reference_loop() {
    let mut seed = 0;
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        for &m in &AWKWARD {
            for &(n, k) in &[(7, 33), (65, 1), (257, 3), (33, 1000)] {
                seed += 10;
                let what = format!("ta={ta} tb={tb} {m}x{k}·{k}x{n}");
                let (fast, reference) =
                    both::<f32>(m, n, k, ta, tb, false, Activation::Identity, seed);
                assert_parity(
                    &format!("cpu f32 fast vs reference {what}"),
                    &fast,
                    &reference,
                    F32_TOL,
                );
                let (fast, reference) =
                    both::<f64>(m, n, k, ta, tb, false, Activation::Identity, seed);
                assert_parity(
                    &format!("cpu f64 fast vs reference {what}"),
                    &fast,
                    &reference,
                    F64_TOL,
                );
            }
        }
    }
}

#[test]
fn fast_matmul_applies_bias_and_activation() {
    for act in Activation::all() {
        for (ta, tb) in [(false, true), (true, false)] {
            let (fast, reference) = both::<f64>(33, 65, 7, ta, tb, true, act, 5);
            assert_parity(
                &format!("cpu f64 +bias+{act:?} ta={ta} tb={tb}"),
                &fast,
                &reference,
                F64_TOL,
            );
            let (fast, reference) = both::<f32>(257, 10, 33, ta, tb, true, act, 6);
            assert_parity(
                &format!("cpu f32 +bias+{act:?} ta={ta} tb={tb}"),
                &fast,
                &reference,
                F32_TOL,
            );
        }
    }
}
