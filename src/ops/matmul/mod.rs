//! Matrix products with a fused epilogue: `out = act(op(A)·op(B) + bias) ⊙
//! gate'(z)`, the op that carries the FLOPs of a step. Here: the spec and
//! its check; `cpu.rs`: the CPU kernel (`gemm.rs`, through
//! matrixmultiply) and the plain triple loop it is checked against;
//! `gpu.rs`: the kernel families, the tiled plans and the dispatch, whose
//! WGSL pieces are under `shaders/matmul/` (composed in
//! src/gpu/shaders.rs). Parity on every form and kernel: `tests/kernels.rs`
//! and `tests/cpu_matmul.rs`; timings: `examples/sgemm.rs`, `benches/`.

pub(crate) mod cpu;
pub(crate) mod cpu_engine;
pub(crate) mod gemm;
pub(crate) mod gpu;
pub(crate) mod narrow;
#[cfg(target_arch = "x86_64")]
pub(crate) mod packed;
/// Off x86-64 the packed kernel never runs.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) mod packed {
    use super::gemm::{At, Block};

    pub(crate) fn runs(_: Block) -> bool {
        false
    }

    pub(crate) fn on_this_cpu() -> bool {
        false
    }

    pub(crate) unsafe fn product(_: Block, _: At<*const f32>, _: At<*const f32>, _: At<*mut f32>) {
        unreachable!("packed::runs is false off x86-64")
    }
}
#[cfg(test)]
mod tests;
pub(crate) mod transpose;

pub use cpu::reference_matmul;

use crate::backend::checks::shape_err;
use crate::backend::{Activation, Shaped};
use crate::Result;

/// Which form of matrix product, and what to fuse into its epilogue.
///
/// `out = act(op(A)·op(B) + bias)` where `op(A) = Aᵀ` if `transpose_a`.
/// `bias`, if given, is a `1 × n` row added to every row of the product.
///
/// ```
/// use wgtrain::{MatmulSpec, Activation, CpuTensor};
/// // Z = X·Wᵀ + b, then ReLU: the forward pass of a dense layer.
/// let spec: MatmulSpec<'_, CpuTensor<f32>> =
///     MatmulSpec { transpose_b: true, act: Activation::Relu, ..Default::default() };
/// assert!(!spec.transpose_a);
/// ```
#[derive(Debug)]
pub struct MatmulSpec<'a, T> {
    /// Use `Aᵀ` (A is stored `k × m`).
    pub transpose_a: bool,
    /// Use `Bᵀ` (B is stored `n × k`).
    pub transpose_b: bool,
    /// A `1 × n` row added to every row of the product.
    pub bias: Option<&'a T>,
    /// Applied after the bias.
    pub act: Activation,
    /// Multiplies the result elementwise by `act'(z)` with `z` a tensor
    /// shaped like the output: the backward pass of the activation before a
    /// dense layer, fused into the product that computes `δ·W`.
    pub gate: Option<(Activation, &'a T)>,
}

impl<T> Default for MatmulSpec<'_, T> {
    fn default() -> Self {
        MatmulSpec {
            transpose_a: false,
            transpose_b: false,
            bias: None,
            act: Activation::Identity,
            gate: None,
        }
    }
}

impl<T> Clone for MatmulSpec<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for MatmulSpec<'_, T> {}

impl<T: Shaped> MatmulSpec<'_, T> {
    /// `(m, n, k)` of `op(A)·op(B)` read off the operands, which the front
    /// has checked agree.
    pub(crate) fn dims(&self, a: &T, b: &T) -> (usize, usize, usize) {
        let (m, k) = if self.transpose_a {
            (a.cols(), a.rows())
        } else {
            (a.rows(), a.cols())
        };
        let n = if self.transpose_b { b.rows() } else { b.cols() };
        (m, n, k)
    }
}

/// Checks a matmul's operands and returns `(m, n, k)`.
pub(crate) fn check_matmul<T: Shaped>(
    a: &T,
    b: &T,
    out: &T,
    spec: &MatmulSpec<'_, T>,
) -> Result<(usize, usize, usize)> {
    let (m, ka) = if spec.transpose_a {
        (a.cols(), a.rows())
    } else {
        (a.rows(), a.cols())
    };
    let (kb, n) = if spec.transpose_b {
        (b.cols(), b.rows())
    } else {
        (b.rows(), b.cols())
    };
    let form = match (spec.transpose_a, spec.transpose_b) {
        (false, false) => "A·B",
        (true, false) => "Aᵀ·B",
        (false, true) => "A·Bᵀ",
        (true, true) => "Aᵀ·Bᵀ",
    };
    if ka != kb {
        return Err(shape_err(
            "matmul",
            format!(
                "{form} with A {} and B {}: inner dimensions {ka} and {kb} differ",
                a.shape_str(),
                b.shape_str()
            ),
        ));
    }
    if out.rows() != m || out.cols() != n {
        return Err(shape_err(
            "matmul",
            format!("{form} gives {m}x{n} but the output is {}", out.shape_str()),
        ));
    }
    if let Some(bias) = spec.bias {
        if bias.rows() != 1 || bias.cols() != n {
            return Err(shape_err(
                "matmul",
                format!("bias must be 1x{n}, got {}", bias.shape_str()),
            ));
        }
    }
    if let Some((_, z)) = spec.gate {
        if z.rows() != m || z.cols() != n {
            return Err(shape_err(
                "matmul",
                format!(
                    "gate must be {m}x{n} like the output, got {}",
                    z.shape_str()
                ),
            ));
        }
    }
    Ok((m, n, ka))
}
