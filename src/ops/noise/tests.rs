//! Gaussian noise: the GPU against the CPU at awkward sizes, the noise's
//! statistics, and a shard drawing what the whole batch draws there.

use super::NoiseDraw;
use crate::ops::testing::{assert_parity, gpu, random};
use crate::{Backend, Cpu, Shaped};

fn noisy<B: Backend>(b: &B, x: &[f32], rows: usize, draw: &NoiseDraw) -> Vec<f64> {
    let x = b.upload(rows, x.len() / rows, x).unwrap();
    let mut out = b.zeros(x.rows(), x.cols()).unwrap();
    b.add_noise(&x, &mut out, draw).unwrap();
    b.download(&out).unwrap()
}

#[test]
fn noise_gpu_matches_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = Cpu::<f32>::new();
    for &(rows, cols) in &[(1, 1), (7, 3), (33, 65), (257, 784)] {
        let x = random(rows as u64 + 5, rows * cols);
        let draw = NoiseDraw {
            std: 0.3,
            seed: 11,
            step: rows as u64,
            first: 40,
        };
        // log, cos and sqrt of the same f32 uniforms, each a few ulp off
        // between libm and the device: 1e-5 of max(1, |x + noise|).
        assert_parity(
            &format!("gaussian noise {rows}x{cols}"),
            &noisy(&g, &x, rows, &draw),
            &noisy(&cpu, &x, rows, &draw),
            1e-5,
        );
    }
}

#[test]
fn noise_is_standard_normal_and_sharded_alike() {
    let cpu = Cpu::<f64>::new();
    let n = 100_000;
    let zeros = vec![0.0f32; n];
    let draw = NoiseDraw {
        std: 2.0,
        seed: 3,
        step: 9,
        first: 0,
    };
    let z = noisy(&cpu, &zeros, 1000, &draw);
    let mean = z.iter().sum::<f64>() / n as f64;
    let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    let kurtosis = z.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n as f64 / (var * var);
    // Standard errors at n = 1e5: mean 2/√n ≈ 0.006, std ≈ 0.0045, kurtosis ≈ 0.015.
    assert!(mean.abs() < 0.03, "mean {mean}");
    assert!((var.sqrt() - 2.0).abs() < 0.03, "std {}", var.sqrt());
    assert!((kurtosis - 3.0).abs() < 0.1, "kurtosis {kurtosis}");
    // Rows 600.. as a replica holding them draws them.
    let shard = NoiseDraw {
        first: 600 * 100,
        ..draw
    };
    let part = noisy(&cpu, &zeros[..400 * 100], 400, &shard);
    assert_eq!(part, z[600 * 100..]);
    // σ = 0 is the identity; a negative σ is refused by name.
    let x = random(1, 12);
    let none = NoiseDraw { std: 0.0, ..draw };
    let same: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    assert_eq!(noisy(&cpu, &x, 3, &none), same);
    let (xt, mut out) = (cpu.upload(3, 4, &x).unwrap(), cpu.zeros(3, 4).unwrap());
    let bad = cpu.add_noise(&xt, &mut out, &NoiseDraw { std: -1.0, ..draw });
    assert!(
        matches!(
            bad,
            Err(crate::Error::InvalidParameter {
                name: "noise std",
                ..
            })
        ),
        "{bad:?}"
    );
}
