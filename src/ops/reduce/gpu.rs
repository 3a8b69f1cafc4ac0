//! The GPU dispatch of the reductions (shaders/reduce/reduce.wgsl).

use super::Reduce;
use crate::gpu::runtime::{Bind, Kernel};
use crate::gpu::{Gpu, GpuIndex, GpuTensor, REDUCE, REDUCE_GROUPS, SUM_COLS, WG};
use crate::{Result, Shaped};

/// `Params` of shaders/reduce/reduce.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ReduceParams {
    rows: u32,
    cols: u32,
    /// Elements to reduce (partial, final), or k (count_top_k).
    n: u32,
    /// final: n for a mean, 1 otherwise.
    divisor: f32,
}

/// One pass of a sum along one axis of `x` into `out`: `entry` of
/// shaders/reduce/reduce.wgsl over `groups` workgroups.
fn sum_along(
    gpu: &Gpu,
    entry: &'static str,
    x: &GpuTensor,
    out: &mut GpuTensor,
    groups: [u32; 3],
) -> Result<()> {
    let kernel = Kernel {
        shader: &REDUCE,
        entry,
        constants: &[],
    };
    gpu.ctx.dispatch(
        &kernel,
        &ReduceParams {
            rows: x.rows as u32,
            cols: x.cols as u32,
            n: 0,
            divisor: 1.0,
        },
        &[Bind::read(&x.buf), Bind::write(&out.buf)],
        groups,
    )
}

pub(crate) fn sum_rows(gpu: &Gpu, x: &GpuTensor, out: &mut GpuTensor) -> Result<()> {
    let groups = [(x.cols as u32).div_ceil(SUM_COLS), 1, 1];
    sum_along(gpu, "sum_rows", x, out, groups)
}

pub(crate) fn sum_cols(gpu: &Gpu, x: &GpuTensor, out: &mut GpuTensor) -> Result<()> {
    // One workgroup per row.
    let groups = gpu.ctx.linear_groups(x.rows, 1);
    sum_along(gpu, "sum_cols", x, out, groups)
}

pub(crate) fn reduce(gpu: &Gpu, op: Reduce, x: &GpuTensor, out: &mut GpuTensor) -> Result<()> {
    // A mean is the sum divided once at the end.
    let max = matches!(op, Reduce::Max | Reduce::AbsMax);
    let abs = matches!(op, Reduce::AbsMax | Reduce::AbsSum);
    let constants = [("MAX", max as u32 as f64), ("ABS", abs as u32 as f64)];
    let n = x.len();
    let divisor = if op == Reduce::Mean { n as f32 } else { 1.0 };
    let groups = n.div_ceil(WG as usize).min(REDUCE_GROUPS);
    // Pass 1 leaves one partial per workgroup; pass 2 combines them.
    let partials = gpu.ctx.alloc((groups * 4) as u64, "reduction partials")?;
    let partial = Kernel {
        shader: &REDUCE,
        entry: "partial",
        constants: &constants,
    };
    gpu.ctx.dispatch(
        &partial,
        &ReduceParams {
            rows: 0,
            cols: 0,
            n: n as u32,
            divisor: 1.0,
        },
        &[Bind::read(&x.buf), Bind::write(&partials)],
        [groups as u32, 1, 1],
    )?;
    let fin = Kernel {
        shader: &REDUCE,
        entry: "final_",
        constants: &constants,
    };
    gpu.ctx.dispatch(
        &fin,
        &ReduceParams {
            rows: 0,
            cols: 0,
            n: groups as u32,
            divisor,
        },
        &[Bind::read(&partials), Bind::write(&out.buf)],
        [1, 1, 1],
    )
}

pub(crate) fn count_top_k(
    gpu: &Gpu,
    pred: &GpuTensor,
    labels: &GpuIndex,
    k: usize,
    correct: &mut GpuTensor,
) -> Result<()> {
    let kernel = Kernel {
        shader: &REDUCE,
        entry: "count_top_k",
        constants: &[],
    };
    gpu.ctx.dispatch(
        &kernel,
        &ReduceParams {
            rows: pred.rows as u32,
            cols: pred.cols as u32,
            n: k as u32,
            divisor: 1.0,
        },
        &[
            Bind::read(&pred.buf),
            Bind::read(&labels.buf),
            Bind::write(&correct.buf),
        ],
        [1, 1, 1],
    )
}
