//! The CPU backend: every operation written out plainly, generic over `f32`
//! (for parity with the GPU) and `f64` (for gradient checks and textbook
//! numbers). This is the reference the WGSL kernels are tested against.
//! Matmul alone takes a fast path (`matrixmultiply`), itself tested against
//! the plain loop that [`reference_matmul`] keeps.

use super::ops::{check_indices, check_len, check_loss, check_matmul, check_nonempty, check_same, shape_err};
use super::gemm::gemm;
use super::{Activation, Backend, IndexVector, Loss, MatmulSpec, Reduce, Shaped, Target};
use crate::Result;
use num_traits::Float;
use std::marker::PhantomData;

/// The CPU backend, computing in `T` (`f32` or `f64`).
///
/// ```
/// use wgtrain::{Backend, Cpu};
/// let cpu = Cpu::<f64>::new();
/// let mut t = cpu.upload_f64(1, 3, &[1.0, 2.0, 3.0]).unwrap();
/// cpu.scale(&mut t, 2.0).unwrap();
/// assert_eq!(cpu.download(&t).unwrap(), vec![2.0, 4.0, 6.0]);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu<T> {
    _scalar: PhantomData<T>,
}

impl<T> Cpu<T> {
    /// The CPU backend.
    pub fn new() -> Self {
        Cpu { _scalar: PhantomData }
    }
}

/// A matrix in host memory.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuTensor<T> {
    rows: usize,
    cols: usize,
    data: Vec<T>,
}

impl<T> CpuTensor<T> {
    /// The values, row-major.
    pub fn data(&self) -> &[T] {
        &self.data
    }
}

impl<T> Shaped for CpuTensor<T> {
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
}

/// A `u32` vector in host memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuIndex {
    data: Vec<u32>,
    bound: usize,
}

impl IndexVector for CpuIndex {
    fn len(&self) -> usize {
        self.data.len()
    }
    fn bound(&self) -> usize {
        self.bound
    }
}

/// The name of a scalar type, for [`Backend::describe`].
fn type_name<T: 'static>() -> &'static str {
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f64>() {
        "f64"
    } else {
        "f32"
    }
}

fn cast<T: Float>(v: f64) -> T {
    T::from(v).expect("every f64 converts to a float type")
}

impl<T: Float + std::fmt::Debug + Send + Sync + 'static> Backend for Cpu<T> {
    type Scalar = T;
    type Tensor = CpuTensor<T>;
    type Index = CpuIndex;

    fn describe(&self) -> String {
        format!("CPU backend ({}, matmul by matrixmultiply)", type_name::<T>())
    }

    fn zeros(&self, rows: usize, cols: usize) -> Result<CpuTensor<T>> {
        check_nonempty("zeros", rows, cols)?;
        Ok(CpuTensor { rows, cols, data: vec![T::zero(); rows * cols] })
    }

    fn upload(&self, rows: usize, cols: usize, data: &[f32]) -> Result<CpuTensor<T>> {
        check_nonempty("upload", rows, cols)?;
        check_len("upload", rows * cols, data.len())?;
        Ok(CpuTensor { rows, cols, data: data.iter().map(|&v| cast(v as f64)).collect() })
    }

    fn upload_f64(&self, rows: usize, cols: usize, data: &[f64]) -> Result<CpuTensor<T>> {
        check_nonempty("upload", rows, cols)?;
        check_len("upload", rows * cols, data.len())?;
        Ok(CpuTensor { rows, cols, data: data.iter().map(|&v| cast(v)).collect() })
    }

    fn write(&self, t: &mut CpuTensor<T>, data: &[f64]) -> Result<()> {
        check_len("write", t.data.len(), data.len())?;
        for (d, &v) in t.data.iter_mut().zip(data) {
            *d = cast(v);
        }
        Ok(())
    }

    fn download(&self, t: &CpuTensor<T>) -> Result<Vec<f64>> {
        Ok(t.data.iter().map(|v| v.to_f64().unwrap_or(f64::NAN)).collect())
    }

    fn copy(&self, src: &CpuTensor<T>, dst: &mut CpuTensor<T>) -> Result<()> {
        check_same("copy", "source vs destination", src, dst)?;
        dst.data.copy_from_slice(&src.data);
        Ok(())
    }

    fn indices(&self, data: &[u32], bound: usize) -> Result<CpuIndex> {
        check_indices("indices", data, bound)?;
        Ok(CpuIndex { data: data.to_vec(), bound })
    }

    fn write_indices(&self, idx: &mut CpuIndex, data: &[u32]) -> Result<()> {
        check_len("write_indices", idx.data.len(), data.len())?;
        check_indices("write_indices", data, idx.bound)?;
        idx.data.copy_from_slice(data);
        Ok(())
    }

    fn download_indices(&self, idx: &CpuIndex) -> Result<Vec<u32>> {
        Ok(idx.data.clone())
    }

    fn matmul(
        &self,
        a: &CpuTensor<T>,
        b: &CpuTensor<T>,
        out: &mut CpuTensor<T>,
        spec: MatmulSpec<'_, CpuTensor<T>>,
    ) -> Result<()> {
        let mnk = check_matmul(a, b, out, &spec)?;
        if !gemm(mnk, &a.data, spec.transpose_a, &b.data, spec.transpose_b, &mut out.data) {
            return reference_matmul(a, b, out, spec);
        }
        if spec.bias.is_none() && spec.act == Activation::Identity {
            return Ok(());
        }
        for row in out.data.chunks_mut(mnk.1) {
            for (j, v) in row.iter_mut().enumerate() {
                let z = match spec.bias {
                    Some(bias) => *v + bias.data[j],
                    None => *v,
                };
                *v = spec.act.apply(z);
            }
        }
        Ok(())
    }

    fn activation(&self, act: Activation, x: &CpuTensor<T>, out: &mut CpuTensor<T>) -> Result<()> {
        check_same("activation", "input vs output", x, out)?;
        for (o, &v) in out.data.iter_mut().zip(&x.data) {
            *o = act.apply(v);
        }
        Ok(())
    }

    fn activation_backward(
        &self,
        act: Activation,
        z: &CpuTensor<T>,
        grad_out: &CpuTensor<T>,
        grad_in: &mut CpuTensor<T>,
    ) -> Result<()> {
        check_same("activation_backward", "pre-activation vs gradient", z, grad_out)?;
        check_same("activation_backward", "pre-activation vs input gradient", z, grad_in)?;
        for ((gi, &g), &zv) in grad_in.data.iter_mut().zip(&grad_out.data).zip(&z.data) {
            *gi = g * act.derivative(zv);
        }
        Ok(())
    }

    fn sum_rows(&self, x: &CpuTensor<T>, out: &mut CpuTensor<T>) -> Result<()> {
        if out.rows != 1 || out.cols != x.cols {
            return Err(shape_err("sum_rows", format!("input {} needs output 1x{}, got {}", x.shape_str(), x.cols, out.shape_str())));
        }
        out.data.iter_mut().for_each(|v| *v = T::zero());
        for row in x.data.chunks(x.cols) {
            for (o, &v) in out.data.iter_mut().zip(row) {
                *o = *o + v;
            }
        }
        Ok(())
    }

    fn reduce(&self, op: Reduce, x: &CpuTensor<T>, out: &mut CpuTensor<T>) -> Result<()> {
        if out.len() != 1 {
            return Err(shape_err("reduce", format!("output must be 1x1, got {}", out.shape_str())));
        }
        let sum = || x.data.iter().fold(T::zero(), |s, &v| s + v);
        out.data[0] = match op {
            Reduce::Sum => sum(),
            Reduce::Mean => sum() / cast(x.data.len() as f64),
            // NaN propagates, as torch.max does.
            Reduce::Max => x.data.iter().fold(T::neg_infinity(), |m, &v| if v.is_nan() || m.is_nan() { T::nan() } else { m.max(v) }),
        };
        Ok(())
    }

    fn loss(
        &self,
        kind: Loss,
        pred: &CpuTensor<T>,
        target: Target<'_, Self>,
        grad: &mut CpuTensor<T>,
        loss: &mut CpuTensor<T>,
    ) -> Result<()> {
        check_loss::<Self>(kind, pred, &target, grad, loss)?;
        let (rows, cols) = (pred.rows, pred.cols);
        let inv_n: T = cast(1.0 / rows as f64);
        let mut total = T::zero();
        for i in 0..rows {
            let z = &pred.data[i * cols..(i + 1) * cols];
            let g = &mut grad.data[i * cols..(i + 1) * cols];
            let (row_loss, label) = match target {
                Target::Labels(l) => (T::zero(), Some(l.data[i] as usize)),
                Target::Dense(_) => (T::zero(), None),
            };
            // t(j): the target of column j, a one-hot when given a label.
            let dense = match target {
                Target::Dense(t) => Some(&t.data[i * cols..(i + 1) * cols]),
                Target::Labels(_) => None,
            };
            let t_at = |j: usize| match (label, dense) {
                (Some(y), _) => if j == y { T::one() } else { T::zero() },
                (None, Some(d)) => d[j],
                (None, None) => unreachable!("a target is either labels or dense"),
            };
            let mut row_loss = row_loss;
            match kind {
                Loss::SoftmaxCrossEntropy => {
                    // loss = logsumexp(z)·Σt − Σ t·z; grad = softmax(z)·Σt − t.
                    let max = z.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
                    let sum_exp = z.iter().fold(T::zero(), |s, &v| s + (v - max).exp());
                    let lse = max + sum_exp.ln();
                    let t_sum = (0..cols).fold(T::zero(), |s, j| s + t_at(j));
                    row_loss = lse * t_sum - (0..cols).fold(T::zero(), |s, j| s + t_at(j) * z[j]);
                    for j in 0..cols {
                        g[j] = ((z[j] - lse).exp() * t_sum - t_at(j)) * inv_n;
                    }
                }
                Loss::SquaredError => {
                    for j in 0..cols {
                        let d = z[j] - t_at(j);
                        row_loss = row_loss + cast::<T>(0.5) * d * d;
                        g[j] = d * inv_n;
                    }
                }
                Loss::L1 => {
                    for j in 0..cols {
                        let d = z[j] - t_at(j);
                        row_loss = row_loss + d.abs();
                        let s = if d > T::zero() { T::one() } else if d < T::zero() { -T::one() } else { T::zero() };
                        g[j] = s * inv_n;
                    }
                }
                Loss::Hinge | Loss::SquaredHinge => {
                    let y = label.expect("checked: hinge losses take labels");
                    let squared = kind == Loss::SquaredHinge;
                    let mut g_y = T::zero();
                    for j in 0..cols {
                        g[j] = T::zero();
                        if j == y {
                            continue;
                        }
                        let margin = z[j] - z[y] + T::one();
                        if margin > T::zero() {
                            let (l, d) = if squared { (margin * margin, cast::<T>(2.0) * margin) } else { (margin, T::one()) };
                            row_loss = row_loss + l;
                            g[j] = d * inv_n;
                            g_y = g_y - d * inv_n;
                        }
                    }
                    g[y] = g_y;
                }
                Loss::BinaryCrossEntropy => {
                    // max(z,0) − z·t + ln(1 + e^(−|z|)); grad σ(z) − t.
                    for j in 0..cols {
                        let (zj, tj) = (z[j], t_at(j));
                        row_loss = row_loss + zj.max(T::zero()) - zj * tj + (-zj.abs()).exp().ln_1p();
                        g[j] = (Activation::Sigmoid.apply(zj) - tj) * inv_n;
                    }
                }
            }
            total = total + row_loss;
        }
        loss.data[0] = total * inv_n;
        Ok(())
    }

    fn gather_rows(&self, src: &CpuTensor<T>, idx: &CpuIndex, out: &mut CpuTensor<T>) -> Result<()> {
        check_gather(src, idx, out)?;
        let c = src.cols;
        for (i, &r) in idx.data.iter().enumerate() {
            out.data[i * c..(i + 1) * c].copy_from_slice(&src.data[r as usize * c..(r as usize + 1) * c]);
        }
        Ok(())
    }

    fn gather_indices(&self, src: &CpuIndex, idx: &CpuIndex, out: &mut CpuIndex) -> Result<()> {
        check_gather_indices(src, idx, out)?;
        for (o, &i) in out.data.iter_mut().zip(&idx.data) {
            *o = src.data[i as usize];
        }
        Ok(())
    }

    fn fill(&self, t: &mut CpuTensor<T>, value: f64) -> Result<()> {
        t.data.iter_mut().for_each(|v| *v = cast(value));
        Ok(())
    }

    fn scale(&self, t: &mut CpuTensor<T>, alpha: f64) -> Result<()> {
        let a: T = cast(alpha);
        t.data.iter_mut().for_each(|v| *v = *v * a);
        Ok(())
    }

    fn axpy(&self, alpha: f64, x: &CpuTensor<T>, y: &mut CpuTensor<T>) -> Result<()> {
        check_same("axpy", "x vs y", x, y)?;
        let a: T = cast(alpha);
        for (yv, &xv) in y.data.iter_mut().zip(&x.data) {
            *yv = a * xv + *yv;
        }
        Ok(())
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
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
    let a_at = |i: usize, p: usize| if spec.transpose_a { a.data[p * m + i] } else { a.data[i * k + p] };
    let b_at = |p: usize, j: usize| if spec.transpose_b { b.data[j * k + p] } else { b.data[p * n + j] };
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
            out.data[i * n + j] = spec.act.apply(z);
        }
    }
    Ok(())
}

/// Checks a row gather: `out` has one row per index and `src`'s width, and
/// the indices were bounded by `src`'s rows when written.
pub(crate) fn check_gather(src: &impl Shaped, idx: &impl IndexVector, out: &impl Shaped) -> Result<()> {
    if out.rows() != idx.len() || out.cols() != src.cols() {
        return Err(shape_err(
            "gather_rows",
            format!("{} indices into {} need output {}x{}, got {}", idx.len(), src.shape_str(), idx.len(), src.cols(), out.shape_str()),
        ));
    }
    if idx.bound() > src.rows() {
        return Err(shape_err("gather_rows", format!("indices may reach {} but the source has {} rows", idx.bound() - 1, src.rows())));
    }
    Ok(())
}

pub(crate) fn check_gather_indices(src: &impl IndexVector, idx: &impl IndexVector, out: &impl IndexVector) -> Result<()> {
    if out.len() != idx.len() || out.bound() != src.bound() {
        return Err(shape_err(
            "gather_indices",
            format!("{} indices need an output of length {} and bound {}, got length {} bound {}", idx.len(), idx.len(), src.bound(), out.len(), out.bound()),
        ));
    }
    if idx.bound() > src.len() {
        return Err(shape_err("gather_indices", format!("indices may reach {} but the source has {} entries", idx.bound() - 1, src.len())));
    }
    Ok(())
}
