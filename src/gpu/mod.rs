//! The GPU backend: WGSL kernels dispatched through wgpu, every tensor a
//! device buffer, every operation recorded into one command encoder until a
//! result is read back or [`Backend::synchronize`] is called.

mod autotune;
mod device;
pub(crate) mod runtime;
pub(crate) mod shaders;

pub(crate) use autotune::{cache_dir, random};
pub use autotune::{MatmulCache, MatmulCandidate, MatmulTuning};
pub use device::{list_adapters, list_adapters_async, AdapterEntry};

use crate::backend::{
    Activation, DropoutMask, FlatTensors, IndexVector, Kernels, Loss, MatmulSpec, Reduce, Shaped,
    Target, UpdateRule,
};
use crate::ops::conv::{ChannelBlock, ConvGrads, ConvGroup, Pool, Window2d};
use crate::ops::matmul::gpu::MATMUL_SHARE_LANES;
pub use crate::ops::matmul::gpu::{MatmulKernel, TiledPlan, TiledTile};
use crate::ops::{
    activation, batch_norm, conv, dropout, elementwise, gather, loss, matmul, optimizer, reduce,
};
use crate::Result;
pub(crate) use runtime::block_on_device;
pub use runtime::KernelTime;
use runtime::{Buf, Context};
pub use shaders::shader_sources;
pub(crate) use shaders::{
    ACTIVATION, AUGMENT, BATCH_NORM, CONV, DROPOUT, ELEMENTWISE, GATHER, LOSS, MATMUL_SHADERS,
    MAX_NORM, NOISE, OPTIMIZER, RBF, REDUCE,
};
use std::sync::{Arc, Mutex};

/// Workgroup size of the elementwise and reduction kernels.
pub(crate) const WG: u32 = 256;
/// Columns per workgroup of `sum_rows` (SUM_COLS of shaders/reduce/reduce.wgsl).
pub(crate) const SUM_COLS: u32 = 32;
/// Most workgroups the first pass of a reduction uses.
pub(crate) const REDUCE_GROUPS: usize = 256;

/// The GPU backend. Cloning is cheap and shares the device and its
/// settings: a kernel chosen with [`Gpu::set_matmul_kernel`] reaches every
/// clone, so also models built earlier. `Gpu` is `Send + Sync`: a handle can
/// be moved to, or shared with, another thread (work from several threads
/// on one handle is recorded in the order the calls are made).
///
/// # Matmul kernel choice
///
/// Several [`MatmulKernel`] families compute the same products; which is
/// fastest depends on the adapter. [`Gpu::autotune_matmul`] times each one
/// that passes a parity check against the CPU backend and records the
/// fastest in a small JSON file ([`MatmulCache`]) in `$WGTRAIN_CACHE_DIR`,
/// else `$XDG_CACHE_HOME/wgtrain`, else `~/.cache/wgtrain`, keyed by adapter
/// name, driver, backend, wgtrain version and a hash of the matmul shaders.
/// [`Gpu::new`] reads that file, which costs well under a millisecond, and
/// never measures unless `WGTRAIN_AUTOTUNE=1` is set and there is no entry
/// for this adapter yet; without an entry it uses a fixed default by
/// adapter type. [`Gpu::set_matmul_kernel`] overrides either.
///
/// ```no_run
/// use wgtrain::{Backend, Gpu};
/// let gpu = Gpu::new().expect("a GPU adapter (or lavapipe)");
/// println!("{}", gpu.describe());
/// let x = gpu.upload(2, 2, &[1.0, -2.0, 3.0, -4.0]).unwrap();
/// let mut y = gpu.zeros(2, 2).unwrap();
/// gpu.activation(wgtrain::Activation::Relu, &x, &mut y).unwrap();
/// assert_eq!(gpu.download(&y).unwrap(), vec![1.0, 0.0, 3.0, 0.0]);
/// ```
#[derive(Clone)]
pub struct Gpu {
    pub(crate) ctx: Arc<Context>,
    /// Bound in place of an absent optional input (no bias, no dense target).
    pub(crate) dummy: Arc<Buf>,
    settings: Arc<Mutex<KernelSettings>>,
}

/// The kernel choices every clone of a [`Gpu`] shares.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KernelSettings {
    pub(crate) matmul_kernel: MatmulKernel,
    /// A [`TiledPlan`] forced for every product, for tests and benchmarks.
    pub(crate) tiled_plan: Option<TiledPlan>,
}

/// A matrix resident in a device buffer.
pub struct GpuTensor {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) buf: Buf,
}

impl Shaped for GpuTensor {
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
}

/// A `u32` vector resident in a device buffer.
pub struct GpuIndex {
    pub(crate) len: usize,
    pub(crate) bound: usize,
    pub(crate) buf: Buf,
}

impl std::fmt::Debug for GpuTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuTensor({}x{})", self.rows, self.cols)
    }
}

impl std::fmt::Debug for GpuIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GpuIndex(len {}, bound {})", self.len, self.bound)
    }
}

impl IndexVector for GpuIndex {
    fn len(&self) -> usize {
        self.len
    }
    fn bound(&self) -> usize {
        self.bound
    }
}

impl Gpu {
    /// Opens the best adapter: a discrete GPU, then an integrated one, then a
    /// software adapter such as lavapipe. `WGPU_ADAPTER_NAME` and
    /// `WGPU_BACKEND` narrow the choice.
    ///
    /// The matmul kernel family is the one recorded for this adapter, driver
    /// and build in the disk cache ([`MatmulCache::from_env`]) by an earlier
    /// [`Gpu::autotune_matmul`]; without an entry it is
    /// [`MatmulKernel::RegistersShared`] on software adapters and
    /// [`MatmulKernel::Workgroup`] on the others, unless `WGTRAIN_AUTOTUNE=1`
    /// is set, in which case it is measured now (seconds) and cached. Only
    /// that measurement can fail here; a missing, unreadable or corrupt cache
    /// file is ignored.
    ///
    /// This is the native edge: it blocks on [`Gpu::new_async`].
    pub fn new() -> Result<Gpu> {
        let gpu = runtime::block_on_device(Gpu::new_async())?;
        let uncached = MatmulCache::from_env().is_none_or(|c| c.load(&gpu).is_none());
        if uncached && std::env::var("WGTRAIN_AUTOTUNE").is_ok_and(|v| v == "1") {
            gpu.autotune_into(MatmulCache::from_env().as_ref())?;
        }
        Ok(gpu)
    }

    /// Opens the best adapter as [`Gpu::new`] does, as a future: what an
    /// event loop (a browser page) awaits. The kernel choice comes from the
    /// disk cache or the adapter type's default; it never measures.
    ///
    /// ```no_run
    /// # async fn run() -> wgtrain::Result<()> {
    /// use wgtrain::{Backend, Gpu};
    /// let gpu = Gpu::new_async().await?;
    /// let t = gpu.upload(1, 2, &[1.0, 2.0])?;
    /// assert_eq!(gpu.download_async(&t).await?, vec![1.0, 2.0]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn new_async() -> Result<Gpu> {
        Gpu::open_on(None).await
    }

    /// Opens a device on the adapter `selector` names: its index in
    /// [`list_adapters`] or a case-insensitive part of its name. Opening the
    /// same adapter twice gives two devices (how the multi-device tests run
    /// on lavapipe). An index or name that matches nothing is
    /// [`Error::NoAdapter`](crate::Error::NoAdapter), listing what there is.
    ///
    /// ```no_run
    /// use wgtrain::Gpu;
    /// let first = Gpu::open("0").unwrap();
    /// let by_name = Gpu::open("llvmpipe").unwrap();
    /// ```
    pub fn open(selector: &str) -> Result<Gpu> {
        runtime::block_on_device(Gpu::open_async(selector))
    }

    /// As [`Gpu::open`], as a future.
    pub async fn open_async(selector: &str) -> Result<Gpu> {
        Gpu::open_on(Some(selector)).await
    }

    /// One device per entry of a comma-separated list of selectors
    /// (`"0,1"`, `"0,0"`, `"nvidia,amd"`), as `WGTRAIN_DEVICES` and the main
    /// job's `--devices` take them, in that order. Each is a handle of its
    /// own (`Send + Sync`): one thread per device.
    ///
    /// ```no_run
    /// let gpus = wgtrain::Gpu::open_many("0,0").unwrap();
    /// assert_eq!(gpus.len(), 2);
    /// ```
    pub fn open_many(list: &str) -> Result<Vec<Gpu>> {
        let entries: Vec<&str> = list.split(',').map(str::trim).collect();
        if entries.iter().any(|e| e.is_empty()) {
            return Err(crate::Error::NoAdapter {
                detail: format!("the device list {list:?} has an empty entry"),
            });
        }
        entries.into_iter().map(Gpu::open).collect()
    }

    async fn open_on(selector: Option<&str>) -> Result<Gpu> {
        let (adapter, device, queue) = device::open(selector).await?;
        let ctx = Context::new(device, queue, adapter.get_info());
        let dummy = Arc::new(ctx.alloc(4, "dummy")?);
        let software = ctx.info.device_type == wgpu::DeviceType::Cpu;
        let matmul_kernel = if software {
            MatmulKernel::RegistersShared
        } else {
            MatmulKernel::Workgroup
        };
        let gpu = Gpu {
            ctx,
            dummy,
            settings: Arc::new(Mutex::new(KernelSettings {
                matmul_kernel,
                tiled_plan: None,
            })),
        };
        if let Some(kernel) = MatmulCache::from_env().and_then(|c| c.load(&gpu)) {
            gpu.set_matmul_kernel(kernel);
        }
        Ok(gpu)
    }

    /// Ends the device now, releasing its memory without waiting for the
    /// last handle to drop: every later operation on it (and on its clones,
    /// and on models built on it) fails with an [`Error::Gpu`](crate::Error::Gpu)
    /// saying the device was lost, as after a driver reset or a browser
    /// reclaiming it.
    ///
    /// ```no_run
    /// use wgtrain::{Backend, Gpu};
    /// let gpu = Gpu::new().unwrap();
    /// let t = gpu.upload(1, 1, &[1.0]).unwrap();
    /// gpu.destroy();
    /// assert!(gpu.download(&t).unwrap_err().to_string().contains("lost"));
    /// ```
    pub fn destroy(&self) {
        self.ctx.destroy();
    }

    /// The adapter's description (name, backend, driver).
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.ctx.info
    }

    /// The limits the device was opened with (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.ctx.limits
    }

    /// True when the adapter is a CPU implementation (lavapipe, SwiftShader, WARP):
    /// its timings are CPU timings.
    pub fn is_software(&self) -> bool {
        self.ctx.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The matmul kernel family in use: as [`Gpu::new`] chose it (cached,
    /// measured or the adapter type's default), or as last set.
    pub fn matmul_kernel(&self) -> MatmulKernel {
        self.settings().matmul_kernel
    }

    /// Chooses the matmul kernel family for this device: every clone of this
    /// handle, and every model built on one, runs it from the next product on.
    ///
    /// ```no_run
    /// use wgtrain::{Gpu, MatmulKernel};
    /// let gpu = Gpu::new().unwrap();
    /// let shared = gpu.clone();
    /// gpu.set_matmul_kernel(MatmulKernel::Registers);
    /// assert_eq!(shared.matmul_kernel(), MatmulKernel::Registers);
    /// ```
    pub fn set_matmul_kernel(&self, kernel: MatmulKernel) {
        self.settings().matmul_kernel = kernel;
    }

    /// The shared kernel choices. Plain values, so a poisoned lock still
    /// holds a consistent choice.
    pub(crate) fn settings(&self) -> std::sync::MutexGuard<'_, KernelSettings> {
        self.settings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A handle on the same device whose kernel choices are its own copy,
    /// for measuring one kernel without changing what everyone else runs.
    pub(crate) fn detached(&self) -> Gpu {
        let settings = *self.settings();
        Gpu {
            settings: Arc::new(Mutex::new(settings)),
            ..self.clone()
        }
    }

    /// Makes [`MatmulKernel::Workgroup`] run every product with `plan`
    /// instead of [`TiledPlan::for_shape`]'s choice (`None` restores that),
    /// to test or time one tile or split.
    ///
    /// ```no_run
    /// use wgtrain::{Gpu, MatmulKernel, TiledPlan, TiledTile};
    /// let gpu = Gpu::new().unwrap();
    /// gpu.set_matmul_kernel(MatmulKernel::Workgroup);
    /// let plan = TiledPlan { tile: TiledTile::Small, split_k: 4, vec4: true };
    /// gpu.set_tiled_plan(Some(plan));
    /// ```
    pub fn set_tiled_plan(&self, plan: Option<TiledPlan>) {
        self.settings().tiled_plan = plan;
    }

    /// Whether the device has subgroups of exactly the lanes
    /// [`MatmulKernel::RegistersShared`] shares reads among; without them that
    /// family runs as [`MatmulKernel::Registers`].
    pub(crate) fn shares_subgroups(&self) -> bool {
        let info = &self.ctx.info;
        self.ctx
            .device
            .features()
            .contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == MATMUL_SHARE_LANES
            && info.subgroup_max_size == MATMUL_SHARE_LANES
    }

    /// (dispatches recorded, submissions made) since the device was opened.
    pub fn counters(&self) -> (u64, u64) {
        self.ctx.counters()
    }

    /// (device buffers, bind groups) created since the device was opened. A
    /// warm training step creates neither, so these stay constant.
    pub fn created(&self) -> (u64, u64) {
        self.ctx.created()
    }

    /// Whether [`Gpu::start_profiling`] can time kernels on this device.
    pub fn supports_timestamps(&self) -> bool {
        self.ctx
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Times every following dispatch (up to `max_dispatches`) with GPU
    /// timestamp queries, until [`Gpu::finish_profiling`]. Each timed
    /// dispatch runs in a compute pass of its own, so a profiled step is a
    /// little slower than an unprofiled one.
    ///
    /// ```no_run
    /// use wgtrain::{Backend, Gpu};
    /// let gpu = Gpu::new().unwrap();
    /// let a = gpu.upload(64, 64, &vec![1.0; 64 * 64]).unwrap();
    /// let mut c = gpu.zeros(64, 64).unwrap();
    /// gpu.start_profiling(16).unwrap();
    /// gpu.matmul(&a, &a, &mut c, Default::default()).unwrap();
    /// for k in gpu.finish_profiling().unwrap() {
    ///     println!("{} {}::{} {:.3} ms", k.family(), k.shader, k.entry, k.seconds * 1e3);
    /// }
    /// ```
    pub fn start_profiling(&self, max_dispatches: u32) -> Result<()> {
        self.ctx.start_profiling(max_dispatches)
    }

    /// Stops profiling; the GPU time of each timed dispatch, in order.
    pub fn finish_profiling(&self) -> Result<Vec<KernelTime>> {
        self.ctx.finish_profiling()
    }

    /// Submits recorded work without waiting for it.
    pub fn flush(&self) -> Result<()> {
        self.ctx.flush()
    }

    fn tensor(&self, rows: usize, cols: usize) -> Result<GpuTensor> {
        let buf = self
            .ctx
            .alloc((rows * cols * 4) as u64, &format!("{rows}x{cols} tensor"))?;
        Ok(GpuTensor { rows, cols, buf })
    }
}

impl Kernels for Gpu {
    type Scalar = f32;
    type Tensor = GpuTensor;
    type Index = GpuIndex;

    fn describe(&self) -> String {
        format!(
            "GPU backend (f32) on {}",
            device::describe(&self.ctx.info, &self.ctx.limits)
        )
    }

    fn zeros(&self, rows: usize, cols: usize) -> Result<GpuTensor> {
        let t = self.tensor(rows, cols)?;
        self.ctx.clear(&t.buf);
        Ok(t)
    }

    fn upload(&self, rows: usize, cols: usize, data: &[f32]) -> Result<GpuTensor> {
        let t = self.tensor(rows, cols)?;
        self.ctx.write_bytes(&t.buf, bytemuck::cast_slice(data))?;
        Ok(t)
    }

    fn write(&self, t: &mut GpuTensor, data: &[f64]) -> Result<()> {
        let v: Vec<f32> = data.iter().map(|&x| x as f32).collect();
        self.ctx.write_bytes(&t.buf, bytemuck::cast_slice(&v))
    }

    fn download(&self, t: &GpuTensor) -> Result<Vec<f64>> {
        runtime::block_on_device(self.download_async(t))
    }

    fn download_f32(&self, t: &GpuTensor) -> Result<Vec<f32>> {
        let bytes = self.ctx.read_bytes(&t.buf, (t.len() * 4) as u64)?;
        Ok(bytemuck::cast_slice::<u8, f32>(&bytes).to_vec())
    }

    fn write_f32(&self, t: &mut GpuTensor, data: &[f32]) -> Result<()> {
        self.ctx.write_bytes(&t.buf, bytemuck::cast_slice(data))
    }

    async fn download_async(&self, t: &GpuTensor) -> Result<Vec<f64>> {
        let bytes = self
            .ctx
            .read_bytes_async(&t.buf, (t.len() * 4) as u64)
            .await?;
        Ok(bytemuck::cast_slice::<u8, f32>(&bytes)
            .iter()
            .map(|&v| v as f64)
            .collect())
    }

    fn copy(&self, src: &GpuTensor, dst: &mut GpuTensor) -> Result<()> {
        self.ctx.copy(&src.buf, &dst.buf, (src.len() * 4) as u64);
        Ok(())
    }

    fn indices(&self, data: &[u32], bound: usize) -> Result<GpuIndex> {
        let buf = self
            .ctx
            .alloc((data.len() * 4) as u64, &format!("{} indices", data.len()))?;
        self.ctx.write_bytes(&buf, bytemuck::cast_slice(data))?;
        Ok(GpuIndex {
            len: data.len(),
            bound,
            buf,
        })
    }

    fn write_indices(&self, idx: &mut GpuIndex, data: &[u32]) -> Result<()> {
        self.ctx.write_bytes(&idx.buf, bytemuck::cast_slice(data))
    }

    fn download_indices(&self, idx: &GpuIndex) -> Result<Vec<u32>> {
        let bytes = self.ctx.read_bytes(&idx.buf, (idx.len * 4) as u64)?;
        Ok(bytemuck::cast_slice::<u8, u32>(&bytes).to_vec())
    }

    fn matmul(
        &self,
        a: &GpuTensor,
        b: &GpuTensor,
        out: &mut GpuTensor,
        spec: MatmulSpec<'_, GpuTensor>,
    ) -> Result<()> {
        matmul::gpu::matmul(self, a, b, out, spec)
    }

    fn activation(&self, act: Activation, x: &GpuTensor, out: &mut GpuTensor) -> Result<()> {
        activation::gpu::forward(self, act, x, out)
    }

    fn activation_backward(
        &self,
        act: Activation,
        z: &GpuTensor,
        grad_out: &GpuTensor,
        grad_in: &mut GpuTensor,
    ) -> Result<()> {
        activation::gpu::backward(self, act, z, grad_out, grad_in)
    }

    fn rbf_forward(
        &self,
        x: &GpuTensor,
        centres: &GpuTensor,
        beta: &GpuTensor,
        out: &mut GpuTensor,
        dist: &mut GpuTensor,
    ) -> Result<()> {
        crate::ops::rbf::gpu::forward(self, x, centres, beta, out, dist)
    }

    fn rbf_backward(
        &self,
        x: &GpuTensor,
        centres: &GpuTensor,
        beta: &GpuTensor,
        dist: &GpuTensor,
        grad_out: &GpuTensor,
        grad_centres: &mut GpuTensor,
        grad_beta: &mut GpuTensor,
        grad_x: Option<&mut GpuTensor>,
    ) -> Result<()> {
        crate::ops::rbf::gpu::backward(
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

    fn max_norm_rows(&self, w: &mut GpuTensor, max_norm: f64) -> Result<()> {
        crate::ops::max_norm::gpu::max_norm_rows(self, w, max_norm)
    }

    fn sum_rows(&self, x: &GpuTensor, out: &mut GpuTensor) -> Result<()> {
        reduce::gpu::sum_rows(self, x, out)
    }

    fn sum_cols(&self, x: &GpuTensor, out: &mut GpuTensor) -> Result<()> {
        reduce::gpu::sum_cols(self, x, out)
    }

    fn reduce(&self, op: Reduce, x: &GpuTensor, out: &mut GpuTensor) -> Result<()> {
        reduce::gpu::reduce(self, op, x, out)
    }

    fn loss(
        &self,
        kind: Loss,
        pred: &GpuTensor,
        target: Target<'_, Self>,
        grad: &mut GpuTensor,
        loss: &mut GpuTensor,
    ) -> Result<()> {
        loss::gpu::loss(self, kind, pred, target, grad, loss)
    }

    fn loss_per_row(
        &self,
        kind: Loss,
        pred: &GpuTensor,
        target: Target<'_, Self>,
        out: &mut GpuTensor,
    ) -> Result<()> {
        loss::gpu::loss_per_row(self, kind, pred, target, out)
    }

    fn gather_rows(
        &self,
        src: &GpuTensor,
        idx: &GpuIndex,
        offset: usize,
        out: &mut GpuTensor,
    ) -> Result<()> {
        gather::gpu::gather_rows(self, src, idx, offset, out)
    }

    fn gather_indices(
        &self,
        src: &GpuIndex,
        idx: &GpuIndex,
        offset: usize,
        out: &mut GpuIndex,
    ) -> Result<()> {
        gather::gpu::gather_indices(self, src, idx, offset, out)
    }

    fn count_top_k(
        &self,
        pred: &GpuTensor,
        labels: &GpuIndex,
        k: usize,
        correct: &mut GpuTensor,
    ) -> Result<()> {
        reduce::gpu::count_top_k(self, pred, labels, k, correct)
    }

    fn max_tensor_len(&self) -> usize {
        let l = &self.ctx.limits;
        (l.max_storage_buffer_binding_size.min(l.max_buffer_size) / 4) as usize
    }

    fn fill(&self, t: &mut GpuTensor, value: f64) -> Result<()> {
        elementwise::gpu::fill(self, t, value)
    }

    fn scale(&self, t: &mut GpuTensor, alpha: f64) -> Result<()> {
        elementwise::gpu::scale(self, t, alpha)
    }

    fn axpy(&self, alpha: f64, x: &GpuTensor, y: &mut GpuTensor) -> Result<()> {
        elementwise::gpu::axpy(self, alpha, x, y)
    }

    fn dropout(&self, x: &GpuTensor, out: &mut GpuTensor, mask: &DropoutMask) -> Result<()> {
        dropout::gpu::dropout(self, x, out, mask)
    }

    fn add_noise(
        &self,
        x: &GpuTensor,
        out: &mut GpuTensor,
        draw: &crate::ops::noise::NoiseDraw,
    ) -> Result<()> {
        crate::ops::noise::gpu::add_noise(self, x, out, draw)
    }

    fn augment(
        &self,
        x: &GpuTensor,
        transforms: &GpuTensor,
        keys: &GpuIndex,
        taps: &GpuTensor,
        spec: &crate::ops::augment::WarpSpec,
        out: &mut GpuTensor,
    ) -> Result<()> {
        crate::ops::augment::gpu::augment(self, x, transforms, keys, taps, spec, out)
    }

    fn conv2d(
        &self,
        x: &GpuTensor,
        w: &GpuTensor,
        bias: Option<&GpuTensor>,
        g: &ConvGroup,
        scratch: &mut [GpuTensor],
        out: &mut GpuTensor,
    ) -> Result<()> {
        conv::gpu::conv2d(self, x, w, bias, g, scratch, out)
    }

    fn conv2d_backward(
        &self,
        x: &GpuTensor,
        w: &GpuTensor,
        grad_out: &GpuTensor,
        g: &ConvGroup,
        scratch: &mut [GpuTensor],
        columns_kept: bool,
        grads: ConvGrads<'_, GpuTensor>,
    ) -> Result<()> {
        conv::gpu::conv2d_backward(self, x, w, grad_out, g, scratch, columns_kept, grads)
    }

    fn im2col(
        &self,
        x: &GpuTensor,
        w: &Window2d,
        block: &ChannelBlock,
        cols: &mut GpuTensor,
    ) -> Result<()> {
        conv::gpu::im2col(self, x, w, block, cols)
    }

    fn col2im(
        &self,
        cols: &GpuTensor,
        w: &Window2d,
        block: &ChannelBlock,
        x: &mut GpuTensor,
    ) -> Result<()> {
        conv::gpu::col2im(self, cols, w, block, x)
    }

    fn channels_last(
        &self,
        x: &GpuTensor,
        block: &ChannelBlock,
        out: &mut GpuTensor,
    ) -> Result<()> {
        conv::gpu::channels_last(self, x, block, out)
    }

    fn channels_first(
        &self,
        z: &GpuTensor,
        block: &ChannelBlock,
        out: &mut GpuTensor,
    ) -> Result<()> {
        conv::gpu::channels_first(self, z, block, out)
    }

    fn channel_rows(
        &self,
        x: &GpuTensor,
        block: &ChannelBlock,
        rows: &mut GpuTensor,
    ) -> Result<()> {
        conv::gpu::channel_rows(self, x, block, rows)
    }

    fn channel_planes(
        &self,
        rows: &GpuTensor,
        block: &ChannelBlock,
        bias: Option<&GpuTensor>,
        out: &mut GpuTensor,
    ) -> Result<()> {
        conv::gpu::channel_planes(self, rows, block, bias, out)
    }

    fn pool2d(
        &self,
        kind: Pool,
        x: &GpuTensor,
        w: &Window2d,
        out: &mut GpuTensor,
        argmax: Option<&mut GpuTensor>,
    ) -> Result<()> {
        conv::gpu::pool2d(self, kind, x, w, out, argmax)
    }

    fn pool2d_backward(
        &self,
        kind: Pool,
        w: &Window2d,
        grad_out: &GpuTensor,
        argmax: Option<&GpuTensor>,
        grad_in: &mut GpuTensor,
    ) -> Result<()> {
        conv::gpu::pool2d_backward(self, kind, w, grad_out, argmax, grad_in)
    }

    fn copy_range(
        &self,
        src: &GpuTensor,
        src_at: usize,
        dst: &mut GpuTensor,
        dst_at: usize,
        len: usize,
    ) -> Result<()> {
        self.ctx.copy_range(
            &src.buf,
            (src_at * 4) as u64,
            &dst.buf,
            (dst_at * 4) as u64,
            (len * 4) as u64,
        );
        Ok(())
    }

    fn batch_norm_train(
        &self,
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        running_mean: &mut GpuTensor,
        running_var: &mut GpuTensor,
        saved: &mut GpuTensor,
        out: &mut GpuTensor,
        momentum: f64,
        eps: f64,
    ) -> Result<()> {
        batch_norm::gpu::batch_norm_train(
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
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        running_mean: &GpuTensor,
        running_var: &GpuTensor,
        out: &mut GpuTensor,
        eps: f64,
    ) -> Result<()> {
        batch_norm::gpu::batch_norm_eval(self, x, gamma, beta, running_mean, running_var, out, eps)
    }

    fn batch_norm_backward(
        &self,
        x: &GpuTensor,
        gamma: &GpuTensor,
        saved: &GpuTensor,
        grad_out: &GpuTensor,
        grad_in: &mut GpuTensor,
        grad_gamma: &mut GpuTensor,
        grad_beta: &mut GpuTensor,
    ) -> Result<()> {
        batch_norm::gpu::batch_norm_backward(
            self, x, gamma, saved, grad_out, grad_in, grad_gamma, grad_beta,
        )
    }

    fn synchronize(&self) -> Result<()> {
        self.ctx.synchronize()
    }

    fn zeros_flat(&self, shapes: &[(usize, usize)]) -> Result<FlatTensors<GpuTensor>> {
        // Views start at multiples of the binding offset alignment.
        let align = (self.ctx.view_alignment() / 4).max(1) as usize;
        let too_large = || crate::Error::TooLarge {
            what: format!("one allocation for {} tensors", shapes.len()),
            bytes: u64::MAX,
            limit: self.max_tensor_len() as u64 * 4,
        };
        let mut offsets = Vec::with_capacity(shapes.len());
        let mut total = 0usize;
        for &(rows, cols) in shapes {
            offsets.push(total);
            let len = rows.checked_mul(cols).ok_or_else(too_large)?;
            total = total
                .checked_add(len)
                .and_then(|t| t.checked_next_multiple_of(align))
                .ok_or_else(too_large)?;
        }
        let parent = match self.ctx.alloc(total as u64 * 4, "flat tensors") {
            Ok(buf) => Arc::new(buf),
            // Past one binding, separate tensors still work.
            Err(crate::Error::TooLarge { .. }) => {
                let views = shapes
                    .iter()
                    .map(|&(rows, cols)| self.zeros(rows, cols))
                    .collect::<Result<_>>()?;
                return Ok(FlatTensors::separate(views));
            }
            Err(e) => return Err(e),
        };
        self.ctx.clear(&parent);
        let views = shapes
            .iter()
            .zip(&offsets)
            .map(|(&(rows, cols), offset)| GpuTensor {
                rows,
                cols,
                buf: self
                    .ctx
                    .view(&parent, *offset as u64 * 4, (rows * cols) as u64 * 4),
            })
            .collect();
        let whole = GpuTensor {
            rows: 1,
            cols: total,
            buf: self.ctx.view(&parent, 0, total as u64 * 4),
        };
        Ok(FlatTensors {
            views,
            whole: Some(whole),
            offsets,
        })
    }

    fn accumulate_sum_squares(&self, x: &GpuTensor, acc: &mut GpuTensor) -> Result<()> {
        optimizer::gpu::accumulate_sum_squares(self, x, None, acc)
    }

    fn accumulate_dot(&self, a: &GpuTensor, b: &GpuTensor, acc: &mut GpuTensor) -> Result<()> {
        optimizer::gpu::accumulate_sum_squares(self, a, Some(b), acc)
    }

    fn optimizer_update(
        &self,
        rule: &UpdateRule,
        step: u64,
        param: &mut GpuTensor,
        grad: &GpuTensor,
        state: &mut [GpuTensor],
        grad_sq_norm: Option<&GpuTensor>,
    ) -> Result<()> {
        optimizer::gpu::optimizer_update(self, rule, step, param, grad, state, grad_sq_norm)
    }
}
