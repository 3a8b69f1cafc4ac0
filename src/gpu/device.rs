//! Opening a wgpu adapter and device: which adapter, which limits.

use crate::{Error, Result};

/// Preference order among adapter types: a real GPU first, software last.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// One adapter wgpu found, with the index that `Gpu::open`, `--devices`
/// and `WGTRAIN_DEVICES` know it by: adapters are listed best first (a
/// discrete GPU, then an integrated one, then software), in wgpu's order
/// within each kind.
///
/// ```no_run
/// for a in wgtrain::gpu::list_adapters() {
///     println!("{a}"); // 0: Vulkan Cpu "llvmpipe (LLVM 15.0.6, 256 bits)", …
/// }
/// ```
#[derive(Clone, Debug)]
pub struct AdapterEntry {
    /// Its place in the list.
    pub index: usize,
    /// Name, vendor, backend, device type, driver.
    pub info: wgpu::AdapterInfo,
    /// The limits the device would be opened with (the adapter's own).
    pub limits: wgpu::Limits,
}

impl std::fmt::Display for AdapterEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.index, describe(&self.info, &self.limits))
    }
}

/// Mesa's Vulkan drivers print `error: XDG_RUNTIME_DIR is invalid or not
/// set in the environment.` twice when the variable is unset (a container,
/// CI, `sudo`), which reads like a failure of ours. They need the folder
/// for window-system sockets only, which compute never opens: unset, it
/// gets the temporary folder, once, before the first instance. A value the
/// user set is left alone.
fn quiet_mesa_runtime_dir() {
    #[cfg(target_os = "linux")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
                std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
            }
        });
    }
}

/// Every adapter on the backends `WGPU_BACKEND` allows, best first.
async fn ranked() -> (Vec<wgpu::Adapter>, wgpu::Backends) {
    quiet_mesa_runtime_dir();
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    let mut adapters = instance.enumerate_adapters(backends).await;
    adapters.sort_by_key(|a| rank(a.get_info().device_type));
    (adapters, backends)
}

/// Every adapter wgpu finds, best first, with its index (as a future; see
/// [`list_adapters`]).
pub async fn list_adapters_async() -> Vec<AdapterEntry> {
    let (adapters, _) = ranked().await;
    adapters
        .iter()
        .enumerate()
        .map(|(index, a)| AdapterEntry {
            index,
            info: a.get_info(),
            limits: a.limits(),
        })
        .collect()
}

/// Every adapter wgpu finds, best first, with its index. Blocks on
/// [`list_adapters_async`] (the native edge).
pub fn list_adapters() -> Vec<AdapterEntry> {
    pollster::block_on(list_adapters_async())
}

/// Opens a device on the adapter `selector` names: an index into
/// [`list_adapters`], or a case-insensitive part of an adapter's name.
/// `None`: the user's `WGPU_ADAPTER_NAME` if set, else the best adapter.
/// `WGPU_BACKEND` restricts the backends searched.
pub(crate) async fn open(
    selector: Option<&str>,
) -> Result<(wgpu::Adapter, wgpu::Device, wgpu::Queue)> {
    let (adapters, backends) = ranked().await;
    let found: Vec<String> = adapters
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{i}: {}", a.get_info().name))
        .collect();
    let env = std::env::var("WGPU_ADAPTER_NAME").ok();
    let (wanted, from) = match (selector, env.as_deref()) {
        (Some(s), _) => (Some(s.trim().to_string()), "the device selector"),
        (None, Some(name)) => (Some(name.to_string()), "WGPU_ADAPTER_NAME"),
        (None, None) => (None, ""),
    };
    let adapter = match wanted {
        None => adapters
            .into_iter()
            .next()
            .ok_or_else(|| Error::NoAdapter {
                detail: format!("wgpu found no adapter on the backends {backends:?}"),
            })?,
        Some(wanted) => {
            let at = match wanted.parse::<usize>() {
                Ok(index) => (index < adapters.len()).then_some(index),
                Err(_) => {
                    let lower = wanted.to_lowercase();
                    adapters
                        .iter()
                        .position(|a| a.get_info().name.to_lowercase().contains(&lower))
                }
            };
            match at {
                Some(i) => adapters.into_iter().nth(i).expect("index checked"),
                None => {
                    return Err(Error::NoAdapter {
                        detail: format!(
                            "{from} {wanted:?} matches none of the adapters found: {found:?} \
                             (give an index or part of a name; `--list-devices` lists them)"
                        ),
                    })
                }
            }
        }
    };
    request(adapter).await
}

/// A device on `adapter`, with the adapter's own limits.
async fn request(adapter: wgpu::Adapter) -> Result<(wgpu::Adapter, wgpu::Device, wgpu::Queue)> {
    // The adapter's own limits, not wgpu's conservative defaults: storage
    // bindings above 128 MiB are what lets a whole data set stay resident.
    let limits = adapter.limits();
    // Subgroups let the matmul lanes share their reads (MatmulKernel::RegistersShared).
    let wanted = wgpu::Features::TIMESTAMP_QUERY
        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
        | wgpu::Features::SUBGROUP;
    let features = adapter.features() & wanted;
    let (device, queue) = adapter
        .request_device(&wgpu::DeviceDescriptor {
            label: Some("wgtrain"),
            required_features: features,
            required_limits: limits,
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        })
        .await
        .map_err(|e| Error::DeviceRequest(e.to_string()))?;
    Ok((adapter, device, queue))
}

/// One line: backend, adapter, driver and the limits that matter here.
pub(crate) fn describe(info: &wgpu::AdapterInfo, limits: &wgpu::Limits) -> String {
    format!(
        "{:?} {:?} \"{}\" (driver {} {}), max storage binding {} MiB, max workgroup invocations {}",
        info.backend,
        info.device_type,
        info.name,
        info.driver,
        info.driver_info,
        limits.max_storage_buffer_binding_size >> 20,
        limits.max_compute_invocations_per_workgroup,
    )
}
