//! # wgtrain
//!
//! Train neural networks on any GPU that wgpu reaches (Vulkan, Metal, DX12,
//! and WebGPU in the browser: feature `web`, module `web`),
//! with WGSL compute kernels, every buffer resident on the device, and a CPU
//! reference backend that checks every GPU result.
//!
//! The spine is the [`Backend`] trait: [`Gpu`] implements it with the kernels
//! in `shaders/`, [`Cpu`] in plain Rust over `f32` or `f64`.
//!
//! Host-side data handling (data sets, IDX/CSV/MNIST loaders, splits and
//! preprocessing) lives in [`data`].

// The test helpers in src/ops/testing.rs name the library `wgtrain`, as the
// integration tests that also include them do.
#[cfg(test)]
extern crate self as wgtrain;

pub mod backend;
pub mod checkpoint;
pub mod cost;
pub mod data;
pub mod device;
pub mod diagnostics;
pub mod error;
pub mod gpu;
pub mod init;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod parallel;
pub mod schedule;
pub mod shipped;
pub mod train;
#[cfg(all(feature = "web", target_arch = "wasm32"))]
pub mod web;

pub use backend::{
    Activation, Backend, Cpu, CpuIndex, CpuTensor, DenseGrads, GradClip, IndexVector, Loss,
    MatmulSpec, Reduce, Shaped, Target, UpdateMethod, UpdateRule,
};
pub use data::{Dataset, Preprocessor, SplitSpec, Splits, Targets, Transform};
pub use device::Device;
pub use error::{Error, Result};
pub use gpu::{Gpu, GpuIndex, GpuTensor, KernelTime, MatmulKernel, TiledPlan, TiledTile};
pub use init::Init;
pub use nn::{FlatParams, Layer, Mode, Model, Parameter, Sequential};
pub use optim::{Optim, Optimizer, ParamRef};
pub use schedule::Schedule;
