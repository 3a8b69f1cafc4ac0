//! The thin trait a device implements: it computes and trusts its
//! operands. Every check lives in the front ([`Backend`](super::Backend),
//! implemented for every `Kernels` type by a blanket impl), so a new device
//! supplies these primitives and gets the checked interface for free. Each
//! method is documented on the [`Backend`](super::Backend) method of the
//! same name; here are only what an implementation may rely on.

use super::ops::{Activation, DenseGrads, Loss, MatmulSpec, Reduce, Target};
use super::UpdateRule;
use super::{DropoutMask, FlatTensors, IndexVector, Shaped};
use crate::ops::conv::{ChannelBlock, ConvGrads, ConvGroup, Pool, Window2d};
use crate::Result;

/// What a device computes. Operands arrive checked: shapes agree, lengths
/// match, index vectors are within their bounds, sizes are non-zero and
/// within [`Kernels::max_tensor_len`].
///
/// Calls from code that has both this trait and [`Backend`](super::Backend)
/// in scope name the trait (`Kernels::matmul(&gpu, …)`): the methods share
/// their names.
pub trait Kernels: Clone + Send + Sync + 'static {
    /// The element type of tensors (`f32` on the GPU, `f32` or `f64` on the CPU).
    type Scalar: num_traits::Float + Copy + std::fmt::Debug + Send + Sync + 'static;
    /// A matrix resident on this device.
    type Tensor: Shaped + std::fmt::Debug + Send + Sync;
    /// A `u32` vector resident on this device.
    type Index: IndexVector + std::fmt::Debug + Send + Sync;

    /// One line saying what this device is.
    fn describe(&self) -> String;
    /// The most elements one tensor may hold.
    fn max_tensor_len(&self) -> usize;

    /// A new zero tensor.
    fn zeros(&self, rows: usize, cols: usize) -> Result<Self::Tensor>;
    /// A new tensor from `rows × cols` values.
    fn upload(&self, rows: usize, cols: usize, data: &[f32]) -> Result<Self::Tensor>;
    /// As [`Kernels::upload`], from `f64`; the default rounds to `f32`
    /// first (a device whose scalar is wider overrides it).
    fn upload_f64(&self, rows: usize, cols: usize, data: &[f64]) -> Result<Self::Tensor> {
        let v: Vec<f32> = data.iter().map(|&x| x as f32).collect();
        self.upload(rows, cols, &v)
    }
    /// Overwrites a tensor's values (`data.len() == t.len()`).
    fn write(&self, t: &mut Self::Tensor, data: &[f64]) -> Result<()>;
    /// Reads a tensor back.
    fn download(&self, t: &Self::Tensor) -> Result<Vec<f64>>;
    /// Reads a tensor back as f32; the default converts [`Kernels::download`].
    fn download_f32(&self, t: &Self::Tensor) -> Result<Vec<f32>> {
        Ok(self.download(t)?.into_iter().map(|v| v as f32).collect())
    }
    /// Overwrites a tensor from f32 values; the default widens them for
    /// [`Kernels::write`].
    fn write_f32(&self, t: &mut Self::Tensor, data: &[f32]) -> Result<()> {
        let wide: Vec<f64> = data.iter().map(|&v| v as f64).collect();
        self.write(t, &wide)
    }
    /// Reads a tensor back as a future; the default is the blocking read.
    fn download_async<'a>(
        &'a self,
        t: &'a Self::Tensor,
    ) -> impl std::future::Future<Output = Result<Vec<f64>>> + 'a {
        async move { self.download(t) }
    }
    /// `dst = src` (same shape).
    fn copy(&self, src: &Self::Tensor, dst: &mut Self::Tensor) -> Result<()>;
    /// A new index vector (entries already checked against `bound`).
    fn indices(&self, data: &[u32], bound: usize) -> Result<Self::Index>;
    /// Overwrites an index vector (same length, entries checked).
    fn write_indices(&self, idx: &mut Self::Index, data: &[u32]) -> Result<()>;
    /// Reads an index vector back.
    fn download_indices(&self, idx: &Self::Index) -> Result<Vec<u32>>;
    /// Views of one allocation; the default makes separate tensors.
    fn zeros_flat(&self, shapes: &[(usize, usize)]) -> Result<FlatTensors<Self::Tensor>> {
        let views = shapes
            .iter()
            .map(|&(rows, cols)| self.zeros(rows, cols))
            .collect::<Result<_>>()?;
        Ok(FlatTensors::separate(views))
    }

    /// `out = act(op(A)·op(B) + bias) ⊙ gate'(z)`.
    fn matmul(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        out: &mut Self::Tensor,
        spec: MatmulSpec<'_, Self::Tensor>,
    ) -> Result<()>;
    /// A dense layer's gradients; the default is the two products and the
    /// column sums in turn, which a device that can run them together
    /// overrides (the same results, to the bit).
    fn dense_backward(
        &self,
        g: &Self::Tensor,
        x: &Self::Tensor,
        w: &Self::Tensor,
        grads: DenseGrads<'_, Self::Tensor>,
    ) -> Result<()> {
        crate::ops::dense_backward::in_turn(self, g, x, w, grads)
    }
    /// `out = act(x)`.
    fn activation(&self, act: Activation, x: &Self::Tensor, out: &mut Self::Tensor) -> Result<()>;
    /// `grad_in = grad_out ⊙ act'(z)`.
    fn activation_backward(
        &self,
        act: Activation,
        z: &Self::Tensor,
        grad_out: &Self::Tensor,
        grad_in: &mut Self::Tensor,
    ) -> Result<()>;
    /// RBF units forward (shapes checked).
    fn rbf_forward(
        &self,
        x: &Self::Tensor,
        centres: &Self::Tensor,
        beta: &Self::Tensor,
        out: &mut Self::Tensor,
        dist: &mut Self::Tensor,
    ) -> Result<()>;
    /// RBF units backward (shapes checked).
    #[allow(clippy::too_many_arguments)]
    fn rbf_backward(
        &self,
        x: &Self::Tensor,
        centres: &Self::Tensor,
        beta: &Self::Tensor,
        dist: &Self::Tensor,
        grad_out: &Self::Tensor,
        grad_centres: &mut Self::Tensor,
        grad_beta: &mut Self::Tensor,
        grad_x: Option<&mut Self::Tensor>,
    ) -> Result<()>;
    /// Each row scaled back to L2 norm `max_norm` where it is longer.
    fn max_norm_rows(&self, w: &mut Self::Tensor, max_norm: f64) -> Result<()>;
    /// Column sums into a `1 × cols` tensor.
    fn sum_rows(&self, x: &Self::Tensor, out: &mut Self::Tensor) -> Result<()>;
    /// Row sums into a `1 × rows` tensor.
    fn sum_cols(&self, x: &Self::Tensor, out: &mut Self::Tensor) -> Result<()>;
    /// All elements reduced into a `1 × 1` tensor.
    fn reduce(&self, op: Reduce, x: &Self::Tensor, out: &mut Self::Tensor) -> Result<()>;
    /// Mean loss into `loss`, its gradient into `grad`.
    fn loss(
        &self,
        kind: Loss,
        pred: &Self::Tensor,
        target: Target<'_, Self>,
        grad: &mut Self::Tensor,
        loss: &mut Self::Tensor,
    ) -> Result<()>;
    /// `out[i] =` row `i`'s loss (checked).
    fn loss_per_row(
        &self,
        kind: Loss,
        pred: &Self::Tensor,
        target: Target<'_, Self>,
        out: &mut Self::Tensor,
    ) -> Result<()>;
    /// `out[i, :] = src[idx[offset + i], :]`.
    fn gather_rows(
        &self,
        src: &Self::Tensor,
        idx: &Self::Index,
        offset: usize,
        out: &mut Self::Tensor,
    ) -> Result<()>;
    /// `out[i] = src[idx[offset + i]]`.
    fn gather_indices(
        &self,
        src: &Self::Index,
        idx: &Self::Index,
        offset: usize,
        out: &mut Self::Index,
    ) -> Result<()>;
    /// Adds the number of rows whose label is in the top `k` to `correct`.
    fn count_top_k(
        &self,
        pred: &Self::Tensor,
        labels: &Self::Index,
        k: usize,
        correct: &mut Self::Tensor,
    ) -> Result<()>;
    /// `t = value` everywhere.
    fn fill(&self, t: &mut Self::Tensor, value: f64) -> Result<()>;
    /// `t = alpha · t`.
    fn scale(&self, t: &mut Self::Tensor, alpha: f64) -> Result<()>;
    /// `y = alpha · x + y`.
    fn axpy(&self, alpha: f64, x: &Self::Tensor, y: &mut Self::Tensor) -> Result<()>;
    /// Inverted dropout with the counter-based mask of [`dropout_keep`](super::dropout_keep).
    fn dropout(&self, x: &Self::Tensor, out: &mut Self::Tensor, mask: &DropoutMask) -> Result<()>;
    /// `out = x + σ·z` with the counter-based normal draws of [`NoiseDraw`](crate::ops::noise::NoiseDraw).
    fn add_noise(
        &self,
        x: &Self::Tensor,
        out: &mut Self::Tensor,
        draw: &crate::ops::noise::NoiseDraw,
    ) -> Result<()>;
    /// Per-sample augmentation (see [`crate::ops::augment`]).
    fn augment(
        &self,
        x: &Self::Tensor,
        transforms: &Self::Tensor,
        keys: &Self::Index,
        taps: &Self::Tensor,
        spec: &crate::ops::augment::WarpSpec,
        out: &mut Self::Tensor,
    ) -> Result<()>;
    /// BatchNorm1d in training mode.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_train(
        &self,
        x: &Self::Tensor,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        running_mean: &mut Self::Tensor,
        running_var: &mut Self::Tensor,
        saved: &mut Self::Tensor,
        out: &mut Self::Tensor,
        momentum: f64,
        eps: f64,
    ) -> Result<()>;
    /// BatchNorm1d in evaluation mode.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_eval(
        &self,
        x: &Self::Tensor,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        running_mean: &Self::Tensor,
        running_var: &Self::Tensor,
        out: &mut Self::Tensor,
        eps: f64,
    ) -> Result<()>;
    /// Gradients of [`Kernels::batch_norm_train`].
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_backward(
        &self,
        x: &Self::Tensor,
        gamma: &Self::Tensor,
        saved: &Self::Tensor,
        grad_out: &Self::Tensor,
        grad_in: &mut Self::Tensor,
        grad_gamma: &mut Self::Tensor,
        grad_beta: &mut Self::Tensor,
    ) -> Result<()>;
    /// Receptive fields of a block of channels as columns, one row per tap.
    fn im2col(
        &self,
        x: &Self::Tensor,
        w: &Window2d,
        block: &ChannelBlock,
        cols: &mut Self::Tensor,
    ) -> Result<()>;
    /// The adjoint of [`Kernels::im2col`], into the block's channels only.
    fn col2im(
        &self,
        cols: &Self::Tensor,
        w: &Window2d,
        block: &ChannelBlock,
        x: &mut Self::Tensor,
    ) -> Result<()>;
    /// NCHW rows to `(N·P) × count`.
    fn channels_last(
        &self,
        x: &Self::Tensor,
        block: &ChannelBlock,
        out: &mut Self::Tensor,
    ) -> Result<()>;
    /// `(N·P) × count` into the block's channels of NCHW rows.
    fn channels_first(
        &self,
        z: &Self::Tensor,
        block: &ChannelBlock,
        out: &mut Self::Tensor,
    ) -> Result<()>;
    /// NCHW rows to `count × (N·P)`.
    fn channel_rows(
        &self,
        x: &Self::Tensor,
        block: &ChannelBlock,
        rows: &mut Self::Tensor,
    ) -> Result<()>;
    /// `count × (N·P)` (plus a bias per row) into the block's channels of
    /// NCHW rows.
    fn channel_planes(
        &self,
        rows: &Self::Tensor,
        block: &ChannelBlock,
        bias: Option<&Self::Tensor>,
        out: &mut Self::Tensor,
    ) -> Result<()>;
    /// Pooling, with the max's winners when `argmax` is given.
    fn pool2d(
        &self,
        kind: Pool,
        x: &Self::Tensor,
        w: &Window2d,
        out: &mut Self::Tensor,
        argmax: Option<&mut Self::Tensor>,
    ) -> Result<()>;
    /// The gradient of [`Kernels::pool2d`] (`argmax` given for max pooling).
    fn pool2d_backward(
        &self,
        kind: Pool,
        w: &Window2d,
        grad_out: &Self::Tensor,
        argmax: Option<&Self::Tensor>,
        grad_in: &mut Self::Tensor,
    ) -> Result<()>;
    /// The shapes of the two scratch tensors a convolution group over
    /// `rows` images needs; the default is the lowered form's columns and
    /// product.
    fn conv2d_scratch_shapes(&self, rows: usize, g: &ConvGroup) -> [(usize, usize); 2] {
        crate::ops::conv::lowered::scratch_shapes(rows, g)
    }
    /// One convolution group's forward pass into `out`'s block of
    /// channels; the default lowers it onto [`Kernels::im2col`],
    /// [`Kernels::matmul`] and [`Kernels::channels_first`] through
    /// `scratch` (`[cols, z]`).
    fn conv2d(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        g: &ConvGroup,
        scratch: &mut [Self::Tensor],
        out: &mut Self::Tensor,
    ) -> Result<()> {
        crate::ops::conv::lowered::conv2d(self, x, w, bias, g, scratch, out)
    }
    /// One convolution group's backward pass; the default is the lowered
    /// form's, which reuses the forward pass's columns when
    /// `columns_kept`. A device with its own [`Kernels::conv2d`] may keep
    /// anything it likes in `scratch` between the two.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_backward(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        grad_out: &Self::Tensor,
        g: &ConvGroup,
        scratch: &mut [Self::Tensor],
        columns_kept: bool,
        grads: ConvGrads<'_, Self::Tensor>,
    ) -> Result<()> {
        use crate::ops::conv::lowered::{self, Columns};
        let columns = Columns::kept(columns_kept);
        lowered::conv2d_backward(self, x, w, grad_out, g, scratch, columns, grads)
    }
    /// `dst[dst_at..dst_at + len] = src[src_at..src_at + len]` (flat, row-major).
    fn copy_range(
        &self,
        src: &Self::Tensor,
        src_at: usize,
        dst: &mut Self::Tensor,
        dst_at: usize,
        len: usize,
    ) -> Result<()>;
    /// Submits recorded work and waits for it; the default (a device that
    /// runs each call to completion) does nothing.
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    /// `acc += Σ x²`.
    fn accumulate_sum_squares(&self, x: &Self::Tensor, acc: &mut Self::Tensor) -> Result<()>;
    /// `acc += Σ aᵢ·bᵢ` (same lengths, checked).
    fn accumulate_dot(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        acc: &mut Self::Tensor,
    ) -> Result<()>;
    /// One fused optimizer step for one (possibly flat) parameter tensor.
    fn optimizer_update(
        &self,
        rule: &UpdateRule,
        step: u64,
        param: &mut Self::Tensor,
        grad: &Self::Tensor,
        state: &mut [Self::Tensor],
        grad_sq_norm: Option<&Self::Tensor>,
    ) -> Result<()>;
}
