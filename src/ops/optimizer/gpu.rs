//! The GPU dispatch of the optimizer update (shaders/optimizer/update.wgsl),
//! and the squared global norm that clipping by norm needs.

use super::UpdateRule;
use crate::gpu::runtime::{Bind, Kernel};
use crate::gpu::{Gpu, GpuTensor, OPTIMIZER, REDUCE_GROUPS, WG};
use crate::{Result, Shaped};

/// `Params` of shaders/optimizer/update.wgsl, field for field: the step's
/// scalars, computed in f64 on the host and rounded once.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct UpdateParams {
    n: u32,
    first: u32,
    step_size: f32,
    weight_decay: f32,
    decay: f32,
    l1: f32,
    clip: f32,
    a: f32,
    a_c: f32,
    b: f32,
    b_c: f32,
    eps: f32,
    bc2_sqrt: f32,
}

impl UpdateParams {
    /// The parameters of the squared-norm passes, which read `n` alone.
    fn count(n: usize) -> Self {
        UpdateParams {
            n: n as u32,
            ..bytemuck::Zeroable::zeroed()
        }
    }
}

/// One fused step of `rule` on `param` and its state.
pub(crate) fn optimizer_update(
    gpu: &Gpu,
    rule: &UpdateRule,
    step: u64,
    param: &mut GpuTensor,
    grad: &GpuTensor,
    state: &mut [GpuTensor],
    grad_sq_norm: Option<&GpuTensor>,
) -> Result<()> {
    let k = rule.scalars(step);
    let params = UpdateParams {
        n: param.len() as u32,
        first: k.first as u32,
        step_size: k.step_size as f32,
        weight_decay: k.weight_decay as f32,
        decay: k.decay as f32,
        l1: k.l1 as f32,
        clip: k.clip as f32,
        a: k.a as f32,
        a_c: k.a_c as f32,
        b: k.b as f32,
        b_c: k.b_c as f32,
        eps: k.eps as f32,
        bc2_sqrt: k.bc2_sqrt as f32,
    };
    let (flag, momentum) = rule.method.switches();
    let constants = [
        ("RULE", rule.method.code() as f64),
        ("FLAG", flag as u32 as f64),
        ("MOMENTUM", momentum as u32 as f64),
        ("CLIP", rule.clip.code() as f64),
    ];
    let kernel = Kernel {
        shader: &OPTIMIZER,
        entry: "update",
        constants: &constants,
    };
    // Every state position is bound; the ones this rule does not use get a
    // scratch word each, which the kernel never touches (one word for all
    // would be two writable bindings of one range, which WebGPU refuses).
    let unused = rule.method.slots().iter().filter(|s| s.is_none()).count();
    let scratch = (0..unused)
        .map(|_| gpu.ctx.alloc(4, "unused optimizer state"))
        .collect::<Result<Vec<_>>>()?;
    let mut spare = scratch.iter();
    let mut given = state.iter();
    let slots = rule.method.slots().map(|used| match used {
        Some(_) => {
            &given
                .next()
                .expect("checked: one tensor per state name")
                .buf
        }
        None => spare.next().expect("one scratch word per unused slot"),
    });
    let norm = grad_sq_norm.map_or(&*gpu.dummy, |t| &t.buf);
    gpu.ctx.dispatch(
        &kernel,
        &params,
        &[
            Bind::write(&param.buf),
            Bind::read(&grad.buf),
            Bind::write(slots[0]),
            Bind::write(slots[1]),
            Bind::write(slots[2]),
            Bind::read(norm),
        ],
        gpu.ctx.linear_groups(param.len(), WG),
    )
}

/// `acc += Σ x²` in two passes with a fixed order of summation.
/// `acc += Σ x²`, or `acc += Σ x·y` with `y` (the same two passes, the
/// first reading `y` beside `x`).
pub(crate) fn accumulate_sum_squares(
    gpu: &Gpu,
    x: &GpuTensor,
    y: Option<&GpuTensor>,
    acc: &mut GpuTensor,
) -> Result<()> {
    let n = x.len();
    let groups = n.div_ceil(WG as usize).min(REDUCE_GROUPS);
    let partials = gpu
        .ctx
        .alloc((groups * 4) as u64, "sum of squares partials")?;
    let pass = |entry| Kernel {
        shader: &OPTIMIZER,
        entry,
        constants: &[],
    };
    // Σ x·x reads x through both bindings (read-only aliasing is allowed).
    let y = y.unwrap_or(x);
    gpu.ctx.dispatch(
        &pass("sq_partial"),
        &UpdateParams::count(n),
        &[
            Bind::read(&x.buf),
            Bind::write(&partials),
            Bind::read(&y.buf),
        ],
        [groups as u32, 1, 1],
    )?;
    gpu.ctx.dispatch(
        &pass("sq_final"),
        &UpdateParams::count(groups),
        &[Bind::read(&partials), Bind::write(&acc.buf)],
        [1, 1, 1],
    )
}
