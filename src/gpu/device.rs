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

/// Picks an adapter: the user's `WGPU_ADAPTER_NAME` (a case-insensitive
/// substring) if set, else the best-ranked one. `WGPU_BACKEND` restricts the
/// backends searched (wgpu reads it through `InstanceDescriptor::with_env`).
pub(crate) async fn open() -> Result<(wgpu::Adapter, wgpu::Device, wgpu::Queue)> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    let mut adapters = instance.enumerate_adapters(backends).await;
    let found: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
    if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
        let wanted = wanted.to_lowercase();
        adapters.retain(|a| a.get_info().name.to_lowercase().contains(&wanted));
        if adapters.is_empty() {
            return Err(Error::NoAdapter {
                detail: format!(
                    "WGPU_ADAPTER_NAME={wanted} matches none of the adapters found: {found:?}"
                ),
            });
        }
    }
    adapters.sort_by_key(|a| rank(a.get_info().device_type));
    let adapter = adapters
        .into_iter()
        .next()
        .ok_or_else(|| Error::NoAdapter {
            detail: format!("wgpu found no adapter on the backends {backends:?}"),
        })?;

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
