//! The CPU matmul: the product through `gemm`, with the epilogue (bias,
//! activation, gate) on each row of C while it is in cache; and the
//! textbook loop it is tested against.

use super::gemm::{gemm, Epilogue};
use super::{check_matmul, MatmulSpec};
use crate::backend::simd::widest;
use crate::backend::{Activation, CpuTensor};
use crate::ops::activation::{with_act, Act};
use crate::Result;
use num_traits::Float;

pub(crate) fn matmul<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    a: &CpuTensor<T>,
    b: &CpuTensor<T>,
    out: &mut CpuTensor<T>,
    spec: MatmulSpec<'_, CpuTensor<T>>,
) -> Result<()> {
    let mnk = spec.dims(a, b);
    let epilogue = epilogue(&spec, mnk.1);
    let epilogue = epilogue.as_ref().map(|e| e as Epilogue<'_, T>);
    let (a_op, b_op) = (
        (&a.data[..], spec.transpose_a),
        (&b.data[..], spec.transpose_b),
    );
    if !gemm(mnk, a_op, b_op, &mut out.data, epilogue) {
        return reference_matmul(a, b, out, spec);
    }
    Ok(())
}

/// What `spec` does to each row of C (`n` columns) after the product, while
/// it is in cache: `act(· + bias)`, then `⊙ act'(z)`; `None` when nothing.
pub(crate) fn epilogue<'a, T: Float + Send + Sync + 'static>(
    spec: &MatmulSpec<'a, CpuTensor<T>>,
    n: usize,
) -> Option<impl Fn(usize, usize, &mut [T]) + Sync + 'a> {
    let (bias, act, gate) = (spec.bias, spec.act, spec.gate);
    if bias.is_none() && act == Activation::Identity && gate.is_none() {
        return None;
    }
    // (Compiled for the widest vectors: it is called through a `dyn Fn`.)
    Some(move |i: usize, j0: usize, row: &mut [T]| {
        widest(
            #[inline(always)]
            || {
                if bias.is_some() || act != Activation::Identity {
                    with_act!(act, |act| match bias {
                        Some(bias) => {
                            for (v, &b) in row.iter_mut().zip(&bias.data[j0..]) {
                                *v = act.apply(*v + b);
                            }
                        }
                        None => row.iter_mut().for_each(|v| *v = act.apply(*v)),
                    });
                }
                if let Some((gate, z)) = gate {
                    let z = &z.data[i * n + j0..][..row.len()];
                    with_act!(gate, |gate| for (v, &zv) in row.iter_mut().zip(z) {
                        *v = *v * gate.derivative(zv);
                    });
                }
            },
        )
    })
}

/// `out = act(op(A)·op(B) + bias)` by the textbook triple loop, summing each
/// output over k in order: the reference that the CPU backend's fast
/// [`Backend::matmul`] is tested against (and through it, the GPU kernels).
/// Same checks and errors as [`Backend::matmul`].
///
/// ```
/// use wgtrain::backend::reference_matmul;
/// use wgtrain::{Backend, Cpu, MatmulSpec};
/// let cpu = Cpu::<f64>::new();
/// let a = cpu.upload_f64(2, 2, &[1., 2., 3., 4.]).unwrap();
/// let mut c = cpu.zeros(2, 2).unwrap();
/// reference_matmul(&a, &a, &mut c, MatmulSpec::default()).unwrap();
/// assert_eq!(c.data(), &[7., 10., 15., 22.]);
/// ```
pub fn reference_matmul<T: Float>(
    a: &CpuTensor<T>,
    b: &CpuTensor<T>,
    out: &mut CpuTensor<T>,
    spec: MatmulSpec<'_, CpuTensor<T>>,
) -> Result<()> {
    let (m, n, k) = check_matmul(a, b, out, &spec)?;
    // Element (i, p) of op(A) and (p, j) of op(B), whatever the storage.
    let a_at = |i: usize, p: usize| {
        if spec.transpose_a {
            a.data[p * m + i]
        } else {
            a.data[i * k + p]
        }
    };
    let b_at = |p: usize, j: usize| {
        if spec.transpose_b {
            b.data[j * k + p]
        } else {
            b.data[p * n + j]
        }
    };
    let mut row = vec![T::zero(); n];
    for i in 0..m {
        row.iter_mut().for_each(|v| *v = T::zero());
        for p in 0..k {
            let aip = a_at(i, p);
            for (j, acc) in row.iter_mut().enumerate() {
                *acc = *acc + aip * b_at(p, j);
            }
        }
        for (j, &acc) in row.iter().enumerate() {
            let z = match spec.bias {
                Some(bias) => acc + bias.data[j],
                None => acc,
            };
            let v = spec.act.apply(z);
            out.data[i * n + j] = match spec.gate {
                Some((gate, g)) => v * gate.derivative(g.data[i * n + j]),
                None => v,
            };
        }
    }
    Ok(())
}
