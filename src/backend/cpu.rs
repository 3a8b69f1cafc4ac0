//! The CPU backend: every operation written out plainly, generic over `f32`
//! (for parity with the GPU) and `f64` (for gradient checks and textbook
//! numbers). This is the reference the WGSL kernels are tested against.
//! Matmul takes a fast path (`matrixmultiply`), itself tested against the
//! plain loop that [`reference_matmul`] keeps. The elementwise operations and
//! the optimizer step compile one loop per activation or rule variant and run
//! large tensors on all cores; both only rearrange which loop computes an
//! element, never the arithmetic, so results are the same bit for bit.

use super::{
    Activation, DenseGrads, DropoutMask, IndexVector, Kernels, Loss, MatmulSpec, Reduce, Shaped,
    Target, UpdateRule,
};
use crate::ops::activation;
use crate::ops::conv::{ChannelBlock, ConvGrads, ConvGroup, Pool, Window2d};
use crate::ops::{batch_norm, conv, dropout, elementwise, gather, loss, matmul, optimizer, reduce};
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
        Cpu {
            _scalar: PhantomData,
        }
    }
}

/// A matrix in host memory.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuTensor<T> {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) data: Vec<T>,
}

impl<T> CpuTensor<T> {
    /// The values, row-major.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// The values, row-major, for the op folders' CPU kernels.
    pub(crate) fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
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
    pub(crate) data: Vec<u32>,
    pub(crate) bound: usize,
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

pub(crate) fn cast<T: Float>(v: f64) -> T {
    T::from(v).expect("every f64 converts to a float type")
}

impl<T: Float + std::fmt::Debug + Send + Sync + 'static> Kernels for Cpu<T> {
    type Scalar = T;
    type Tensor = CpuTensor<T>;
    type Index = CpuIndex;

    fn describe(&self) -> String {
        format!(
            "CPU backend ({}, matmul by {})",
            type_name::<T>(),
            super::cpu_gemm().describe()
        )
    }

    fn zeros(&self, rows: usize, cols: usize) -> Result<CpuTensor<T>> {
        let mut data = alloc::<T>(rows, cols)?;
        data.resize(rows * cols, T::zero());
        Ok(CpuTensor { rows, cols, data })
    }

    fn upload(&self, rows: usize, cols: usize, data: &[f32]) -> Result<CpuTensor<T>> {
        let mut values = alloc::<T>(rows, cols)?;
        values.extend(data.iter().map(|&v| cast::<T>(v as f64)));
        Ok(CpuTensor {
            rows,
            cols,
            data: values,
        })
    }

    fn upload_f64(&self, rows: usize, cols: usize, data: &[f64]) -> Result<CpuTensor<T>> {
        let mut values = alloc::<T>(rows, cols)?;
        values.extend(data.iter().map(|&v| cast::<T>(v)));
        Ok(CpuTensor {
            rows,
            cols,
            data: values,
        })
    }

    fn write(&self, t: &mut CpuTensor<T>, data: &[f64]) -> Result<()> {
        for (d, &v) in t.data.iter_mut().zip(data) {
            *d = cast(v);
        }
        Ok(())
    }

    fn download_f32(&self, t: &CpuTensor<T>) -> Result<Vec<f32>> {
        Ok(t.data
            .iter()
            .map(|v| v.to_f32().unwrap_or(f32::NAN))
            .collect())
    }

    fn write_f32(&self, t: &mut CpuTensor<T>, data: &[f32]) -> Result<()> {
        for (d, &v) in t.data.iter_mut().zip(data) {
            *d = cast(v as f64);
        }
        Ok(())
    }

    fn download(&self, t: &CpuTensor<T>) -> Result<Vec<f64>> {
        Ok(t.data
            .iter()
            .map(|v| v.to_f64().unwrap_or(f64::NAN))
            .collect())
    }

    fn copy(&self, src: &CpuTensor<T>, dst: &mut CpuTensor<T>) -> Result<()> {
        dst.data.copy_from_slice(&src.data);
        Ok(())
    }

    fn indices(&self, data: &[u32], bound: usize) -> Result<CpuIndex> {
        Ok(CpuIndex {
            data: data.to_vec(),
            bound,
        })
    }

    fn write_indices(&self, idx: &mut CpuIndex, data: &[u32]) -> Result<()> {
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
        matmul::cpu::matmul(a, b, out, spec)
    }

    fn dense_backward(
        &self,
        g: &CpuTensor<T>,
        x: &CpuTensor<T>,
        w: &CpuTensor<T>,
        grads: DenseGrads<'_, CpuTensor<T>>,
    ) -> Result<()> {
        crate::ops::dense_backward::cpu::dense_backward(g, x, w, grads)
    }

    fn activation(&self, act: Activation, x: &CpuTensor<T>, out: &mut CpuTensor<T>) -> Result<()> {
        activation::cpu::forward(act, x, out);
        Ok(())
    }

    fn activation_backward(
        &self,
        act: Activation,
        z: &CpuTensor<T>,
        grad_out: &CpuTensor<T>,
        grad_in: &mut CpuTensor<T>,
    ) -> Result<()> {
        activation::cpu::backward(act, z, grad_out, grad_in);
        Ok(())
    }

    fn rbf_forward(
        &self,
        x: &CpuTensor<T>,
        centres: &CpuTensor<T>,
        beta: &CpuTensor<T>,
        out: &mut CpuTensor<T>,
        dist: &mut CpuTensor<T>,
    ) -> Result<()> {
        crate::ops::rbf::cpu::forward(x, centres, beta, out, dist);
        Ok(())
    }

    fn rbf_backward(
        &self,
        x: &CpuTensor<T>,
        centres: &CpuTensor<T>,
        beta: &CpuTensor<T>,
        dist: &CpuTensor<T>,
        grad_out: &CpuTensor<T>,
        grad_centres: &mut CpuTensor<T>,
        grad_beta: &mut CpuTensor<T>,
        grad_x: Option<&mut CpuTensor<T>>,
    ) -> Result<()> {
        crate::ops::rbf::cpu::backward(
            x,
            centres,
            beta,
            dist,
            grad_out,
            grad_centres,
            grad_beta,
            grad_x,
        );
        Ok(())
    }

    fn max_norm_rows(&self, w: &mut CpuTensor<T>, max_norm: f64) -> Result<()> {
        crate::ops::max_norm::cpu::max_norm_rows(w, max_norm);
        Ok(())
    }

    fn sum_rows(&self, x: &CpuTensor<T>, out: &mut CpuTensor<T>) -> Result<()> {
        reduce::cpu::sum_rows(x, out)
    }

    fn sum_cols(&self, x: &CpuTensor<T>, out: &mut CpuTensor<T>) -> Result<()> {
        reduce::cpu::sum_cols(x, out)
    }

    fn reduce(&self, op: Reduce, x: &CpuTensor<T>, out: &mut CpuTensor<T>) -> Result<()> {
        reduce::cpu::reduce(op, x, out)
    }

    fn loss(
        &self,
        kind: Loss,
        pred: &CpuTensor<T>,
        target: Target<'_, Self>,
        grad: &mut CpuTensor<T>,
        loss: &mut CpuTensor<T>,
    ) -> Result<()> {
        loss::cpu::loss(kind, pred, target, grad, loss)
    }

    fn loss_per_row(
        &self,
        kind: Loss,
        pred: &CpuTensor<T>,
        target: Target<'_, Self>,
        out: &mut CpuTensor<T>,
    ) -> Result<()> {
        loss::cpu::loss_per_row(kind, pred, target, out)
    }

    fn gather_rows(
        &self,
        src: &CpuTensor<T>,
        idx: &CpuIndex,
        offset: usize,
        out: &mut CpuTensor<T>,
    ) -> Result<()> {
        gather::cpu::gather_rows(src, idx, offset, out)
    }

    fn gather_indices(
        &self,
        src: &CpuIndex,
        idx: &CpuIndex,
        offset: usize,
        out: &mut CpuIndex,
    ) -> Result<()> {
        gather::cpu::gather_indices(src, idx, offset, out)
    }

    fn count_top_k(
        &self,
        pred: &CpuTensor<T>,
        labels: &CpuIndex,
        k: usize,
        correct: &mut CpuTensor<T>,
    ) -> Result<()> {
        reduce::cpu::count_top_k(pred, labels, k, correct)
    }

    fn max_tensor_len(&self) -> usize {
        (host_memory_bytes() / std::mem::size_of::<T>() as u64).min(isize::MAX as u64) as usize
    }

    fn fill(&self, t: &mut CpuTensor<T>, value: f64) -> Result<()> {
        elementwise::cpu::fill(t, value)
    }

    fn scale(&self, t: &mut CpuTensor<T>, alpha: f64) -> Result<()> {
        elementwise::cpu::scale(t, alpha)
    }

    fn axpy(&self, alpha: f64, x: &CpuTensor<T>, y: &mut CpuTensor<T>) -> Result<()> {
        elementwise::cpu::axpy(alpha, x, y)
    }

    fn dropout(&self, x: &CpuTensor<T>, out: &mut CpuTensor<T>, mask: &DropoutMask) -> Result<()> {
        dropout::cpu::dropout(x, out, mask)
    }

    fn add_noise(
        &self,
        x: &CpuTensor<T>,
        out: &mut CpuTensor<T>,
        draw: &crate::ops::noise::NoiseDraw,
    ) -> Result<()> {
        crate::ops::noise::cpu::add_noise(x, out, draw);
        Ok(())
    }

    fn augment(
        &self,
        x: &CpuTensor<T>,
        transforms: &CpuTensor<T>,
        keys: &CpuIndex,
        taps: &CpuTensor<T>,
        spec: &crate::ops::augment::WarpSpec,
        out: &mut CpuTensor<T>,
    ) -> Result<()> {
        crate::ops::augment::cpu::augment(x, transforms, keys, taps, spec, out)
    }

    fn im2col(
        &self,
        x: &CpuTensor<T>,
        w: &Window2d,
        block: &ChannelBlock,
        cols: &mut CpuTensor<T>,
    ) -> Result<()> {
        conv::cpu::im2col(x, w, block, cols);
        Ok(())
    }

    fn col2im(
        &self,
        cols: &CpuTensor<T>,
        w: &Window2d,
        block: &ChannelBlock,
        x: &mut CpuTensor<T>,
    ) -> Result<()> {
        conv::cpu::col2im(cols, w, block, x);
        Ok(())
    }

    fn channels_last(
        &self,
        x: &CpuTensor<T>,
        block: &ChannelBlock,
        out: &mut CpuTensor<T>,
    ) -> Result<()> {
        conv::cpu::channels_last(x, block, out);
        Ok(())
    }

    fn channels_first(
        &self,
        z: &CpuTensor<T>,
        block: &ChannelBlock,
        out: &mut CpuTensor<T>,
    ) -> Result<()> {
        conv::cpu::channels_first(z, block, out);
        Ok(())
    }

    fn channel_rows(
        &self,
        x: &CpuTensor<T>,
        block: &ChannelBlock,
        rows: &mut CpuTensor<T>,
    ) -> Result<()> {
        conv::cpu::channel_rows(x, block, rows);
        Ok(())
    }

    fn channel_planes(
        &self,
        rows: &CpuTensor<T>,
        block: &ChannelBlock,
        bias: Option<&CpuTensor<T>>,
        out: &mut CpuTensor<T>,
    ) -> Result<()> {
        conv::cpu::channel_planes(rows, block, bias, out);
        Ok(())
    }

    fn conv2d_scratch_shapes(&self, rows: usize, g: &ConvGroup) -> [(usize, usize); 2] {
        conv::cpu::scratch_shapes(rows, g)
    }

    fn conv2d(
        &self,
        x: &CpuTensor<T>,
        w: &CpuTensor<T>,
        bias: Option<&CpuTensor<T>>,
        g: &ConvGroup,
        scratch: &mut [CpuTensor<T>],
        out: &mut CpuTensor<T>,
    ) -> Result<()> {
        let [cols, z] = scratch else {
            unreachable!("checked: two scratch tensors")
        };
        conv::cpu::conv2d(x, w, bias, g, [cols, z], out);
        Ok(())
    }

    fn conv2d_backward(
        &self,
        x: &CpuTensor<T>,
        w: &CpuTensor<T>,
        grad_out: &CpuTensor<T>,
        g: &ConvGroup,
        scratch: &mut [CpuTensor<T>],
        _columns_kept: bool,
        grads: ConvGrads<'_, CpuTensor<T>>,
    ) -> Result<()> {
        // The columns are rebuilt per chunk in cache, never kept.
        let [cols, z] = scratch else {
            unreachable!("checked: two scratch tensors")
        };
        conv::cpu::conv2d_backward(x, w, grad_out, g, [cols, z], grads);
        Ok(())
    }

    fn pool2d(
        &self,
        kind: Pool,
        x: &CpuTensor<T>,
        w: &Window2d,
        out: &mut CpuTensor<T>,
        argmax: Option<&mut CpuTensor<T>>,
    ) -> Result<()> {
        conv::cpu::pool2d(kind, x, w, out, argmax);
        Ok(())
    }

    fn pool2d_backward(
        &self,
        kind: Pool,
        w: &Window2d,
        grad_out: &CpuTensor<T>,
        argmax: Option<&CpuTensor<T>>,
        grad_in: &mut CpuTensor<T>,
    ) -> Result<()> {
        conv::cpu::pool2d_backward(kind, w, grad_out, argmax, grad_in);
        Ok(())
    }

    fn copy_range(
        &self,
        src: &CpuTensor<T>,
        src_at: usize,
        dst: &mut CpuTensor<T>,
        dst_at: usize,
        len: usize,
    ) -> Result<()> {
        dst.data[dst_at..dst_at + len].copy_from_slice(&src.data[src_at..src_at + len]);
        Ok(())
    }

    fn batch_norm_train(
        &self,
        x: &CpuTensor<T>,
        gamma: &CpuTensor<T>,
        beta: &CpuTensor<T>,
        running_mean: &mut CpuTensor<T>,
        running_var: &mut CpuTensor<T>,
        saved: &mut CpuTensor<T>,
        out: &mut CpuTensor<T>,
        momentum: f64,
        eps: f64,
    ) -> Result<()> {
        batch_norm::cpu::batch_norm_train(
            x,
            gamma,
            beta,
            running_mean,
            running_var,
            saved,
            out,
            momentum,
            eps,
        )
    }

    fn batch_norm_eval(
        &self,
        x: &CpuTensor<T>,
        gamma: &CpuTensor<T>,
        beta: &CpuTensor<T>,
        running_mean: &CpuTensor<T>,
        running_var: &CpuTensor<T>,
        out: &mut CpuTensor<T>,
        eps: f64,
    ) -> Result<()> {
        batch_norm::cpu::batch_norm_eval(x, gamma, beta, running_mean, running_var, out, eps)
    }

    fn batch_norm_backward(
        &self,
        x: &CpuTensor<T>,
        gamma: &CpuTensor<T>,
        saved: &CpuTensor<T>,
        grad_out: &CpuTensor<T>,
        grad_in: &mut CpuTensor<T>,
        grad_gamma: &mut CpuTensor<T>,
        grad_beta: &mut CpuTensor<T>,
    ) -> Result<()> {
        batch_norm::cpu::batch_norm_backward(
            x, gamma, saved, grad_out, grad_in, grad_gamma, grad_beta,
        )
    }

    fn accumulate_sum_squares(&self, x: &CpuTensor<T>, acc: &mut CpuTensor<T>) -> Result<()> {
        acc.data[0] = acc.data[0] + lane_dot(&x.data, &x.data);
        Ok(())
    }

    fn accumulate_dot(
        &self,
        a: &CpuTensor<T>,
        b: &CpuTensor<T>,
        acc: &mut CpuTensor<T>,
    ) -> Result<()> {
        acc.data[0] = acc.data[0] + lane_dot(&a.data, &b.data);
        Ok(())
    }

    fn optimizer_update(
        &self,
        rule: &UpdateRule,
        step: u64,
        param: &mut CpuTensor<T>,
        grad: &CpuTensor<T>,
        state: &mut [CpuTensor<T>],
        grad_sq_norm: Option<&CpuTensor<T>>,
    ) -> Result<()> {
        optimizer::cpu::optimizer_update(rule, step, param, grad, state, grad_sq_norm);
        Ok(())
    }
}

/// The host's physical memory (Linux: `MemTotal` of /proc/meminfo), the
/// CPU backend's limit for one tensor; `isize::MAX` where it cannot be read.
pub(crate) fn host_memory_bytes() -> u64 {
    static BYTES: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BYTES.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
                let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kib * 1024)
            })
            .unwrap_or(isize::MAX as u64)
    })
}

/// Room for a `rows × cols` tensor, or [`Error::TooLarge`] where the
/// allocator refuses (the front has checked the size against the host's
/// memory; this catches what is left, such as memory in use elsewhere).
fn alloc<T>(rows: usize, cols: usize) -> Result<Vec<T>> {
    let len = rows * cols; // checked by the front (checks::check_size)
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| crate::Error::TooLarge {
            what: format!("a {rows}x{cols} tensor on the CPU"),
            bytes: (len as u64).saturating_mul(std::mem::size_of::<T>() as u64),
            limit: host_memory_bytes(),
        })?;
    Ok(v)
}

/// `Σ aᵢ·bᵢ` in eight independent partial sums: one running sum would wait
/// on each addition's latency (the loop's divergence guard sums every
/// parameter and gradient each step), eight vectorise.
fn lane_dot<T: Float>(a: &[T], b: &[T]) -> T {
    let mut lanes = [T::zero(); 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .fold(T::zero(), |s, (&x, &y)| s + x * y);
    for (x, y) in ca.zip(cb) {
        for ((l, &u), &v) in lanes.iter_mut().zip(x).zip(y) {
            *l = *l + u * v;
        }
    }
    lanes.iter().fold(T::zero(), |s, &l| s + l) + tail
}
