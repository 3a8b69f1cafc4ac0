//! Choosing a backend at run time: `WGTRAIN_DEVICE=gpu|cpu|auto`, and
//! which adapters: `WGTRAIN_DEVICES` (indices or name parts, see
//! [`Gpu::open_many`]).

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
    /// default) tries the GPU and falls back to the CPU with a note on
    /// stderr, except under `CI=true`, where a missing adapter is an error.
    /// `WGTRAIN_DEVICES`, when set, names the adapter (an index into
    /// [`list_adapters`](crate::gpu::list_adapters) or part of its name) and
    /// implies `gpu`; it must name one device here ([`Device::gpus_from_env`]
    /// opens several).
    pub fn from_env() -> Result<Device> {
        if let Some(gpus) = Device::gpus_from_env()? {
            let n = gpus.len();
            let mut gpus = gpus.into_iter();
            return match (gpus.next(), n) {
                (Some(g), 1) => Ok(Device::Gpu(g)),
                _ => Err(Error::InvalidParameter {
                    name: "WGTRAIN_DEVICES",
                    value: n as f64,
                    allowed: "one device where one backend is opened (Device::gpus_from_env opens several)",
                }),
            };
        }
        let choice = std::env::var("WGTRAIN_DEVICE").unwrap_or_else(|_| "auto".into());
        match choice.to_lowercase().as_str() {
            "gpu" => Ok(Device::Gpu(Gpu::new()?)),
            "cpu" => Ok(Device::Cpu(Cpu::new())),
            "auto" | "" => match Gpu::new() {
                Ok(g) => Ok(Device::Gpu(g)),
                // Under CI a missing adapter is a failure: a silent CPU run
                // would leave the GPU path untested.
                Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => Err(e),
                Err(e) => {
                    eprintln!("note: {e}; falling back to the CPU backend");
                    Ok(Device::Cpu(Cpu::new()))
                }
            },
            other => Err(Error::Setting {
                name: "WGTRAIN_DEVICE",
                value: other.to_string(),
                allowed: "gpu, cpu or auto",
            }),
        }
    }

    /// The GPUs `WGTRAIN_DEVICES` names, one device per entry, in order
    /// (`0,1`; `0,0` for two devices on one adapter), or `None` when it is
    /// unset or empty.
    pub fn gpus_from_env() -> Result<Option<Vec<Gpu>>> {
        match std::env::var("WGTRAIN_DEVICES") {
            Ok(list) if !list.trim().is_empty() => Gpu::open_many(&list).map(Some),
            _ => Ok(None),
        }
    }
}
