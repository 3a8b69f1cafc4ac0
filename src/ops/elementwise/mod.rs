//! Elementwise ops in place: `t = value`, `t = α·t`, `y = α·x + y`. The
//! front checks that `x` and `y` share a shape; the CPU kernels are in
//! `cpu.rs`, the GPU dispatch in `gpu.rs`
//! (shaders/elementwise/elementwise.wgsl); parity in `tests/kernels.rs`.

pub(crate) mod cpu;
pub(crate) mod gpu;
