//! The GPU dispatch of augmentation (shaders/augment/augment.wgsl): the
//! elastic field in three passes when asked for (noise, smoothing along
//! rows, along columns), then the warp.

use super::WarpSpec;
use crate::gpu::runtime::{Bind, Kernel};
use crate::gpu::{Gpu, GpuIndex, GpuTensor, AUGMENT, WG};
use crate::{Result, Shaped};

/// `Params` of shaders/augment/augment.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct WarpParams {
    rows: u32,
    height: u32,
    width: u32,
    channels: u32,
    radius: u32,
    alpha: f32,
    background: f32,
    n: u32,
}

pub(crate) fn augment(
    gpu: &Gpu,
    x: &GpuTensor,
    transforms: &GpuTensor,
    keys: &GpuIndex,
    taps: &GpuTensor,
    spec: &WarpSpec,
    out: &mut GpuTensor,
) -> Result<()> {
    let (rows, h, w, r) = (x.rows(), spec.height, spec.width, spec.radius as usize);
    let params = |n: usize| WarpParams {
        rows: rows as u32,
        height: h as u32,
        width: w as u32,
        channels: spec.channels as u32,
        radius: spec.radius,
        alpha: spec.alpha,
        background: spec.background,
        n: n as u32,
    };
    let kernel = |entry| Kernel {
        shader: &AUGMENT,
        entry,
        constants: &[],
    };
    let field_len = rows * h * w * 2;
    let field = if spec.alpha != 0.0 {
        let cells = rows * (h + 2 * r) * (w + 2 * r) * 2;
        let padded = rows * (h + 2 * r) * w * 2;
        let noise = gpu.ctx.alloc((cells * 4) as u64, "augment: noise")?;
        gpu.ctx.dispatch(
            &kernel("field_noise"),
            &params(cells),
            &[Bind::read(&keys.buf), Bind::write(&noise)],
            gpu.ctx.linear_groups(cells, WG),
        )?;
        let smoothed_rows = gpu
            .ctx
            .alloc((padded * 4) as u64, "augment: noise smoothed along rows")?;
        let field = gpu
            .ctx
            .alloc((field_len * 4) as u64, "augment: elastic field")?;
        gpu.ctx.dispatch(
            &kernel("field_rows"),
            &params(padded),
            &[
                Bind::read(&noise),
                Bind::read(&taps.buf),
                Bind::write(&smoothed_rows),
            ],
            gpu.ctx.linear_groups(padded, WG),
        )?;
        gpu.ctx.dispatch(
            &kernel("field_cols"),
            &params(field_len),
            &[
                Bind::read(&smoothed_rows),
                Bind::read(&taps.buf),
                Bind::write(&field),
            ],
            gpu.ctx.linear_groups(field_len, WG),
        )?;
        Some(field)
    } else {
        None
    };
    gpu.ctx.dispatch(
        &kernel("warp"),
        &params(x.len()),
        &[
            Bind::read(&x.buf),
            Bind::read(&transforms.buf),
            Bind::read(field.as_ref().unwrap_or(&gpu.dummy)),
            Bind::write(&out.buf),
        ],
        gpu.ctx.linear_groups(x.len(), WG),
    )
}
