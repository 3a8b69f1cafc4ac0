//! # wgtrain
//!
//! Train neural networks on any GPU that wgpu reaches (Vulkan, Metal, DX12),
//! with WGSL compute kernels, every buffer resident on the device, and a CPU
//! reference backend that checks every GPU result.
//!
//! The spine is the [`Backend`] trait: [`Gpu`] implements it with the kernels
//! in `shaders/`, [`Cpu`] in plain Rust over `f32` or `f64`.

pub mod backend;
pub mod error;
pub mod gpu;

pub use backend::{Activation, Backend, Cpu, CpuIndex, CpuTensor, IndexVector, Loss, MatmulSpec, Reduce, Shaped, Target};
pub use error::{Error, Result};
pub use gpu::{Gpu, GpuIndex, GpuTensor, MatmulKernel};
