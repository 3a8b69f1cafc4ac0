//! The backend interface: the handful of operations a training step needs.
//!
//! Layers, losses, optimizers and the training loop are written once against
//! [`Backend`]. [`Cpu`] implements it in plain Rust (generic over `f32` and
//! `f64`); [`Gpu`](crate::Gpu) implements it with WGSL kernels. Because both
//! sides expose the same operations, parity can be tested at every level.
//!
//! Conventions, shared by both backends:
//! - Tensors are row-major matrices `rows × cols`; a batch is `N × features`
//!   and a vector is `1 × n`. Dense weights are stored as PyTorch does,
//!   `[out, in]`, so a layer computes `Z = X·Wᵀ + b`.
//! - Every operation writes into an output tensor the caller allocated, so a
//!   model allocates its buffers once and a training step allocates nothing.
//! - Shapes are checked on the host before anything runs; a mismatch is an
//!   [`Error::Shape`](crate::Error::Shape) naming both shapes.
//! - Losses are summed over the output columns and averaged over the batch
//!   rows (the seeds' convention); see [`Loss`] for the PyTorch equivalents.

pub(crate) mod checks;
pub(crate) mod cpu;
mod kernels;
pub(crate) mod ops;
pub(crate) mod par;
pub(crate) mod pool;
pub(crate) mod simd;

pub use crate::ops::augment::WarpSpec;
pub use crate::ops::conv::{ChannelBlock, ConvGrads, ConvGroup, Pool, Window2d};
pub use crate::ops::dropout::{dropout_keep, DropoutMask};
pub use crate::ops::matmul::cpu_engine::{
    cpu_gemm, measure_cpu_gemm, CpuGemm, CpuGemmCache, CpuGemmTuning,
};
pub use crate::ops::matmul::reference_matmul;
pub use crate::ops::optimizer::{GradClip, UpdateMethod, UpdateRule};
pub use cpu::{Cpu, CpuIndex, CpuTensor};
pub use kernels::Kernels;
pub use ops::{Activation, DenseGrads, Loss, MatmulSpec, Reduce, Target};

use crate::Result;

/// What [`Backend::zeros_flat`] makes: the views, and the whole they are
/// views of (if the backend made one), with where each view starts in it.
pub struct FlatTensors<T> {
    /// One tensor per requested shape, in order.
    pub views: Vec<T>,
    /// The `1 × n` tensor over all of them, where the backend made one.
    pub whole: Option<T>,
    /// Each view's first element in `whole` (views may start at aligned
    /// offsets); empty without a whole.
    pub offsets: Vec<usize>,
}

impl<T> FlatTensors<T> {
    /// Separate tensors, no whole.
    pub fn separate(views: Vec<T>) -> Self {
        FlatTensors {
            views,
            whole: None,
            offsets: Vec::new(),
        }
    }

    /// The views' first elements, picked from a download of the whole.
    pub fn firsts(&self, whole: &[f64]) -> Vec<f64> {
        self.offsets.iter().map(|&o| whole[o]).collect()
    }
}

/// What every tensor handle can tell about itself.
pub trait Shaped {
    /// Number of rows.
    fn rows(&self) -> usize;
    /// Number of columns.
    fn cols(&self) -> usize;
    /// `rows × cols`.
    fn len(&self) -> usize {
        self.rows() * self.cols()
    }
    /// True when the tensor has no elements (never true for tensors made by a backend).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// `"rows×cols"`, for error messages.
    fn shape_str(&self) -> String {
        format!("{}x{}", self.rows(), self.cols())
    }
}

/// A vector of `u32` on the device: class labels or row indices, each checked
/// against an exclusive `bound` when it was written.
pub trait IndexVector {
    /// Number of entries.
    fn len(&self) -> usize;
    /// True when there are no entries (never true for vectors made by a backend).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Every entry is `< bound` (the number of classes, or of rows indexed).
    fn bound(&self) -> usize;
}

/// The operations a training step needs: the checked front every layer,
/// loss, optimizer and the training loop call. It is implemented for every
/// device by a blanket impl over [`Kernels`]: each method checks its
/// operands (shapes, lengths, index bounds, sizes against the device's
/// limit) here, once, and hands them to the device, which trusts them.
///
/// ```
/// use wgtrain::{Backend, Cpu, MatmulSpec, Activation};
/// let cpu = Cpu::<f64>::new();
/// let a = cpu.upload_f64(2, 3, &[1., 2., 3., 4., 5., 6.]).unwrap();
/// let b = cpu.upload_f64(3, 1, &[1., 0., -1.]).unwrap();
/// let mut c = cpu.zeros(2, 1).unwrap();
/// cpu.matmul(&a, &b, &mut c, MatmulSpec::default()).unwrap();
/// assert_eq!(cpu.download(&c).unwrap(), vec![-2.0, -2.0]);
/// ```
pub trait Backend: Clone + Send + Sync + 'static {
    /// The element type of tensors (`f32` on the GPU, `f32` or `f64` on the CPU).
    type Scalar: num_traits::Float + Copy + std::fmt::Debug + Send + Sync + 'static;
    /// A matrix resident on this backend.
    type Tensor: Shaped + std::fmt::Debug + Send + Sync;
    /// A `u32` vector resident on this backend.
    type Index: IndexVector + std::fmt::Debug + Send + Sync;

    /// One line saying what this backend runs on.
    fn describe(&self) -> String;

    /// A new tensor filled with zeros.
    fn zeros(&self, rows: usize, cols: usize) -> Result<Self::Tensor>;
    /// A new tensor holding `data` (row-major, `rows × cols` values), rounded to [`Self::Scalar`].
    fn upload(&self, rows: usize, cols: usize, data: &[f32]) -> Result<Self::Tensor>;
    /// As [`Backend::upload`], from `f64` values (exact on `Cpu<f64>`).
    fn upload_f64(&self, rows: usize, cols: usize, data: &[f64]) -> Result<Self::Tensor>;
    /// Overwrites a tensor's values; `data.len()` must equal `t.len()`.
    fn write(&self, t: &mut Self::Tensor, data: &[f64]) -> Result<()>;
    /// Reads a tensor back to the host (waits for pending work on the GPU).
    fn download(&self, t: &Self::Tensor) -> Result<Vec<f64>>;
    /// As [`Backend::download`], rounded to f32: one copy where tensors are
    /// f32 (what a data-parallel all-reduce moves).
    ///
    /// ```
    /// use wgtrain::{Backend, Cpu};
    /// let cpu = Cpu::<f32>::new();
    /// let mut t = cpu.zeros(1, 3).unwrap();
    /// cpu.write_f32(&mut t, &[1.0, 2.5, -3.0]).unwrap();
    /// assert_eq!(cpu.download_f32(&t).unwrap(), vec![1.0, 2.5, -3.0]);
    /// assert!(cpu.write_f32(&mut t, &[1.0]).is_err()); // lengths must agree
    /// ```
    fn download_f32(&self, t: &Self::Tensor) -> Result<Vec<f32>>;
    /// As [`Backend::write`], from f32 values.
    fn write_f32(&self, t: &mut Self::Tensor, data: &[f32]) -> Result<()>;
    /// As [`Backend::download`], as a future that resolves when the values
    /// are on the host, without blocking: what code under an event loop (a
    /// browser page) awaits. The default is the blocking read, right for
    /// backends whose reads never wait (the CPU).
    ///
    /// ```
    /// use wgtrain::{Backend, Cpu};
    /// let cpu = Cpu::<f32>::new();
    /// let t = cpu.upload(1, 2, &[1.0, 2.0]).unwrap();
    /// assert_eq!(pollster::block_on(cpu.download_async(&t)).unwrap(), vec![1.0, 2.0]);
    /// ```
    fn download_async<'a>(
        &'a self,
        t: &'a Self::Tensor,
    ) -> impl std::future::Future<Output = Result<Vec<f64>>> + 'a;
    /// Copies `src` into `dst` (same shape).
    fn copy(&self, src: &Self::Tensor, dst: &mut Self::Tensor) -> Result<()>;

    /// A new index vector; every entry must be `< bound`.
    fn indices(&self, data: &[u32], bound: usize) -> Result<Self::Index>;
    /// Overwrites an index vector (same length, same bound).
    fn write_indices(&self, idx: &mut Self::Index, data: &[u32]) -> Result<()>;
    /// Reads an index vector back to the host.
    fn download_indices(&self, idx: &Self::Index) -> Result<Vec<u32>>;

    /// `out = act(op(A)·op(B) + bias)`, with `op` a transpose when asked.
    fn matmul(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        out: &mut Self::Tensor,
        spec: MatmulSpec<'_, Self::Tensor>,
    ) -> Result<()>;
    /// The gradients of a dense layer `y = x·Wᵀ + b` from `g = ∂L/∂y`
    /// (`rows × out`), with `x` (`rows × in`) and `W` (`out × in`):
    /// `∂L/∂W = gᵀ·x`, `∂L/∂b = Σ_rows g`, `∂L/∂x = (g·W) ⊙ gate'(z)`, each
    /// written where [`DenseGrads`] asks. The same results as those two
    /// [`Backend::matmul`]s and [`Backend::sum_rows`], to the bit; the CPU
    /// runs them as one job on its threads. See [`DenseGrads`] for an
    /// example.
    fn dense_backward(
        &self,
        g: &Self::Tensor,
        x: &Self::Tensor,
        w: &Self::Tensor,
        grads: DenseGrads<'_, Self::Tensor>,
    ) -> Result<()>;
    /// `out = act(x)` elementwise.
    fn activation(&self, act: Activation, x: &Self::Tensor, out: &mut Self::Tensor) -> Result<()>;
    /// `grad_in = grad_out ⊙ act'(z)`, with `z` the activation's input.
    fn activation_backward(
        &self,
        act: Activation,
        z: &Self::Tensor,
        grad_out: &Self::Tensor,
        grad_in: &mut Self::Tensor,
    ) -> Result<()>;
    /// The max-norm constraint (`torch.renorm(w, 2, 0, max_norm)`): every
    /// row whose L2 norm exceeds `max_norm` is scaled by
    /// `max_norm / (‖row‖ + 1e-7)`; the others are left as they are.
    ///
    /// ```
    /// use wgtrain::{Backend, Cpu};
    /// let cpu = Cpu::<f64>::new();
    /// let mut w = cpu.upload_f64(2, 2, &[3.0, 4.0, 0.3, 0.4]).unwrap();
    /// cpu.max_norm_rows(&mut w, 1.0).unwrap();
    /// let v = cpu.download(&w).unwrap();
    /// assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    /// assert_eq!(&v[2..], [0.3, 0.4]);
    /// assert!(cpu.max_norm_rows(&mut w, -1.0).is_err());
    /// ```
    fn max_norm_rows(&self, w: &mut Self::Tensor, max_norm: f64) -> Result<()>;
    /// Column sums over the rows: `out[0, j] = Σᵢ x[i, j]` (bias gradients).
    fn sum_rows(&self, x: &Self::Tensor, out: &mut Self::Tensor) -> Result<()>;
    /// Row sums over the columns, as a row: `out[0, i] = Σⱼ x[i, j]` (a
    /// convolution's bias gradient, from its output gradient in
    /// [`Backend::channel_rows`] layout).
    ///
    /// ```
    /// use wgtrain::{Backend, Cpu};
    /// let cpu = Cpu::<f64>::new();
    /// let x = cpu.upload_f64(2, 3, &[1., 2., 3., 4., 5., 6.]).unwrap();
    /// let mut sums = cpu.zeros(1, 2).unwrap();
    /// cpu.sum_cols(&x, &mut sums).unwrap();
    /// assert_eq!(cpu.download(&sums).unwrap(), vec![6., 15.]);
    /// ```
    fn sum_cols(&self, x: &Self::Tensor, out: &mut Self::Tensor) -> Result<()>;
    /// Reduces all elements to `out` of shape `1×1`.
    fn reduce(&self, op: Reduce, x: &Self::Tensor, out: &mut Self::Tensor) -> Result<()>;
    /// The mean loss over the batch into `loss` (`1×1`) and its gradient with
    /// respect to `pred` into `grad` (same shape as `pred`).
    fn loss(
        &self,
        kind: Loss,
        pred: &Self::Tensor,
        target: Target<'_, Self>,
        grad: &mut Self::Tensor,
        loss: &mut Self::Tensor,
    ) -> Result<()>;
    /// Each row's loss, summed over its columns and not averaged (what the
    /// mean [`Backend::loss`] reports is their mean), into the `rows × 1`
    /// tensor `out`: what the loss-weighted sampler remembers per sample.
    ///
    /// ```
    /// use wgtrain::{Backend, Cpu, Loss, Target};
    /// let cpu = Cpu::<f64>::new();
    /// let pred = cpu.upload_f64(2, 2, &[0.0, 0.0, 3.0, -3.0]).unwrap();
    /// let labels = cpu.indices(&[1, 0], 2).unwrap();
    /// let mut per_row = cpu.zeros(2, 1).unwrap();
    /// cpu.loss_per_row(Loss::SoftmaxCrossEntropy, &pred, Target::Labels(&labels), &mut per_row).unwrap();
    /// let l = cpu.download(&per_row).unwrap();
    /// assert!((l[0] - 2f64.ln()).abs() < 1e-12 && l[1] < 1e-2);
    /// ```
    fn loss_per_row(
        &self,
        kind: Loss,
        pred: &Self::Tensor,
        target: Target<'_, Self>,
        out: &mut Self::Tensor,
    ) -> Result<()>;
    /// Radial-basis-function units (see [`crate::ops::rbf`]):
    /// `out[n, j] = exp(−βⱼ‖xₙ − cⱼ‖²)` for `x` n×k, `centres` m×k, `beta`
    /// 1×m, with the squared distances kept in `dist` (n×m) for the
    /// backward pass.
    ///
    /// ```
    /// use wgtrain::{Backend, Cpu};
    /// let cpu = Cpu::<f64>::new();
    /// let x = cpu.upload_f64(1, 2, &[1.0, 2.0]).unwrap();
    /// let c = cpu.upload_f64(2, 2, &[1.0, 2.0, 0.0, 0.0]).unwrap();
    /// let beta = cpu.upload_f64(1, 2, &[0.5, 0.1]).unwrap();
    /// let (mut h, mut d) = (cpu.zeros(1, 2).unwrap(), cpu.zeros(1, 2).unwrap());
    /// cpu.rbf_forward(&x, &c, &beta, &mut h, &mut d).unwrap();
    /// assert_eq!(cpu.download(&d).unwrap(), vec![0.0, 5.0]);
    /// assert_eq!(cpu.download(&h).unwrap(), vec![1.0, (-0.5f64).exp()]);
    /// ```
    fn rbf_forward(
        &self,
        x: &Self::Tensor,
        centres: &Self::Tensor,
        beta: &Self::Tensor,
        out: &mut Self::Tensor,
        dist: &mut Self::Tensor,
    ) -> Result<()>;
    /// The gradients of [`Backend::rbf_forward`] from `grad_out` (n×m):
    /// with respect to the centres (m×k), the widths (1×m) and, when
    /// `grad_x` is given, the input (n×k); `dist` is what the forward pass
    /// kept (the outputs are recomputed from it, bit for bit).
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
    /// `out[i, :] = src[idx[offset + i], :]` for every row `i` of `out`: a
    /// minibatch from a resident data set, through a slice of a permutation.
    fn gather_rows(
        &self,
        src: &Self::Tensor,
        idx: &Self::Index,
        offset: usize,
        out: &mut Self::Tensor,
    ) -> Result<()>;
    /// `out[i] = src[idx[offset + i]]`: the labels of a minibatch.
    fn gather_indices(
        &self,
        src: &Self::Index,
        idx: &Self::Index,
        offset: usize,
        out: &mut Self::Index,
    ) -> Result<()>;
    /// Adds to `correct` (`1×1`) the number of rows of `pred` whose label is
    /// among its `k` largest scores (ties counted against the label).
    fn count_top_k(
        &self,
        pred: &Self::Tensor,
        labels: &Self::Index,
        k: usize,
        correct: &mut Self::Tensor,
    ) -> Result<()>;
    /// The most elements one tensor may hold on this device.
    fn max_tensor_len(&self) -> usize;
    /// Sets every element to `value`.
    fn fill(&self, t: &mut Self::Tensor, value: f64) -> Result<()>;
    /// `t = alpha · t`.
    fn scale(&self, t: &mut Self::Tensor, alpha: f64) -> Result<()>;
    /// `y = alpha · x + y`.
    fn axpy(&self, alpha: f64, x: &Self::Tensor, y: &mut Self::Tensor) -> Result<()>;

    /// Inverted dropout: `out = x ⊙ keep / (1 − p)`, element `i` kept when
    /// [`mask.keeps(i)`](DropoutMask::keeps) (see [`dropout_keep`]). The
    /// backward pass is the same call on the gradient with the same mask.
    fn dropout(&self, x: &Self::Tensor, out: &mut Self::Tensor, mask: &DropoutMask) -> Result<()>;
    /// Gaussian noise injection: element `i` of `out` is `x[i] +`
    /// [`draw.noise(i)`](crate::ops::noise::NoiseDraw::noise), the same on
    /// every backend.
    fn add_noise(
        &self,
        x: &Self::Tensor,
        out: &mut Self::Tensor,
        draw: &crate::ops::noise::NoiseDraw,
    ) -> Result<()>;
    /// Augments a batch of images (`rows × channels·height·width`, see
    /// [`crate::ops::augment`]): each row through its transform (a row of
    /// `transforms`, `rows × 8`, from [`Augment::draw`](crate::ops::augment::Augment::draw))
    /// and, when `spec.alpha` ≠ 0, an elastic field drawn from its key
    /// (`keys`, one per row) and smoothed with `taps`.
    fn augment(
        &self,
        x: &Self::Tensor,
        transforms: &Self::Tensor,
        keys: &Self::Index,
        taps: &Self::Tensor,
        spec: &WarpSpec,
        out: &mut Self::Tensor,
    ) -> Result<()>;
    /// Batch normalisation with the batch's statistics (BatchNorm1d in
    /// training mode): normalises each column, updates the running mean and
    /// the running *unbiased* variance with `momentum`, and keeps the batch
    /// mean and 1/std in `saved` (`2 × cols`) for the backward pass.
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
    /// Batch normalisation with the running statistics (evaluation mode).
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
    /// Gradients of [`Backend::batch_norm_train`] with respect to its input, γ and β.
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

    /// The receptive fields of channels `block` of every image of `x`
    /// (`N × (C·H·W)`, NCHW rows) under window `w`, as the columns of
    /// `cols` (`(count·KH·KW) × (N·OH·OW)`: one row per tap, one column per
    /// output position of every sample, zeros where a tap falls in the
    /// padding): a convolution is then `W · cols` (in
    /// [`Backend::channel_rows`] layout), and its weight gradient
    /// `δ · colsᵀ`. See [`crate::ops::conv`].
    ///
    /// ```
    /// use wgtrain::{Backend, Cpu};
    /// use wgtrain::ops::conv::{ChannelBlock, Window2d};
    /// let cpu = Cpu::<f64>::new();
    /// // One 1x3x3 image, 2x2 windows: four taps at four positions.
    /// let x = cpu.upload_f64(1, 9, &[1., 2., 3., 4., 5., 6., 7., 8., 9.]).unwrap();
    /// let w = Window2d::new([1, 3, 3], [2, 2]);
    /// let mut cols = cpu.zeros(4, 4).unwrap();
    /// cpu.im2col(&x, &w, &ChannelBlock::all(1), &mut cols).unwrap();
    /// // The first tap reads each window's top left, the second its top right.
    /// assert_eq!(&cpu.download(&cols).unwrap()[..8], &[1., 2., 4., 5., 2., 3., 5., 6.]);
    /// ```
    fn im2col(
        &self,
        x: &Self::Tensor,
        w: &Window2d,
        block: &ChannelBlock,
        cols: &mut Self::Tensor,
    ) -> Result<()>;
    /// The adjoint of [`Backend::im2col`]: each pixel of the block's
    /// channels of `x` becomes the sum of the entries of `cols` that read it
    /// (the input gradient of a convolution from `Wᵀ · δ`); other channels
    /// are left as they are.
    fn col2im(
        &self,
        cols: &Self::Tensor,
        w: &Window2d,
        block: &ChannelBlock,
        x: &mut Self::Tensor,
    ) -> Result<()>;
    /// The block's channels of NCHW rows `x` (`N × (C·P)`) as
    /// `(N·P) × count`, one row per position, one column per channel: the
    /// layout batch norm over channels and the products work in.
    ///
    /// ```
    /// use wgtrain::{Backend, Cpu};
    /// use wgtrain::ops::conv::ChannelBlock;
    /// let cpu = Cpu::<f64>::new();
    /// let x = cpu.upload_f64(1, 4, &[1., 2., 3., 4.]).unwrap(); // 2 channels of 2 positions
    /// let mut out = cpu.zeros(2, 2).unwrap();
    /// cpu.channels_last(&x, &ChannelBlock::all(2), &mut out).unwrap();
    /// assert_eq!(cpu.download(&out).unwrap(), vec![1., 3., 2., 4.]);
    /// ```
    fn channels_last(
        &self,
        x: &Self::Tensor,
        block: &ChannelBlock,
        out: &mut Self::Tensor,
    ) -> Result<()>;
    /// The inverse of [`Backend::channels_last`]: `z` (`(N·P) × count`)
    /// into the block's channels of the NCHW rows `out`.
    fn channels_first(
        &self,
        z: &Self::Tensor,
        block: &ChannelBlock,
        out: &mut Self::Tensor,
    ) -> Result<()>;
    /// The block's channels of NCHW rows `x` (`N × (C·P)`) as the rows of
    /// `rows` (`count × (N·P)`): row `c` holds channel `first + c` of every
    /// sample, one sample's positions after another. The layout of a
    /// convolution's product `W · cols` ([`Backend::im2col`]).
    ///
    /// ```
    /// use wgtrain::{Backend, Cpu};
    /// use wgtrain::ops::conv::ChannelBlock;
    /// let cpu = Cpu::<f64>::new();
    /// // Two samples of 2 channels of 2 positions.
    /// let x = cpu.upload_f64(2, 4, &[1., 2., 3., 4., 5., 6., 7., 8.]).unwrap();
    /// let mut rows = cpu.zeros(2, 4).unwrap();
    /// cpu.channel_rows(&x, &ChannelBlock::all(2), &mut rows).unwrap();
    /// assert_eq!(cpu.download(&rows).unwrap(), vec![1., 2., 5., 6., 3., 4., 7., 8.]);
    /// ```
    fn channel_rows(
        &self,
        x: &Self::Tensor,
        block: &ChannelBlock,
        rows: &mut Self::Tensor,
    ) -> Result<()>;
    /// The inverse of [`Backend::channel_rows`], adding `bias` (`1 × count`,
    /// one value per row) when given: `rows` into the block's channels of
    /// the NCHW rows `out`.
    fn channel_planes(
        &self,
        rows: &Self::Tensor,
        block: &ChannelBlock,
        bias: Option<&Self::Tensor>,
        out: &mut Self::Tensor,
    ) -> Result<()>;
    /// Max or average pooling of `x` (`N × (C·H·W)`) under `w` into `out`
    /// (`N × (C·OH·OW)`), as `nn.MaxPool2d` / `nn.AvgPool2d`. With
    /// `argmax` (shaped like `out`), max pooling also records each
    /// window's winner (its index in the plane) for the backward pass.
    fn pool2d(
        &self,
        kind: Pool,
        x: &Self::Tensor,
        w: &Window2d,
        out: &mut Self::Tensor,
        argmax: Option<&mut Self::Tensor>,
    ) -> Result<()>;
    /// The input gradient of [`Backend::pool2d`]: each window's gradient
    /// to its winner (max, which needs the `argmax` the forward pass
    /// saved) or spread evenly over its taps (average).
    fn pool2d_backward(
        &self,
        kind: Pool,
        w: &Window2d,
        grad_out: &Self::Tensor,
        argmax: Option<&Self::Tensor>,
        grad_in: &mut Self::Tensor,
    ) -> Result<()>;
    /// The shapes of the scratch tensors [`Backend::conv2d`] needs for a
    /// group over `rows` images (the same for every group of a layer): on
    /// the GPU the lowered form's columns and product, on the CPU one
    /// chunk of them per thread (`rayon::current_num_threads()` where the
    /// call runs: make the scratch where it will be used; another thread
    /// count is a shape error, not a wrong result).
    fn conv2d_scratch_shapes(&self, rows: usize, g: &ConvGroup) -> [(usize, usize); 2];
    /// Zero scratch tensors of [`Backend::conv2d_scratch_shapes`].
    fn conv2d_scratch(&self, rows: usize, g: &ConvGroup) -> Result<Vec<Self::Tensor>> {
        self.conv2d_scratch_shapes(rows, g)
            .iter()
            .map(|&(r, c)| self.zeros(r, c))
            .collect()
    }
    /// One group of a 2-D convolution (`nn.Conv2d` over the group's
    /// channels): `out`'s block of output channels (`N × (O·OH·OW)`, NCHW)
    /// becomes the convolution of `x`'s block of input channels with the
    /// group's weight `w` (`count_out × (count_in·KH·KW)`), plus the bias.
    /// `scratch` comes from [`Backend::conv2d_scratch`]: the lowered form's
    /// columns and product, which the GPU keeps for the backward pass, or
    /// the CPU's space for one chunk of samples per thread.
    ///
    /// ```
    /// use wgtrain::ops::conv::{ChannelBlock, ConvGroup, Window2d};
    /// use wgtrain::{Backend, Cpu};
    /// let cpu = Cpu::<f64>::new();
    /// // One 1x3x3 image, one 2x2 filter of ones: each output sums a window.
    /// let x = cpu.upload_f64(1, 9, &[1., 2., 3., 4., 5., 6., 7., 8., 9.]).unwrap();
    /// let w = cpu.upload_f64(1, 4, &[1.; 4]).unwrap();
    /// let g = ConvGroup {
    ///     window: Window2d::new([1, 3, 3], [2, 2]),
    ///     input: ChannelBlock::all(1),
    ///     output: ChannelBlock::all(1),
    /// };
    /// let mut scratch = cpu.conv2d_scratch(1, &g).unwrap();
    /// let mut out = cpu.zeros(1, 4).unwrap();
    /// cpu.conv2d(&x, &w, None, &g, &mut scratch, &mut out).unwrap();
    /// assert_eq!(cpu.download(&out).unwrap(), vec![12., 16., 24., 28.]);
    /// ```
    fn conv2d(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        g: &ConvGroup,
        scratch: &mut [Self::Tensor],
        out: &mut Self::Tensor,
    ) -> Result<()>;
    /// The backward pass of [`Backend::conv2d`] from the output's gradient
    /// `grad_out`: the group's weight and bias gradients, and the input
    /// gradient of its input channels when asked. `scratch` is the one the
    /// forward pass used; `columns_kept` says whether nothing has
    /// overwritten it since this group's forward pass (with several groups
    /// the next group's pass does), which saves rebuilding the columns
    /// where the device keeps them.
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
    ) -> Result<()>;
    /// Copies `len` values from flat position `src_at` of `src` to `dst_at`
    /// of `dst` (row-major): one group's block of a weight or a bias.
    ///
    /// ```
    /// use wgtrain::{Backend, Cpu};
    /// let cpu = Cpu::<f64>::new();
    /// let src = cpu.upload_f64(1, 4, &[1., 2., 3., 4.]).unwrap();
    /// let mut dst = cpu.zeros(1, 3).unwrap();
    /// cpu.copy_range(&src, 2, &mut dst, 1, 2).unwrap();
    /// assert_eq!(cpu.download(&dst).unwrap(), vec![0., 3., 4.]);
    /// assert!(cpu.copy_range(&src, 3, &mut dst, 0, 2).is_err());
    /// ```
    fn copy_range(
        &self,
        src: &Self::Tensor,
        src_at: usize,
        dst: &mut Self::Tensor,
        dst_at: usize,
        len: usize,
    ) -> Result<()>;

    /// Submits recorded work and waits for it (a no-op on the CPU).
    fn synchronize(&self) -> Result<()>;

    /// Zero tensors of the given shapes that are views of one allocation,
    /// and a `1 × n` tensor over all of it (`n` is at least the sum of the
    /// sizes: views may start at aligned offsets, and the gaps hold zeros).
    /// An elementwise operation on the whole touches every view at once: a
    /// model's optimizer step is one dispatch, an all-reduce one transfer.
    /// The same shapes always give the same layout, so two such sets line up
    /// element for element. The whole is `None` where the backend keeps
    /// separate tensors: the default, and the CPU's choice, which has no
    /// dispatches to save.
    ///
    /// ```
    /// use wgtrain::{Backend, Cpu};
    /// let cpu = Cpu::<f32>::new();
    /// let flat = cpu.zeros_flat(&[(2, 3), (1, 3)]).unwrap();
    /// assert_eq!((flat.views.len(), flat.whole.is_none()), (2, true));
    /// ```
    fn zeros_flat(&self, shapes: &[(usize, usize)]) -> Result<FlatTensors<Self::Tensor>>;

    /// `acc += Σ x²` into a `1×1` tensor. Summed over every gradient of a
    /// step, it is the squared global norm that [`GradClip::Norm`] needs; it
    /// stays on the device so that clipping costs no readback.
    fn accumulate_sum_squares(&self, x: &Self::Tensor, acc: &mut Self::Tensor) -> Result<()>;

    /// `acc += Σ aᵢ·bᵢ` into a `1×1` tensor (`torch.dot` on flattened
    /// tensors, added up over several): what L-BFGS's two-loop recursion
    /// and line search take their inner products with, on the device.
    ///
    /// ```
    /// use wgtrain::{Backend, Cpu};
    /// let cpu = Cpu::<f64>::new();
    /// let (a, b) = (cpu.upload_f64(1, 3, &[1.0, 2.0, 3.0]).unwrap(), cpu.upload_f64(1, 3, &[4.0, -5.0, 6.0]).unwrap());
    /// let mut acc = cpu.zeros(1, 1).unwrap();
    /// cpu.accumulate_dot(&a, &b, &mut acc).unwrap();
    /// assert_eq!(cpu.download(&acc).unwrap(), vec![12.0]);
    /// ```
    fn accumulate_dot(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        acc: &mut Self::Tensor,
    ) -> Result<()>;

    /// One optimizer step for one parameter tensor, fused: reads the gradient
    /// and the state once, writes the parameter and the state once.
    ///
    /// In order: clip the gradient (`rule.clip`), add `l1·sign(θ)` and the
    /// coupled `weight_decay·θ`, shrink θ by `1 − lr·weight_decay` if the decay
    /// is decoupled, then apply `rule.method` with `step` (1-based: the bias
    /// corrections and Adagrad's decay use it; SGD's momentum buffer is set to
    /// the gradient when it is 1). `state` holds the tensors named by
    /// [`UpdateMethod::state_names`], each shaped like `param`, initialised to
    /// [`UpdateMethod::state_init`]. `grad_sq_norm` is the `1×1` result of
    /// [`Backend::accumulate_sum_squares`] over all gradients, required by
    /// [`GradClip::Norm`] and ignored otherwise. See [`crate::optim`] for the
    /// optimizers built on this.
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

/// The checks, then the device. Every method of [`Backend`] is here.
impl<K: Kernels> Backend for K {
    type Scalar = K::Scalar;
    type Tensor = K::Tensor;
    type Index = K::Index;

    fn describe(&self) -> String {
        Kernels::describe(self)
    }
    fn zeros(&self, rows: usize, cols: usize) -> Result<Self::Tensor> {
        checks::check_size(self, "zeros", rows, cols)?;
        Kernels::zeros(self, rows, cols)
    }
    fn upload(&self, rows: usize, cols: usize, data: &[f32]) -> Result<Self::Tensor> {
        checks::check_size(self, "upload", rows, cols)?;
        checks::check_len("upload", rows * cols, data.len())?;
        Kernels::upload(self, rows, cols, data)
    }
    fn upload_f64(&self, rows: usize, cols: usize, data: &[f64]) -> Result<Self::Tensor> {
        checks::check_size(self, "upload", rows, cols)?;
        checks::check_len("upload", rows * cols, data.len())?;
        Kernels::upload_f64(self, rows, cols, data)
    }
    fn write(&self, t: &mut Self::Tensor, data: &[f64]) -> Result<()> {
        checks::check_len("write", t.len(), data.len())?;
        Kernels::write(self, t, data)
    }
    fn download(&self, t: &Self::Tensor) -> Result<Vec<f64>> {
        Kernels::download(self, t)
    }
    fn download_f32(&self, t: &Self::Tensor) -> Result<Vec<f32>> {
        Kernels::download_f32(self, t)
    }
    fn write_f32(&self, t: &mut Self::Tensor, data: &[f32]) -> Result<()> {
        checks::check_len("write", t.len(), data.len())?;
        Kernels::write_f32(self, t, data)
    }
    fn download_async<'a>(
        &'a self,
        t: &'a Self::Tensor,
    ) -> impl std::future::Future<Output = Result<Vec<f64>>> + 'a {
        Kernels::download_async(self, t)
    }
    fn copy(&self, src: &Self::Tensor, dst: &mut Self::Tensor) -> Result<()> {
        checks::check_same("copy", "source vs destination", src, dst)?;
        Kernels::copy(self, src, dst)
    }
    fn indices(&self, data: &[u32], bound: usize) -> Result<Self::Index> {
        checks::check_size(self, "indices", data.len(), 1)?;
        checks::check_indices("indices", data, bound)?;
        Kernels::indices(self, data, bound)
    }
    fn write_indices(&self, idx: &mut Self::Index, data: &[u32]) -> Result<()> {
        checks::check_len("write_indices", idx.len(), data.len())?;
        checks::check_indices("write_indices", data, idx.bound())?;
        Kernels::write_indices(self, idx, data)
    }
    fn download_indices(&self, idx: &Self::Index) -> Result<Vec<u32>> {
        Kernels::download_indices(self, idx)
    }
    fn matmul(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        out: &mut Self::Tensor,
        spec: MatmulSpec<'_, Self::Tensor>,
    ) -> Result<()> {
        crate::ops::matmul::check_matmul(a, b, out, &spec)?;
        Kernels::matmul(self, a, b, out, spec)
    }
    fn dense_backward(
        &self,
        g: &Self::Tensor,
        x: &Self::Tensor,
        w: &Self::Tensor,
        grads: DenseGrads<'_, Self::Tensor>,
    ) -> Result<()> {
        crate::ops::dense_backward::check_dense_backward(g, x, w, &grads)?;
        Kernels::dense_backward(self, g, x, w, grads)
    }
    fn activation(&self, act: Activation, x: &Self::Tensor, out: &mut Self::Tensor) -> Result<()> {
        checks::check_same("activation", "input vs output", x, out)?;
        Kernels::activation(self, act, x, out)
    }
    fn activation_backward(
        &self,
        act: Activation,
        z: &Self::Tensor,
        grad_out: &Self::Tensor,
        grad_in: &mut Self::Tensor,
    ) -> Result<()> {
        crate::ops::activation::check_backward(z, grad_out, grad_in)?;
        Kernels::activation_backward(self, act, z, grad_out, grad_in)
    }
    fn rbf_forward(
        &self,
        x: &Self::Tensor,
        centres: &Self::Tensor,
        beta: &Self::Tensor,
        out: &mut Self::Tensor,
        dist: &mut Self::Tensor,
    ) -> Result<()> {
        crate::ops::rbf::check(x, centres, beta, out, dist)?;
        Kernels::rbf_forward(self, x, centres, beta, out, dist)
    }
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
    ) -> Result<()> {
        crate::ops::rbf::check(x, centres, beta, grad_out, dist)?;
        checks::check_same(
            "rbf_backward",
            "centre gradient vs centres",
            grad_centres,
            centres,
        )?;
        checks::check_same("rbf_backward", "width gradient vs widths", grad_beta, beta)?;
        if let Some(gx) = &grad_x {
            checks::check_same("rbf_backward", "input gradient vs input", *gx, x)?;
        }
        Kernels::rbf_backward(
            self,
            x,
            centres,
            beta,
            dist,
            grad_out,
            grad_centres,
            grad_beta,
            grad_x,
        )
    }
    fn max_norm_rows(&self, w: &mut Self::Tensor, max_norm: f64) -> Result<()> {
        crate::ops::max_norm::check(max_norm)?;
        Kernels::max_norm_rows(self, w, max_norm)
    }
    fn sum_rows(&self, x: &Self::Tensor, out: &mut Self::Tensor) -> Result<()> {
        crate::ops::reduce::check_sum_rows(x, out)?;
        Kernels::sum_rows(self, x, out)
    }
    fn sum_cols(&self, x: &Self::Tensor, out: &mut Self::Tensor) -> Result<()> {
        crate::ops::reduce::check_sum_cols(x, out)?;
        Kernels::sum_cols(self, x, out)
    }
    fn reduce(&self, op: Reduce, x: &Self::Tensor, out: &mut Self::Tensor) -> Result<()> {
        checks::check_scalar("reduce", "output", out)?;
        Kernels::reduce(self, op, x, out)
    }
    fn loss(
        &self,
        kind: Loss,
        pred: &Self::Tensor,
        target: Target<'_, Self>,
        grad: &mut Self::Tensor,
        loss: &mut Self::Tensor,
    ) -> Result<()> {
        crate::ops::loss::check::<Self>(kind, pred, &target, grad, loss)?;
        Kernels::loss(self, kind, pred, target, grad, loss)
    }
    fn loss_per_row(
        &self,
        kind: Loss,
        pred: &Self::Tensor,
        target: Target<'_, Self>,
        out: &mut Self::Tensor,
    ) -> Result<()> {
        if out.rows() != pred.rows() || out.cols() != 1 {
            return Err(crate::Error::Shape {
                op: "loss_per_row",
                detail: format!(
                    "a batch of {} needs a {}x1 output, got {}",
                    pred.shape_str(),
                    pred.rows(),
                    out.shape_str()
                ),
            });
        }
        // The same checks as the mean loss, on a stand-in 1x1 output.
        let one = self.zeros(1, 1)?;
        crate::ops::loss::check::<Self>(kind, pred, &target, pred, &one)?;
        Kernels::loss_per_row(self, kind, pred, target, out)
    }
    fn gather_rows(
        &self,
        src: &Self::Tensor,
        idx: &Self::Index,
        offset: usize,
        out: &mut Self::Tensor,
    ) -> Result<()> {
        crate::ops::gather::check_gather(
            "gather_rows",
            src.rows(),
            src.cols(),
            idx,
            offset,
            out.rows(),
            out.cols(),
        )?;
        Kernels::gather_rows(self, src, idx, offset, out)
    }
    fn gather_indices(
        &self,
        src: &Self::Index,
        idx: &Self::Index,
        offset: usize,
        out: &mut Self::Index,
    ) -> Result<()> {
        crate::ops::gather::check_gather_indices(src, idx, offset, out)?;
        Kernels::gather_indices(self, src, idx, offset, out)
    }
    fn count_top_k(
        &self,
        pred: &Self::Tensor,
        labels: &Self::Index,
        k: usize,
        correct: &mut Self::Tensor,
    ) -> Result<()> {
        crate::ops::reduce::check_top_k(pred, labels, k, correct)?;
        Kernels::count_top_k(self, pred, labels, k, correct)
    }
    fn max_tensor_len(&self) -> usize {
        Kernels::max_tensor_len(self)
    }
    fn fill(&self, t: &mut Self::Tensor, value: f64) -> Result<()> {
        Kernels::fill(self, t, value)
    }
    fn scale(&self, t: &mut Self::Tensor, alpha: f64) -> Result<()> {
        Kernels::scale(self, t, alpha)
    }
    fn axpy(&self, alpha: f64, x: &Self::Tensor, y: &mut Self::Tensor) -> Result<()> {
        checks::check_same("axpy", "x vs y", x, y)?;
        Kernels::axpy(self, alpha, x, y)
    }
    fn augment(
        &self,
        x: &Self::Tensor,
        transforms: &Self::Tensor,
        keys: &Self::Index,
        taps: &Self::Tensor,
        spec: &WarpSpec,
        out: &mut Self::Tensor,
    ) -> Result<()> {
        checks::check_same("augment", "input vs output", x, out)?;
        let shape = |detail: String| crate::Error::Shape {
            op: "augment",
            detail,
        };
        let image = spec.channels * spec.height * spec.width;
        if image == 0 || x.cols() != image {
            return Err(shape(format!(
                "rows of {} values are not {}×{}×{} images",
                x.cols(),
                spec.channels,
                spec.height,
                spec.width
            )));
        }
        if transforms.rows() != x.rows()
            || transforms.cols() != crate::ops::augment::TRANSFORM_FLOATS
        {
            return Err(shape(format!(
                "{}×{} transforms for {} images (one row of {} each)",
                transforms.rows(),
                transforms.cols(),
                x.rows(),
                crate::ops::augment::TRANSFORM_FLOATS
            )));
        }
        if spec.alpha != 0.0
            && (keys.len() != x.rows() || taps.len() != 2 * spec.radius as usize + 1)
        {
            return Err(shape(format!(
                "{} keys and {} taps for {} images and radius {}",
                keys.len(),
                taps.len(),
                x.rows(),
                spec.radius
            )));
        }
        Kernels::augment(self, x, transforms, keys, taps, spec, out)
    }
    fn dropout(&self, x: &Self::Tensor, out: &mut Self::Tensor, mask: &DropoutMask) -> Result<()> {
        checks::check_same("dropout", "input vs output", x, out)?;
        crate::ops::dropout::check_p(mask.p)?;
        Kernels::dropout(self, x, out, mask)
    }
    fn add_noise(
        &self,
        x: &Self::Tensor,
        out: &mut Self::Tensor,
        draw: &crate::ops::noise::NoiseDraw,
    ) -> Result<()> {
        checks::check_same("add_noise", "input vs output", x, out)?;
        crate::ops::noise::check_std(draw.std)?;
        Kernels::add_noise(self, x, out, draw)
    }
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
    ) -> Result<()> {
        crate::ops::batch_norm::check(x, gamma, beta, running_mean, running_var, out, Some(saved))?;
        Kernels::batch_norm_train(
            self,
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
        x: &Self::Tensor,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        running_mean: &Self::Tensor,
        running_var: &Self::Tensor,
        out: &mut Self::Tensor,
        eps: f64,
    ) -> Result<()> {
        crate::ops::batch_norm::check(x, gamma, beta, running_mean, running_var, out, None)?;
        Kernels::batch_norm_eval(self, x, gamma, beta, running_mean, running_var, out, eps)
    }
    fn batch_norm_backward(
        &self,
        x: &Self::Tensor,
        gamma: &Self::Tensor,
        saved: &Self::Tensor,
        grad_out: &Self::Tensor,
        grad_in: &mut Self::Tensor,
        grad_gamma: &mut Self::Tensor,
        grad_beta: &mut Self::Tensor,
    ) -> Result<()> {
        crate::ops::batch_norm::check_backward(x, gamma, grad_out, grad_in, grad_gamma, grad_beta)?;
        Kernels::batch_norm_backward(
            self, x, gamma, saved, grad_out, grad_in, grad_gamma, grad_beta,
        )
    }
    fn im2col(
        &self,
        x: &Self::Tensor,
        w: &Window2d,
        block: &ChannelBlock,
        cols: &mut Self::Tensor,
    ) -> Result<()> {
        crate::ops::conv::check_im2col("im2col", x, w, block, cols)?;
        Kernels::im2col(self, x, w, block, cols)
    }
    fn col2im(
        &self,
        cols: &Self::Tensor,
        w: &Window2d,
        block: &ChannelBlock,
        x: &mut Self::Tensor,
    ) -> Result<()> {
        crate::ops::conv::check_im2col("col2im", x, w, block, cols)?;
        Kernels::col2im(self, cols, w, block, x)
    }
    fn channels_last(
        &self,
        x: &Self::Tensor,
        block: &ChannelBlock,
        out: &mut Self::Tensor,
    ) -> Result<()> {
        crate::ops::conv::check_channels_last("channels_last", x, block, out)?;
        Kernels::channels_last(self, x, block, out)
    }
    fn channels_first(
        &self,
        z: &Self::Tensor,
        block: &ChannelBlock,
        out: &mut Self::Tensor,
    ) -> Result<()> {
        crate::ops::conv::check_channels_last("channels_first", out, block, z)?;
        Kernels::channels_first(self, z, block, out)
    }
    fn channel_rows(
        &self,
        x: &Self::Tensor,
        block: &ChannelBlock,
        rows: &mut Self::Tensor,
    ) -> Result<()> {
        crate::ops::conv::check_channel_rows("channel_rows", x, block, rows)?;
        Kernels::channel_rows(self, x, block, rows)
    }
    fn channel_planes(
        &self,
        rows: &Self::Tensor,
        block: &ChannelBlock,
        bias: Option<&Self::Tensor>,
        out: &mut Self::Tensor,
    ) -> Result<()> {
        let op = "channel_planes";
        crate::ops::conv::check_channel_rows(op, out, block, rows)?;
        if let Some(b) = bias {
            crate::ops::conv::check_bias(op, b, block.count)?;
        }
        Kernels::channel_planes(self, rows, block, bias, out)
    }
    fn pool2d(
        &self,
        kind: Pool,
        x: &Self::Tensor,
        w: &Window2d,
        out: &mut Self::Tensor,
        argmax: Option<&mut Self::Tensor>,
    ) -> Result<()> {
        crate::ops::conv::check_pool("pool2d", x, w, out)?;
        if let Some(a) = &argmax {
            checks::check_same("pool2d", "output vs winners", out, *a)?;
        }
        Kernels::pool2d(self, kind, x, w, out, argmax)
    }
    fn pool2d_backward(
        &self,
        kind: Pool,
        w: &Window2d,
        grad_out: &Self::Tensor,
        argmax: Option<&Self::Tensor>,
        grad_in: &mut Self::Tensor,
    ) -> Result<()> {
        crate::ops::conv::check_pool("pool2d_backward", grad_in, w, grad_out)?;
        match (kind, argmax) {
            (Pool::Max, None) => {
                return Err(checks::shape_err(
                    "pool2d_backward",
                    "max pooling's gradient needs the winners its forward pass saved".into(),
                ))
            }
            (_, Some(a)) => {
                checks::check_same("pool2d_backward", "gradient vs winners", grad_out, a)?
            }
            _ => {}
        }
        Kernels::pool2d_backward(self, kind, w, grad_out, argmax, grad_in)
    }
    fn conv2d_scratch_shapes(&self, rows: usize, g: &ConvGroup) -> [(usize, usize); 2] {
        Kernels::conv2d_scratch_shapes(self, rows, g)
    }
    fn conv2d(
        &self,
        x: &Self::Tensor,
        w: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        g: &ConvGroup,
        scratch: &mut [Self::Tensor],
        out: &mut Self::Tensor,
    ) -> Result<()> {
        let shapes = Kernels::conv2d_scratch_shapes(self, x.rows(), g);
        crate::ops::conv::check_conv2d("conv2d", x, w, bias, g, scratch, shapes, out)?;
        Kernels::conv2d(self, x, w, bias, g, scratch, out)
    }
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
        let op = "conv2d_backward";
        let bias = grads.bias.as_deref();
        let shapes = Kernels::conv2d_scratch_shapes(self, x.rows(), g);
        crate::ops::conv::check_conv2d(op, x, w, bias, g, scratch, shapes, grad_out)?;
        checks::check_same(op, "weight vs its gradient", w, &*grads.weight)?;
        if let Some(grad_in) = grads.input.as_deref() {
            checks::check_same(op, "input vs its gradient", x, grad_in)?;
        }
        Kernels::conv2d_backward(self, x, w, grad_out, g, scratch, columns_kept, grads)
    }
    fn copy_range(
        &self,
        src: &Self::Tensor,
        src_at: usize,
        dst: &mut Self::Tensor,
        dst_at: usize,
        len: usize,
    ) -> Result<()> {
        if len == 0 || src_at + len > src.len() || dst_at + len > dst.len() {
            return Err(checks::shape_err(
                "copy_range",
                format!(
                    "{len} values from {src_at} of a {} tensor to {dst_at} of a {} tensor",
                    src.shape_str(),
                    dst.shape_str()
                ),
            ));
        }
        Kernels::copy_range(self, src, src_at, dst, dst_at, len)
    }
    fn synchronize(&self) -> Result<()> {
        Kernels::synchronize(self)
    }
    fn zeros_flat(&self, shapes: &[(usize, usize)]) -> Result<FlatTensors<Self::Tensor>> {
        for &(rows, cols) in shapes {
            checks::check_size(self, "zeros_flat", rows, cols)?;
        }
        Kernels::zeros_flat(self, shapes)
    }
    fn accumulate_sum_squares(&self, x: &Self::Tensor, acc: &mut Self::Tensor) -> Result<()> {
        checks::check_scalar("accumulate_sum_squares", "accumulator", acc)?;
        Kernels::accumulate_sum_squares(self, x, acc)
    }
    fn accumulate_dot(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        acc: &mut Self::Tensor,
    ) -> Result<()> {
        checks::check_scalar("accumulate_dot", "accumulator", acc)?;
        if a.len() != b.len() {
            return Err(crate::Error::Shape {
                op: "accumulate_dot",
                detail: format!(
                    "{} and {} hold different numbers of elements",
                    a.shape_str(),
                    b.shape_str()
                ),
            });
        }
        Kernels::accumulate_dot(self, a, b, acc)
    }
    fn optimizer_update(
        &self,
        rule: &UpdateRule,
        step: u64,
        param: &mut Self::Tensor,
        grad: &Self::Tensor,
        state: &mut [Self::Tensor],
        grad_sq_norm: Option<&Self::Tensor>,
    ) -> Result<()> {
        crate::ops::optimizer::check(rule, step, param, grad, state, grad_sq_norm)?;
        Kernels::optimizer_update(self, rule, step, param, grad, state, grad_sq_norm)
    }
}
