//! The command recorder behind [`Gpu`](super::Gpu): pipelines built once and
//! cached, buffers pooled, bind groups cached, kernel parameters packed into
//! one uniform arena, and every dispatch recorded into one encoder until
//! something needs the results.

use crate::{Error, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A WGSL module, composed of pieces (src/gpu/shaders.rs lists them) and
/// built once per device.
pub(crate) struct Shader {
    pub name: &'static str,
    pub parts: &'static [Piece],
    /// Built without wgpu's runtime bounds checks and loop bounding. Only for
    /// kernels that keep every index in range themselves (clamped loads,
    /// guarded stores) and whose loops end: the checks cost the matmul about
    /// half its speed on lavapipe.
    pub trusted: bool,
}

/// One piece of a shader: a WGSL file, or WGSL generated from a Rust table
/// (e.g. the activation dispatch, one case per [`Activation`](crate::Activation)).
#[derive(Clone, Copy)]
pub(crate) enum Piece {
    File(&'static str),
    Generated(fn() -> String),
}

impl Shader {
    /// The whole WGSL source, its pieces in order.
    pub fn source(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Piece::File(text) => text.to_string(),
                Piece::Generated(make) => make(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Bytes reserved per dispatch in the parameter arena: the largest uniform
/// offset alignment any adapter asks for, and room for 64 `u32` words.
const PARAM_SLOT: u64 = 256;
/// Dispatches recorded before a submission is forced by a full arena.
const PARAM_SLOTS: u64 = 4096;
/// Most storage buffers one kernel binds.
const MAX_BINDINGS: usize = 8;

/// One kernel: an entry point of a shader, specialised by override constants
/// (transpose flags, activation, tile sizes), each listed as `(name, value)`.
pub(crate) struct Kernel<'a> {
    pub shader: &'static Shader,
    pub entry: &'static str,
    pub constants: &'a [(&'static str, f64)],
}

/// A storage buffer binding: which buffer, and whether the kernel writes it.
pub(crate) struct Bind<'a> {
    pub buf: &'a Buf,
    pub write: bool,
}

impl<'a> Bind<'a> {
    pub fn read(buf: &'a Buf) -> Self {
        Bind { buf, write: false }
    }
    pub fn write(buf: &'a Buf) -> Self {
        Bind { buf, write: true }
    }
}

/// A pooled device buffer, or a view of a range of one; dropping a pooled
/// buffer returns it to the pool for reuse.
pub(crate) struct Buf {
    /// Keys bind groups: a view has an id of its own.
    pub id: u64,
    pub buffer: wgpu::Buffer,
    /// Where this buffer's bytes start in `buffer` (0 unless a view).
    pub offset: u64,
    pub bytes: u64,
    owner: Owner,
}

/// Who gives the wgpu buffer back.
enum Owner {
    /// A pooled buffer: returned to its context's pool on drop.
    Pool(Arc<Context>),
    /// A view: keeps the buffer it views out of the pool while it lives.
    View { _parent: Arc<Buf> },
}

impl Drop for Buf {
    fn drop(&mut self) {
        if let Owner::Pool(ctx) = &self.owner {
            ctx.state()
                .pool
                .entry(self.bytes)
                .or_default()
                .push((self.id, self.buffer.clone()));
        }
    }
}

impl Buf {
    /// The binding of this buffer's bytes.
    fn binding(&self) -> wgpu::BindingResource<'_> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(self.bytes),
        })
    }
}

/// Override constants a kernel may set (the implicit convolution's
/// geometry and transpose flag set 16).
const MAX_CONSTANTS: usize = 16;

#[derive(Hash, PartialEq, Eq, Clone, Copy)]
struct PipelineKey {
    shader: &'static str,
    entry: &'static str,
    constants: [u64; MAX_CONSTANTS],
}

#[derive(Hash, PartialEq, Eq, Clone, Copy)]
struct BindKey {
    layout: u8,
    ids: [u64; MAX_BINDINGS],
}

/// Layout of binding 0 (the parameter slot) plus up to MAX_BINDINGS storage
/// buffers, encoded as a bit per binding: 1 = read-write.
#[derive(Hash, PartialEq, Eq, Clone, Copy)]
struct LayoutKey {
    count: u8,
    writes: u8,
}

struct Pipeline {
    pipeline: wgpu::ComputePipeline,
    layout: LayoutKey,
}

pub(crate) struct Context {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    params_buf: wgpu::Buffer,
    /// Errors wgpu reports outside an error scope, surfaced at the next flush.
    error: Arc<Mutex<Option<String>>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    encoder: Option<wgpu::CommandEncoder>,
    pass: Option<wgpu::ComputePass<'static>>,
    params: Vec<u8>,
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    layouts: HashMap<LayoutKey, (u8, wgpu::BindGroupLayout, wgpu::PipelineLayout)>,
    pipelines: HashMap<PipelineKey, Arc<Pipeline>>,
    bind_groups: HashMap<BindKey, wgpu::BindGroup>,
    pool: HashMap<u64, Vec<(u64, wgpu::Buffer)>>,
    next_id: u64,
    dispatches: u64,
    submissions: u64,
    /// Readback buffers by size, reused so that reading the loss every few
    /// steps creates nothing once warm.
    readback: HashMap<u64, Vec<wgpu::Buffer>>,
    /// Device buffers and bind groups created so far (see `created`).
    buffers_created: u64,
    bind_groups_created: u64,
    profiler: Option<Profiler>,
}

/// While profiling, each dispatch runs in a compute pass of its own whose
/// start and end write GPU timestamps into `set`.
struct Profiler {
    set: wgpu::QuerySet,
    capacity: u32,
    kernels: Vec<(&'static str, &'static str)>,
}

/// The GPU time of one dispatch, from timestamp queries.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTime {
    /// The shader (file) name, e.g. `matmul_vec4_shared`.
    pub shader: &'static str,
    /// The entry point, e.g. `act_backward`.
    pub entry: &'static str,
    /// Seconds between the start and the end of its compute pass.
    pub seconds: f64,
}

impl KernelTime {
    /// The kernel family, for a per-family breakdown of a training step.
    pub fn family(&self) -> &'static str {
        match (self.shader, self.entry) {
            (s, _) if s.starts_with("matmul") => "matmul",
            (_, "act_forward" | "act_backward") => "activation",
            ("loss", _) => "loss",
            ("reduce", "sum_rows") => "bias reduce",
            ("reduce", "count_top_k") => "accuracy",
            ("reduce", _) => "reduction",
            ("optim", _) => "optimizer",
            ("normalize", "dropout") => "dropout",
            ("normalize", _) => "batch norm",
            (_, "gather_rows") => "gather",
            _ => "elementwise",
        }
    }
}

impl Context {
    /// The recorder's state. A panic while it was held leaves nothing
    /// half-updated that matters (caches and counters), so a poisoned lock
    /// is taken over rather than propagated.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn new(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo) -> Arc<Context> {
        let limits = device.limits();
        let error = Arc::new(Mutex::new(None::<String>));
        let sink = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| e.to_string());
        }));
        // A lost device (a driver reset, a browser reclaiming it,
        // `Gpu::destroy`) is the cause of whatever fails after it: its
        // message replaces any that came before.
        let lost = error.clone();
        device.set_device_lost_callback(move |reason, message| {
            let mut slot = lost.lock().unwrap_or_else(|p| p.into_inner());
            let why = if message.is_empty() {
                format!("{reason:?}")
            } else {
                format!("{reason:?}: {message}")
            };
            *slot = Some(format!(
                "the GPU device was lost ({why}); every tensor on it is gone: open a new \
                 device (in a browser, reload the page) and resume from a checkpoint"
            ));
        });
        let params_buf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgtrain params"),
            size: PARAM_SLOT * PARAM_SLOTS,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Arc::new(Context {
            device,
            queue,
            info,
            limits,
            params_buf,
            error,
            state: Mutex::new(State::default()),
        })
    }

    /// A buffer of `bytes` bytes from the pool, or a new one. Its contents are
    /// whatever the last user left: callers clear or overwrite it.
    pub fn alloc(self: &Arc<Self>, bytes: u64, what: &str) -> Result<Buf> {
        let limit = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        if bytes > limit {
            return Err(Error::TooLarge {
                what: what.to_string(),
                bytes,
                limit,
            });
        }
        let bytes = bytes.max(4);
        let mut st = self.state();
        if let Some((id, buffer)) = st.pool.get_mut(&bytes).and_then(|v| v.pop()) {
            return Ok(Buf {
                id,
                buffer,
                offset: 0,
                bytes,
                owner: Owner::Pool(self.clone()),
            });
        }
        st.next_id += 1;
        let id = st.next_id;
        drop(st);
        self.state().buffers_created += 1;
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(what),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Buf {
            id,
            buffer,
            offset: 0,
            bytes,
            owner: Owner::Pool(self.clone()),
        })
    }

    /// The alignment, in bytes, of a view's start: the device's storage
    /// binding offset alignment.
    pub fn view_alignment(&self) -> u64 {
        self.limits.min_storage_buffer_offset_alignment as u64
    }

    /// A view of `bytes` bytes of `parent` from `offset` (a multiple of
    /// [`Context::view_alignment`]), bound and copied like a buffer of its own.
    pub fn view(&self, parent: &Arc<Buf>, offset: u64, bytes: u64) -> Buf {
        debug_assert!(
            offset.is_multiple_of(self.view_alignment()) && offset + bytes <= parent.bytes
        );
        let mut st = self.state();
        st.next_id += 1;
        Buf {
            id: st.next_id,
            buffer: parent.buffer.clone(),
            offset: parent.offset + offset,
            bytes,
            owner: Owner::View {
                _parent: parent.clone(),
            },
        }
    }

    /// Runs `f` on the open encoder (closing any open compute pass first),
    /// for copies and clears, which cannot happen inside a pass.
    pub fn with_encoder<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut st = self.state();
        st.pass = None;
        let encoder = st.encoder.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("wgtrain"),
                })
        });
        f(encoder)
    }

    /// Fills a buffer with zero bytes, in stream order.
    pub fn clear(&self, buf: &Buf) {
        self.with_encoder(|e| e.clear_buffer(&buf.buffer, buf.offset, Some(buf.bytes)));
    }

    /// Copies host bytes into a buffer, in stream order: through a staging
    /// buffer and a recorded copy, so work recorded earlier still sees the old
    /// contents (a queue write would land before it).
    /// Fails only when the device is gone (lost or destroyed), whose
    /// buffers can no longer be mapped.
    pub fn write_bytes(&self, buf: &Buf, bytes: &[u8]) -> Result<()> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgtrain upload"),
            size: bytes.len() as u64,
            usage: wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: true,
        });
        staging
            .slice(..)
            .get_mapped_range_mut()
            .map_err(|e| self.device_error(format!("writing to the device: {e}")))?
            .copy_from_slice(bytes);
        staging.unmap();
        self.with_encoder(|e| {
            e.copy_buffer_to_buffer(&staging, 0, &buf.buffer, buf.offset, bytes.len() as u64)
        });
        Ok(())
    }

    /// Copies `bytes` bytes between two buffers, in stream order.
    pub fn copy(&self, src: &Buf, dst: &Buf, bytes: u64) {
        self.copy_range(src, 0, dst, 0, bytes);
    }

    /// Records a copy of `bytes` from byte `src_at` of `src` to `dst_at` of
    /// `dst` (all multiples of 4).
    pub fn copy_range(&self, src: &Buf, src_at: u64, dst: &Buf, dst_at: u64, bytes: u64) {
        self.with_encoder(|e| {
            e.copy_buffer_to_buffer(
                &src.buffer,
                src.offset + src_at,
                &dst.buffer,
                dst.offset + dst_at,
                bytes,
            )
        });
    }

    /// Submits what was recorded and waits, then returns the first `bytes` bytes of `buf`.
    pub fn read_bytes(&self, buf: &Buf, bytes: u64) -> Result<Vec<u8>> {
        block_on_device(self.read_bytes_async(buf, bytes))
    }

    /// As [`Context::read_bytes`], as a future: it resolves when the copy
    /// has been mapped, without blocking an event loop (on the web the
    /// device is driven by the browser; natively the poll below drives it).
    pub async fn read_bytes_async(&self, buf: &Buf, bytes: u64) -> Result<Vec<u8>> {
        self.read_raw(&buf.buffer, buf.offset, bytes).await
    }

    /// As [`Context::read_bytes_async`], from any buffer that allows copies from it.
    async fn read_raw(&self, buffer: &wgpu::Buffer, offset: u64, bytes: u64) -> Result<Vec<u8>> {
        let pooled = self.state().readback.get_mut(&bytes).and_then(|v| v.pop());
        let staging = pooled.unwrap_or_else(|| {
            self.state().buffers_created += 1;
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("wgtrain readback"),
                size: bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        self.with_encoder(|e| e.copy_buffer_to_buffer(buffer, offset, &staging, 0, bytes));
        self.flush()?;
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| self.device_error(e.to_string()))?;
        match rx.receive().await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return Err(self.device_error(format!("mapping a readback buffer failed: {e}")))
            }
            None => {
                return Err(Error::Gpu(
                    "the readback was dropped before it completed".into(),
                ))
            }
        }
        self.take_error()?;
        let data = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| Error::Gpu(format!("reading a mapped buffer: {e}")))?
            .to_vec();
        staging.unmap();
        self.state()
            .readback
            .entry(bytes)
            .or_default()
            .push(staging);
        Ok(data)
    }

    /// Submits everything recorded so far (does not wait).
    pub fn flush(&self) -> Result<()> {
        let mut st = self.state();
        st.pass = None;
        if let Some(encoder) = st.encoder.take() {
            if !st.params.is_empty() {
                self.queue.write_buffer(&self.params_buf, 0, &st.params);
                st.params.clear();
            }
            self.queue.submit([encoder.finish()]);
            st.submissions += 1;
        }
        drop(st);
        self.take_error()
    }

    /// Submits and waits until the device is idle.
    pub fn synchronize(&self) -> Result<()> {
        self.flush()?;
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| self.device_error(e.to_string()))?;
        self.take_error()
    }

    fn take_error(&self) -> Result<()> {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        match slot.take() {
            Some(e) => Err(Error::Gpu(e)),
            None => Ok(()),
        }
    }

    /// The error the device reported (a lost device, a failed validation),
    /// which is the cause of `symptom`, or else `symptom` itself.
    fn device_error(&self, symptom: String) -> Error {
        // Native wgpu reports a loss from its poll: let it, without waiting.
        let _ = self.device.poll(wgpu::PollType::Poll);
        self.take_error().err().unwrap_or(Error::Gpu(symptom))
    }

    /// Ends the device now (see [`Gpu::destroy`](crate::Gpu::destroy)).
    pub fn destroy(&self) {
        self.device.destroy();
    }

    /// (dispatches recorded, submissions made) since the device was opened.
    pub fn counters(&self) -> (u64, u64) {
        let st = self.state();
        (st.dispatches, st.submissions)
    }

    /// Starts timing every dispatch (up to `max_dispatches`) with GPU
    /// timestamp queries; fails when the device has no timestamp support.
    pub fn start_profiling(&self, max_dispatches: u32) -> Result<()> {
        if !self
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
        {
            return Err(Error::Gpu(format!(
                "{} has no timestamp queries",
                self.info.name
            )));
        }
        let capacity = (2 * max_dispatches).clamp(2, wgpu::QUERY_SET_MAX_QUERIES);
        let set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("wgtrain profiler"),
            ty: wgpu::QueryType::Timestamp,
            count: capacity,
        });
        self.flush()?;
        self.state().profiler = Some(Profiler {
            set,
            capacity,
            kernels: Vec::new(),
        });
        Ok(())
    }

    /// Stops profiling and returns the GPU time of every timed dispatch, in order.
    pub fn finish_profiling(&self) -> Result<Vec<KernelTime>> {
        let Some(p) = self.state().profiler.take() else {
            return Err(Error::Gpu(
                "finish_profiling without start_profiling".into(),
            ));
        };
        if p.kernels.is_empty() {
            return Ok(Vec::new());
        }
        let count = 2 * p.kernels.len() as u32;
        let resolved = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("wgtrain timestamps"),
            size: 8 * count as u64,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        self.with_encoder(|e| e.resolve_query_set(&p.set, 0..count, &resolved, 0));
        let bytes = block_on_device(self.read_raw(&resolved, 0, 8 * count as u64))?;
        let ticks: &[u64] = bytemuck::cast_slice(&bytes);
        let period_ns = self.queue.get_timestamp_period() as f64;
        Ok(p.kernels
            .iter()
            .zip(ticks.chunks_exact(2))
            .map(|(&(shader, entry), t)| KernelTime {
                shader,
                entry,
                seconds: t[1].saturating_sub(t[0]) as f64 * period_ns * 1e-9,
            })
            .collect())
    }

    /// (device buffers, bind groups) created since the device was opened:
    /// constant across warm training steps.
    pub fn created(&self) -> (u64, u64) {
        let st = self.state();
        (st.buffers_created, st.bind_groups_created)
    }

    fn layout(&self, st: &mut State, key: LayoutKey) -> u8 {
        let next = st.layouts.len() as u8;
        if let Some((id, _, _)) = st.layouts.get(&key) {
            return *id;
        }
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: wgpu::BufferSize::new(PARAM_SLOT),
            },
            count: None,
        }];
        for i in 0..key.count as u32 {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: i + 1,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: key.writes & (1 << i) == 0,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let bgl = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: None,
                entries: &entries,
            });
        let pl = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: None,
                bind_group_layouts: &[Some(&bgl)],
                immediate_size: 0,
            });
        st.layouts.insert(key, (next, bgl, pl));
        next
    }

    fn pipeline(
        &self,
        st: &mut State,
        kernel: &Kernel<'_>,
        layout: LayoutKey,
    ) -> Result<Arc<Pipeline>> {
        let mut constants = [0u64; MAX_CONSTANTS];
        for (slot, (_, v)) in constants.iter_mut().zip(kernel.constants) {
            *slot = v.to_bits();
        }
        let key = PipelineKey {
            shader: kernel.shader.name,
            entry: kernel.entry,
            constants,
        };
        if let Some(p) = st.pipelines.get(&key) {
            if p.layout != layout {
                return Err(Error::Gpu(format!(
                    "{}::{} bound with a different layout",
                    kernel.shader.name, kernel.entry
                )));
            }
            return Ok(p.clone());
        }
        self.layout(st, layout);
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = st.modules.entry(kernel.shader.name).or_insert_with(|| {
            let desc = wgpu::ShaderModuleDescriptor {
                label: Some(kernel.shader.name),
                source: wgpu::ShaderSource::Wgsl(kernel.shader.source().into()),
            };
            if kernel.shader.trusted {
                // SAFETY: `trusted` is set only on shaders whose every buffer
                // index is clamped or guarded in the WGSL and whose loops have
                // bounded trip counts (see Shader::trusted).
                unsafe {
                    self.device
                        .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
                }
            } else {
                self.device.create_shader_module(desc)
            }
        });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry),
                layout: Some(&st.layouts[&layout].2),
                module,
                entry_point: Some(kernel.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: kernel.constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        // Native wgpu resolves a popped scope at once, so one poll of the
        // future reads it. The browser answers later: there the scope's
        // error is awaited in the background and reported at the next
        // flush, as the first error the device had.
        let what = format!("building {}::{}", kernel.shader.name, kernel.entry);
        let mut popped = Box::pin(scope.pop());
        match poll_once(popped.as_mut()) {
            Some(Some(e)) => return Err(Error::Gpu(format!("{what}: {e}"))),
            Some(None) => {}
            None => {
                #[cfg(all(target_arch = "wasm32", feature = "web"))]
                {
                    let sink = self.error.clone();
                    wasm_bindgen_futures::spawn_local(async move {
                        if let Some(e) = popped.await {
                            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
                            slot.get_or_insert_with(|| format!("{what}: {e}"));
                        }
                    });
                }
            }
        }
        let p = Arc::new(Pipeline { pipeline, layout });
        st.pipelines.insert(key, p.clone());
        Ok(p)
    }

    /// Records one dispatch: `params` (the kernel's `#[repr(C)]` parameter
    /// struct, mirrored by its WGSL `Params`) go to binding 0, `binds` to
    /// 1, 2, …
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        kernel: &Kernel<'_>,
        params: &P,
        binds: &[Bind<'_>],
        groups: [u32; 3],
    ) -> Result<()> {
        assert!(
            binds.len() <= MAX_BINDINGS
                && std::mem::size_of::<P>() <= PARAM_SLOT as usize
                && kernel.constants.len() <= MAX_CONSTANTS
        );
        let max = self.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(Error::TooLarge {
                what: format!(
                    "dispatch {:?} of {}::{}",
                    groups, kernel.shader.name, kernel.entry
                ),
                bytes: *groups.iter().max().unwrap() as u64,
                limit: max as u64,
            });
        }
        if groups.contains(&0) {
            return Ok(());
        }
        if self.state().params.len() as u64 >= PARAM_SLOT * PARAM_SLOTS {
            self.flush()?;
        }
        let mut writes = 0u8;
        let mut ids = [0u64; MAX_BINDINGS];
        for (i, b) in binds.iter().enumerate() {
            writes |= (b.write as u8) << i;
            ids[i] = b.buf.id;
        }
        let layout = LayoutKey {
            count: binds.len() as u8,
            writes,
        };
        let mut st = self.state();
        let pipeline = self.pipeline(&mut st, kernel, layout)?;
        let layout_id = st.layouts[&layout].0;
        let bind_key = BindKey {
            layout: layout_id,
            ids,
        };
        if !st.bind_groups.contains_key(&bind_key) {
            // Bounded: a long-lived program that keeps making new tensors
            // must not grow this without limit.
            if st.bind_groups.len() > 8192 {
                st.bind_groups.clear();
            }
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &self.params_buf,
                    offset: 0,
                    size: wgpu::BufferSize::new(PARAM_SLOT),
                }),
            }];
            for (i, b) in binds.iter().enumerate() {
                entries.push(wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: b.buf.binding(),
                });
            }
            st.bind_groups_created += 1;
            let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &st.layouts[&layout].1,
                entries: &entries,
            });
            st.bind_groups.insert(bind_key, bg);
        }
        let offset = st.params.len();
        // Native byte order: little-endian on every target wgpu runs on,
        // as WGSL's uniform layout is.
        st.params.extend_from_slice(bytemuck::bytes_of(params));
        st.params.resize(offset + PARAM_SLOT as usize, 0);
        st.dispatches += 1;
        let State {
            encoder,
            pass,
            bind_groups,
            profiler,
            ..
        } = &mut *st;
        // A timed dispatch gets a pass of its own, with timestamps at its
        // start and end; past the query set's capacity dispatches go untimed.
        let timed = profiler
            .as_mut()
            .filter(|p| (p.kernels.len() as u32) < p.capacity / 2);
        if let Some(p) = timed {
            let i = 2 * p.kernels.len() as u32;
            p.kernels.push((kernel.shader.name, kernel.entry));
            let encoder = encoder.get_or_insert_with(|| {
                self.device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("wgtrain"),
                    })
            });
            *pass = None;
            let mut timed_pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &p.set,
                    beginning_of_pass_write_index: Some(i),
                    end_of_pass_write_index: Some(i + 1),
                }),
            });
            timed_pass.set_pipeline(&pipeline.pipeline);
            timed_pass.set_bind_group(0, &bind_groups[&bind_key], &[offset as u32]);
            timed_pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
            return Ok(());
        }
        let pass = pass.get_or_insert_with(|| {
            let encoder = encoder.get_or_insert_with(|| {
                self.device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("wgtrain"),
                    })
            });
            encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: None,
                })
                .forget_lifetime()
        });
        pass.set_pipeline(&pipeline.pipeline);
        pass.set_bind_group(0, &bind_groups[&bind_key], &[offset as u32]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        Ok(())
    }

    /// Workgroup counts covering `n` items at `per_group` items a group,
    /// spilling into y when x would pass the per-dimension limit. Kernels
    /// rebuild the linear index as `gid.x + gid.y · num_workgroups.x · size`.
    pub fn linear_groups(&self, n: usize, per_group: u32) -> [u32; 3] {
        let groups = n.div_ceil(per_group as usize) as u64;
        let max = self.limits.max_compute_workgroups_per_dimension as u64;
        if groups <= max {
            [groups as u32, 1, 1]
        } else {
            [max as u32, groups.div_ceil(max) as u32, 1]
        }
    }
}

/// Waits for a future that the device resolves: the native edge of the
/// async seam. In a browser the device answers only once the page's event
/// loop runs again, so waiting there would never end: it is an error
/// naming the async form instead.
pub(crate) fn block_on_device<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    if cfg!(target_arch = "wasm32") {
        return Err(Error::Gpu(
            "this call waits for the device, which a browser page cannot do (the device \
             answers only when the page's event loop runs): await its async form \
             (Gpu::new_async, Gpu::open_async, download_async, checkpoint::state_dict_async, \
             train::fit_async)"
                .into(),
        ));
    }
    pollster::block_on(f)
}

/// The output of `f` if it is ready on its first poll.
fn poll_once<F: std::future::Future>(f: F) -> Option<F::Output> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}
