//! One folder per op: its spec and check, its CPU reference, its GPU
//! dispatch (a `#[repr(C)]` parameter struct mirrored by a WGSL struct) and
//! its parity test, with its WGSL in the folder of the same name under
//! `shaders/`. The device traits ([`Kernels`](crate::Kernels) for Cpu and
//! Gpu) hand each call to the op's folder.
//!
//! What is not one op's stays with the devices: tensor storage (upload,
//! download, copy, index vectors) in `src/backend/cpu.rs` and
//! `src/gpu/mod.rs`, the generic checks in `src/backend/checks.rs`.

pub mod activation;
pub mod batch_norm;
pub mod dropout;
pub mod elementwise;
pub mod gather;
pub mod loss;
pub mod matmul;
pub mod optimizer;
pub(crate) mod random;
pub mod reduce;

/// What the op folders' parity tests share, as `tests/common` does for the
/// integration tests.
#[cfg(test)]
pub(crate) mod testing {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// The GPU, or `None` (the test passes as a skip) without an adapter;
    /// a failure under `CI=true`, where lavapipe is installed and the GPU
    /// path must run.
    pub(crate) fn test_gpu() -> Option<crate::Gpu> {
        match crate::Gpu::new() {
            Ok(g) => Some(g),
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true but no GPU adapter: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED (no GPU adapter): {e}");
                None
            }
        }
    }

    /// Uniform values in [-1, 1) from a seeded generator.
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

    /// Sizes that are not multiples of any tile: 1, 3, 7, 33, 65, 257, 1000.
    pub(crate) const AWKWARD: [usize; 7] = [1, 3, 7, 33, 65, 257, 1000];

    /// max |gpu − cpu| / max(1, |cpu|), asserted within `tol` and printed, so
    /// the test log doubles as the table of measured errors; the GPU values
    /// must be finite.
    pub(crate) fn assert_parity(what: &str, gpu: &[f64], cpu: &[f64], tol: f64) {
        assert_eq!(gpu.len(), cpu.len(), "{what}: lengths differ");
        let e = gpu
            .iter()
            .zip(cpu)
            .map(|(g, c)| (g - c).abs() / c.abs().max(1.0))
            .fold(0.0, f64::max);
        println!("parity {what}: {e:.3e} (tolerance {tol:.0e})");
        assert!(e <= tol, "{what}: parity error {e:.3e} exceeds {tol:.0e}");
        assert!(
            gpu.iter().all(|v| v.is_finite()),
            "{what}: non-finite GPU output"
        );
    }
}
