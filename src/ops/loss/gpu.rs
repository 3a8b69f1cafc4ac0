//! The GPU dispatch of the losses: one workgroup over the batch.

use super::Loss;
use crate::backend::Target;
use crate::gpu::runtime::{Bind, Kernel};
use crate::gpu::{Gpu, GpuTensor, LOSS};
use crate::Result;

/// `Params` of shaders/loss/loss.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LossParams {
    rows: u32,
    cols: u32,
    /// Label smoothing ε (0 for every loss but the smoothed cross-entropy).
    smoothing: f32,
    /// The RBF loss's β (0 for the others).
    beta: f32,
}

pub(crate) fn loss(
    gpu: &Gpu,
    kind: Loss,
    pred: &GpuTensor,
    target: Target<'_, Gpu>,
    grad: &mut GpuTensor,
    loss: &mut GpuTensor,
) -> Result<()> {
    dispatch(gpu, kind, pred, target, &grad.buf, &loss.buf, "main", 1)
}

/// Each row's loss into `out` (`rows × 1`), one invocation per row; the
/// gradient goes to a scratch buffer.
pub(crate) fn loss_per_row(
    gpu: &Gpu,
    kind: Loss,
    pred: &GpuTensor,
    target: Target<'_, Gpu>,
    out: &mut GpuTensor,
) -> Result<()> {
    let scratch = gpu
        .ctx
        .alloc((pred.rows * pred.cols * 4) as u64, "per-row loss gradient")?;
    let groups = (pred.rows as u32).div_ceil(crate::gpu::WG);
    dispatch(
        gpu, kind, pred, target, &scratch, &out.buf, "per_row", groups,
    )
}

#[allow(clippy::too_many_arguments)]
fn dispatch(
    gpu: &Gpu,
    kind: Loss,
    pred: &GpuTensor,
    target: Target<'_, Gpu>,
    grad: &crate::gpu::runtime::Buf,
    loss: &crate::gpu::runtime::Buf,
    entry: &'static str,
    groups: u32,
) -> Result<()> {
    let (labels, dense, has_labels) = match target {
        Target::Labels(l) => (&l.buf, &*gpu.dummy, true),
        Target::Dense(t) => (&*gpu.dummy, &t.buf, false),
    };
    let constants = [
        ("LOSS", kind.code() as f64),
        ("HAS_LABELS", has_labels as u32 as f64),
    ];
    let kernel = Kernel {
        shader: &LOSS,
        entry,
        constants: &constants,
    };
    gpu.ctx.dispatch(
        &kernel,
        &LossParams {
            rows: pred.rows as u32,
            cols: pred.cols as u32,
            smoothing: kind.smoothing() as f32,
            beta: kind.rbf_beta() as f32,
        },
        &[
            Bind::read(&pred.buf),
            Bind::read(labels),
            Bind::read(dense),
            Bind::write(grad),
            Bind::write(loss),
        ],
        [groups, 1, 1],
    )
}
