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
    _pad: u32,
}

pub(crate) fn loss(
    gpu: &Gpu,
    kind: Loss,
    pred: &GpuTensor,
    target: Target<'_, Gpu>,
    grad: &mut GpuTensor,
    loss: &mut GpuTensor,
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
        entry: "main",
        constants: &constants,
    };
    gpu.ctx.dispatch(
        &kernel,
        &LossParams {
            rows: pred.rows as u32,
            cols: pred.cols as u32,
            smoothing: kind.smoothing() as f32,
            _pad: 0,
        },
        &[
            Bind::read(&pred.buf),
            Bind::read(labels),
            Bind::read(dense),
            Bind::write(&grad.buf),
            Bind::write(&loss.buf),
        ],
        [1, 1, 1],
    )
}
