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
pub mod augment;
pub mod batch_norm;
pub mod conv;
pub mod dense_backward;
pub mod dropout;
pub mod elementwise;
pub mod gather;
pub mod loss;
pub mod matmul;
pub mod max_norm;
pub mod noise;
pub mod optimizer;
pub(crate) mod random;
pub mod rbf;
pub mod reduce;

/// The helpers of the op folders' parity tests (shared with `tests/common`).
#[cfg(test)]
pub(crate) mod testing;
