//! Choosing a backend at run time: `WGTRAIN_DEVICE=gpu|cpu|auto`.

use crate::{Cpu, Error, Gpu, Result};

/// A backend chosen at run time. Code generic over [`Backend`](crate::Backend)
/// runs on either arm:
///
/// ```no_run
/// use wgtrain::{Backend, Device};
/// fn describe<B: Backend>(b: &B) -> String { b.describe() }
/// let line = match Device::from_env().unwrap() {
///     Device::Gpu(g) => describe(&g),
///     Device::Cpu(c) => describe(&c),
/// };
/// println!("{line}");
/// ```
pub enum Device {
    /// The WGSL backend on a wgpu adapter.
    Gpu(Gpu),
    /// The CPU backend in f32.
    Cpu(Cpu<f32>),
}

impl Device {
    /// Reads `WGTRAIN_DEVICE`: `gpu` opens an adapter or fails with a typed
    /// error saying how to get one; `cpu` uses the CPU backend; `auto` (the
    /// default) tries the GPU and falls back to the CPU with a note on stderr.
    pub fn from_env() -> Result<Device> {
        let choice = std::env::var("WGTRAIN_DEVICE").unwrap_or_else(|_| "auto".into());
        match choice.to_lowercase().as_str() {
            "gpu" => Ok(Device::Gpu(Gpu::new()?)),
            "cpu" => Ok(Device::Cpu(Cpu::new())),
            "auto" | "" => match Gpu::new() {
                Ok(g) => Ok(Device::Gpu(g)),
                Err(e) => {
                    eprintln!("note: {e}; falling back to the CPU backend");
                    Ok(Device::Cpu(Cpu::new()))
                }
            },
            other => Err(Error::Model(format!(
                "WGTRAIN_DEVICE={other}: expected gpu, cpu or auto"
            ))),
        }
    }
}
