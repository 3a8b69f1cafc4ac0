//! The test helpers both kinds of test share: the op folders' unit tests
//! (`crate::ops::testing`) and the integration tests (`tests/common`, which
//! includes this file). It names the library `wgtrain` in both, through
//! the lib's `extern crate self as wgtrain` under `cfg(test)`.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use wgtrain::Gpu;

/// The GPU backend, or `None` with a message when no adapter exists.
/// Under `CI=true` a missing adapter is a failure, not a skip: CI installs
/// lavapipe, so no adapter there means the GPU path went untested.
pub(crate) fn gpu() -> Option<Gpu> {
    match Gpu::new() {
        Ok(g) => Some(g),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but no GPU adapter: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED (no GPU adapter): {e}\n  install one with `apt-get install mesa-vulkan-drivers`");
            None
        }
    }
}

/// Uniform values in [-1, 1) from a seeded generator: never all zero.
pub(crate) fn random(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Labels in 0..classes.
pub(crate) fn random_labels(seed: u64, n: usize, classes: usize) -> Vec<u32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| rng.random_range(0..classes as u32))
        .collect()
}

/// max |gpu − cpu| / max(1, |cpu|): absolute error for small values,
/// relative for large ones.
pub(crate) fn parity_error(gpu: &[f64], cpu: &[f64]) -> f64 {
    assert_eq!(gpu.len(), cpu.len(), "lengths differ");
    gpu.iter()
        .zip(cpu)
        .map(|(g, c)| (g - c).abs() / c.abs().max(1.0))
        .fold(0.0, f64::max)
}

/// Asserts the parity error is within `tol` and prints it, so the test log
/// doubles as the table of measured errors.
pub(crate) fn assert_parity(what: &str, gpu: &[f64], cpu: &[f64], tol: f64) {
    let e = parity_error(gpu, cpu);
    println!("parity {what}: {e:.3e} (tolerance {tol:.0e})");
    assert!(e <= tol, "{what}: parity error {e:.3e} exceeds {tol:.0e}");
    assert!(
        gpu.iter().all(|v| v.is_finite()),
        "{what}: non-finite GPU output"
    );
}

/// Sizes that are not multiples of any tile: 1, 3, 7, 33, 65, 257, 1000.
pub(crate) const AWKWARD: [usize; 7] = [1, 3, 7, 33, 65, 257, 1000];

/// The numbers of a JSON array of test vectors (PyTorch's, under `tests/data/`).
pub(crate) fn json_floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}
