//! The GPU dispatch of the RBF units (shaders/rbf/rbf.wgsl).

use crate::gpu::runtime::{Bind, Kernel};
use crate::gpu::{Gpu, GpuTensor, RBF, WG};
use crate::Result;

/// WebGPU's guaranteed workgroups per dispatch dimension; larger outputs
/// loop inside the kernel.
const MAX_WORKGROUPS: u32 = 65_535;

/// `Params` of shaders/rbf/rbf.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RbfParams {
    n: u32,
    k: u32,
    m: u32,
    _pad: u32,
}

fn params(x: &GpuTensor, c: &GpuTensor) -> RbfParams {
    RbfParams {
        n: x.rows as u32,
        k: x.cols as u32,
        m: c.rows as u32,
        _pad: 0,
    }
}

fn groups(elements: usize) -> [u32; 3] {
    [
        (elements as u32).div_ceil(WG).clamp(1, MAX_WORKGROUPS),
        1,
        1,
    ]
}

fn kernel(entry: &'static str) -> Kernel<'static> {
    Kernel {
        shader: &RBF,
        entry,
        constants: &[],
    }
}

pub(crate) fn forward(
    gpu: &Gpu,
    x: &GpuTensor,
    c: &GpuTensor,
    beta: &GpuTensor,
    out: &mut GpuTensor,
    dist: &mut GpuTensor,
) -> Result<()> {
    gpu.ctx.dispatch(
        &kernel("forward"),
        &params(x, c),
        &[
            Bind::read(&x.buf),
            Bind::read(&c.buf),
            Bind::read(&beta.buf),
            Bind::write(&out.buf),
            Bind::write(&dist.buf),
        ],
        groups(x.rows * c.rows),
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    gpu: &Gpu,
    x: &GpuTensor,
    c: &GpuTensor,
    beta: &GpuTensor,
    dist: &GpuTensor,
    g: &GpuTensor,
    grad_c: &mut GpuTensor,
    grad_beta: &mut GpuTensor,
    grad_x: Option<&mut GpuTensor>,
) -> Result<()> {
    let p = params(x, c);
    let pass = |entry, res: &GpuTensor, elements| {
        gpu.ctx.dispatch(
            &kernel(entry),
            &p,
            &[
                Bind::read(&x.buf),
                Bind::read(&c.buf),
                Bind::read(&beta.buf),
                Bind::read(&dist.buf),
                Bind::read(&g.buf),
                Bind::write(&res.buf),
            ],
            groups(elements),
        )
    };
    pass("grad_centres", grad_c, c.rows * c.cols)?;
    pass("grad_beta", grad_beta, c.rows)?;
    if let Some(gx) = grad_x {
        pass("grad_input", gx, x.rows * x.cols)?;
    }
    Ok(())
}
