//! Choosing the matmul kernel family per adapter by measuring it once, and
//! remembering the choice on disk so later processes skip the measurement.

use super::{Gpu, MATMUL_SHADERS};
use crate::ops::matmul::gpu::{
    MatmulKernel, TiledTile, LARGE_TILE_MIN_GROUPS, MATMUL_SHARE_LANES, MATMUL_TILE, MAX_K_CHUNK,
    MAX_SPLIT_K, MIN_K_CHUNK, SPLIT_K_TARGET_GROUPS,
};
use crate::{Activation, Backend, Cpu, Error, MatmulSpec, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The products timed, `(label, m, n, k, transpose_a, transpose_b)`: the
/// three of a 784-512 dense layer at batch 256 (forward `X·Wᵀ`, weight
/// gradient `δᵀ·X`, input gradient `δ·W`), which is where training spends
/// its matmul time, and a square product, so that a kernel tuned only for the
/// MLP's transpose forms does not win by them alone.
const PRODUCTS: [(&str, usize, usize, usize, bool, bool); 4] = [
    ("256x784·(512x784)ᵀ", 256, 512, 784, false, true),
    ("(256x512)ᵀ·256x784", 512, 784, 256, true, false),
    ("256x512·512x784", 256, 784, 512, false, false),
    ("512x512·512x512", 512, 512, 512, false, false),
];
/// Timed runs of each product; the fastest counts, since on a shared machine
/// the slower runs measure the other load rather than the kernel.
const REPS: usize = 3;
/// The parity problems, `(m, n, k)`, each run in all four transpose forms:
/// sizes that fill no tile (scalar kernels, edge guards), and a shape that
/// takes the vec4 kernels without filling their tile.
const CHECKS: [(usize, usize, usize); 2] = [(33, 65, 257), (36, 68, 132)];
/// Largest parity error accepted, max |gpu − cpu| / max(1, |cpu|): the bound
/// of tests/kernels.rs, about k·2⁻²⁴ of the dot products' magnitude.
const TOLERANCE: f64 = 1e-4;

/// One kernel family as the tuner saw it.
#[derive(Clone, Debug)]
pub struct MatmulCandidate {
    /// The family.
    pub kernel: MatmulKernel,
    /// Worst parity error against `Cpu<f32>` on the check problems;
    /// infinite when the kernel failed to run or produced NaN or infinity.
    pub parity_error: f64,
    /// The fastest run of each timed product, labelled with its shape, or
    /// why the kernel was skipped (wrong results or an error on this
    /// adapter).
    pub timing: std::result::Result<Vec<(&'static str, Duration)>, String>,
}

impl MatmulCandidate {
    /// The sum of the fastest runs of every timed product, for kernels that
    /// passed the parity check.
    pub fn total(&self) -> Option<Duration> {
        self.timing
            .as_ref()
            .ok()
            .map(|times| times.iter().map(|(_, t)| *t).sum())
    }
}

/// What [`Gpu::measure_matmul`] found: the fastest correct kernel and every
/// candidate's parity error and timings.
#[derive(Clone, Debug)]
pub struct MatmulTuning {
    /// The kernel with the smallest [`MatmulCandidate::total`].
    pub kernel: MatmulKernel,
    /// Every family that applies to the adapter, in the order measured.
    pub candidates: Vec<MatmulCandidate>,
}

impl Gpu {
    /// Measures every matmul kernel family that applies to this adapter
    /// (`RegistersShared` only where it differs from `Registers`, i.e. with
    /// subgroups of 8) and returns the fastest by total time over four
    /// representative products (a dense layer's forward, weight- and
    /// input-gradient products at batch 256, and 512³ `A·B`), best of
    /// three runs each. A kernel is first checked against [`Cpu<f32>`] on
    /// small awkward-size products in every transpose form and skipped if it
    /// is wrong or fails on this adapter. Takes seconds on a software
    /// adapter; changes nothing (neither this handle's kernel nor the disk
    /// cache): see [`Gpu::autotune_matmul`] for that.
    ///
    /// Fails when no kernel family matches the CPU reference.
    ///
    /// ```no_run
    /// use wgtrain::Gpu;
    /// let gpu = Gpu::new().unwrap();
    /// let tuning = gpu.measure_matmul().unwrap();
    /// for c in &tuning.candidates {
    ///     println!("{:?}: {:?}", c.kernel, c.total());
    /// }
    /// gpu.set_matmul_kernel(tuning.kernel);
    /// ```
    pub fn measure_matmul(&self) -> Result<MatmulTuning> {
        let mut candidates = Vec::new();
        for kernel in self.matmul_candidates() {
            // Shares the device but not the kernel choice of this handle.
            let probe = self.detached();
            probe.set_matmul_kernel(kernel);
            let (parity_error, timing) = match parity_error(&probe) {
                Ok(e) if e <= TOLERANCE => (e, Ok(time_products(&probe)?)),
                Ok(e) => (
                    e,
                    Err(format!(
                        "parity error {e:.3e} against the CPU backend exceeds {TOLERANCE:.0e}"
                    )),
                ),
                Err(e) => (f64::INFINITY, Err(format!("failed on this adapter: {e}"))),
            };
            candidates.push(MatmulCandidate {
                kernel,
                parity_error,
                timing,
            });
        }
        let kernel = candidates
            .iter()
            .filter_map(|c| Some((c.total()?, c.kernel)))
            .min_by_key(|&(total, _)| total)
            .map(|(_, kernel)| kernel)
            .ok_or_else(|| {
                let why: Vec<String> = candidates
                    .iter()
                    .filter_map(|c| Some(format!("{:?}: {}", c.kernel, c.timing.as_ref().err()?)))
                    .collect();
                Error::Gpu(format!(
                    "no matmul kernel matches the CPU backend on this adapter ({})",
                    why.join("; ")
                ))
            })?;
        Ok(MatmulTuning { kernel, candidates })
    }

    /// Measures the matmul kernels ([`Gpu::measure_matmul`]), switches this
    /// handle to the fastest correct one and records the choice in the disk
    /// cache ([`MatmulCache::from_env`]), where [`Gpu::new`] finds it in
    /// later processes. A cache that cannot be written is reported on stderr
    /// and otherwise ignored: the next process measures again.
    ///
    /// ```no_run
    /// use wgtrain::Gpu;
    /// let gpu = Gpu::new().unwrap();
    /// let kernel = gpu.autotune_matmul().unwrap();
    /// assert_eq!(gpu.matmul_kernel(), kernel);
    /// ```
    pub fn autotune_matmul(&self) -> Result<MatmulKernel> {
        self.autotune_into(MatmulCache::from_env().as_ref())
    }

    /// The body of [`Gpu::autotune_matmul`], with the cache (if any) given.
    pub(super) fn autotune_into(&self, cache: Option<&MatmulCache>) -> Result<MatmulKernel> {
        let tuning = self.measure_matmul()?;
        self.set_matmul_kernel(tuning.kernel);
        if let Some(cache) = cache {
            if let Err(e) = cache.store(self, &tuning) {
                eprintln!("note: the matmul kernel choice was not cached: {e}");
            }
        }
        Ok(tuning.kernel)
    }

    /// The kernel families that differ on this adapter.
    fn matmul_candidates(&self) -> Vec<MatmulKernel> {
        let mut kernels = vec![MatmulKernel::Registers];
        if self.shares_subgroups() {
            kernels.push(MatmulKernel::RegistersShared);
        }
        kernels.push(MatmulKernel::Workgroup);
        kernels
    }
}

/// Uniform values in [-1, 1), the same for every kernel and the CPU.
pub(crate) fn random(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// `op(A)·op(B)` of random inputs on `b`, with a bias and an activation when
/// `epilogue`, so that the kernels' epilogue is checked as well.
fn product<B: Backend<Scalar = f32>>(
    b: &B,
    (m, n, k): (usize, usize, usize),
    ta: bool,
    tb: bool,
    epilogue: bool,
) -> Result<Vec<f64>> {
    let (ar, ac) = if ta { (k, m) } else { (m, k) };
    let (br, bc) = if tb { (n, k) } else { (k, n) };
    let a = b.upload(ar, ac, &random(1, m * k))?;
    let bb = b.upload(br, bc, &random(2, k * n))?;
    let bias = b.upload(1, n, &random(3, n))?;
    let mut out = b.zeros(m, n)?;
    let spec = MatmulSpec {
        transpose_a: ta,
        transpose_b: tb,
        bias: epilogue.then_some(&bias),
        act: if epilogue {
            Activation::Sigmoid
        } else {
            Activation::Identity
        },
        gate: None,
    };
    b.matmul(&a, &bb, &mut out, spec)?;
    b.download(&out)
}

/// The worst parity error of `gpu`'s current kernel over the check problems.
fn parity_error(gpu: &Gpu) -> Result<f64> {
    let cpu = Cpu::<f32>::new();
    let mut worst = 0.0f64;
    for (i, &shape) in CHECKS.iter().enumerate() {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let epilogue = i % 2 == 1;
            let g = product(gpu, shape, ta, tb, epilogue)?;
            let c = product(&cpu, shape, ta, tb, epilogue)?;
            for (g, c) in g.iter().zip(&c) {
                // NaN compares false, so it is caught explicitly.
                let e = (g - c).abs() / c.abs().max(1.0);
                worst = if e.is_nan() {
                    f64::INFINITY
                } else {
                    worst.max(e)
                };
            }
        }
    }
    Ok(worst)
}

/// The fastest of `REPS` synchronized runs of each product, after one
/// untimed run that builds the pipeline.
fn time_products(gpu: &Gpu) -> Result<Vec<(&'static str, Duration)>> {
    let mut times = Vec::new();
    for &(label, m, n, k, ta, tb) in &PRODUCTS {
        let (ar, ac) = if ta { (k, m) } else { (m, k) };
        let (br, bc) = if tb { (n, k) } else { (k, n) };
        let a = gpu.upload(ar, ac, &random(4, m * k))?;
        let b = gpu.upload(br, bc, &random(5, k * n))?;
        let mut out = gpu.zeros(m, n)?;
        let spec = || MatmulSpec {
            transpose_a: ta,
            transpose_b: tb,
            ..MatmulSpec::default()
        };
        gpu.matmul(&a, &b, &mut out, spec())?;
        gpu.synchronize()?;
        let mut best = Duration::MAX;
        for _ in 0..REPS {
            let start = Instant::now();
            gpu.matmul(&a, &b, &mut out, spec())?;
            gpu.synchronize()?;
            best = best.min(start.elapsed());
        }
        times.push((label, best));
    }
    Ok(times)
}

/// Version of the cache file's layout, bumped when it changes.
const FORMAT: u64 = 1;
/// The cache file's name inside the cache folder.
const FILE: &str = "matmul-kernel.json";

/// Whose measurement a cache entry is: the adapter and driver it was made
/// on, the library version, and a hash of the matmul shader sources, so that
/// a new driver, release or edited kernel is measured afresh.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CacheKey {
    adapter: String,
    driver: String,
    driver_info: String,
    backend: String,
    wgtrain: String,
    shaders: String,
}

impl CacheKey {
    fn of(gpu: &Gpu) -> CacheKey {
        let info = gpu.adapter_info();
        CacheKey {
            adapter: info.name.clone(),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            backend: format!("{:?}", info.backend),
            wgtrain: env!("CARGO_PKG_VERSION").to_string(),
            shaders: shader_hash(),
        }
    }

    const FIELDS: [&'static str; 6] = [
        "adapter",
        "driver",
        "driver_info",
        "backend",
        "wgtrain",
        "shaders",
    ];

    fn values(&self) -> [&str; 6] {
        [
            &self.adapter,
            &self.driver,
            &self.driver_info,
            &self.backend,
            &self.wgtrain,
            &self.shaders,
        ]
    }

    /// Whether `entry` was made for this key; `same_shaders: false` ignores
    /// the shader hash.
    fn matches(&self, entry: &Value, same_shaders: bool) -> bool {
        let n = if same_shaders { 6 } else { 5 };
        Self::FIELDS[..n]
            .iter()
            .zip(&self.values()[..n])
            .all(|(field, value)| entry[*field].as_str() == Some(*value))
    }
}

/// FNV-1a (64-bit) over the sources of every matmul shader and the tile
/// constants the host dispatches with. Written out rather than `std::hash`,
/// whose output may change between Rust releases: the hash is stored on disk.
fn shader_hash() -> String {
    let mut h = FNV_OFFSET;
    for shader in MATMUL_SHADERS {
        h = fnv1a(h, shader.name.as_bytes());
        h = fnv1a(h, shader.source().as_bytes());
    }
    let tiles = [
        MATMUL_TILE,
        TiledTile::Large.tile(),
        TiledTile::Small.tile(),
    ];
    let words = tiles.iter().flat_map(|t| [t.rows, t.cols, t.depth]);
    let plan = [
        LARGE_TILE_MIN_GROUPS,
        SPLIT_K_TARGET_GROUPS,
        MIN_K_CHUNK,
        MAX_K_CHUNK,
        MAX_SPLIT_K,
    ];
    for word in words.chain([MATMUL_SHARE_LANES]).chain(plan) {
        h = fnv1a(h, &word.to_le_bytes());
    }
    format!("fnv1a64:{h:016x}")
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        h ^= byte as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn kernel_name(kernel: MatmulKernel) -> &'static str {
    match kernel {
        MatmulKernel::Registers => "Registers",
        MatmulKernel::RegistersShared => "RegistersShared",
        MatmulKernel::Workgroup => "Workgroup",
    }
}

fn kernel_from_name(name: &str) -> Option<MatmulKernel> {
    [
        MatmulKernel::Registers,
        MatmulKernel::RegistersShared,
        MatmulKernel::Workgroup,
    ]
    .into_iter()
    .find(|&k| kernel_name(k) == name)
}

/// The library's cache folder: `$WGTRAIN_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/wgtrain`, else `$HOME/.cache/wgtrain`; `None` when none
/// of these is set (empty counts as unset, and so does a relative
/// `XDG_CACHE_HOME`, as the XDG specification asks).
pub(crate) fn cache_dir() -> Option<PathBuf> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    var("WGTRAIN_CACHE_DIR").map(PathBuf::from).or_else(|| {
        var("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|d| d.is_absolute())
            .map(|d| d.join("wgtrain"))
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache").join("wgtrain")))
    })
}

/// The on-disk record of which matmul kernel each adapter measured fastest:
/// one small JSON file, `matmul-kernel.json`, in a cache folder.
///
/// ```json
/// {"entries": [{
///   "adapter": "llvmpipe (LLVM 15.0.6, 256 bits)", "backend": "Vulkan",
///   "driver": "llvmpipe", "driver_info": "Mesa 22.3.6 (LLVM 15.0.6)",
///   "kernel": "RegistersShared", "shaders": "fnv1a64:e27ac3b56b145482",
///   "total_ms": {"Registers": 97.1, "RegistersShared": 60.2, "Workgroup": 265.9},
///   "wgtrain": "0.1.0"}],
///  "format": 1}
/// ```
///
/// An entry counts only for the same adapter name, driver, driver info,
/// backend, wgtrain version and matmul shader sources (hashed), so a driver
/// update, a new release or an edited kernel is measured again. The file is
/// replaced atomically (a temporary file, then a rename); a missing,
/// unreadable or corrupt file reads as empty, never as an error.
///
/// ```no_run
/// use wgtrain::gpu::MatmulCache;
/// use wgtrain::Gpu;
/// let gpu = Gpu::new().unwrap();
/// let cache = MatmulCache::new("/tmp/wgtrain-cache");
/// let tuning = gpu.measure_matmul().unwrap();
/// cache.store(&gpu, &tuning).unwrap();
/// assert_eq!(cache.load(&gpu), Some(tuning.kernel));
/// ```
#[derive(Clone, Debug)]
pub struct MatmulCache {
    path: PathBuf,
}

impl MatmulCache {
    /// The cache file in folder `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> MatmulCache {
        MatmulCache {
            path: dir.into().join(FILE),
        }
    }

    /// The cache the library uses: in `$WGTRAIN_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/wgtrain`, else `$HOME/.cache/wgtrain`; `None` when
    /// none of these is set (empty counts as unset, and so does a relative
    /// `XDG_CACHE_HOME`, as the XDG specification asks).
    pub fn from_env() -> Option<MatmulCache> {
        cache_dir().map(MatmulCache::new)
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The kernel recorded for `gpu`'s adapter, driver and this build's
    /// matmul shaders, or `None` (also for a missing or corrupt file).
    pub fn load(&self, gpu: &Gpu) -> Option<MatmulKernel> {
        self.lookup(&CacheKey::of(gpu))
    }

    /// Records `tuning.kernel` (and, for people reading the file, each
    /// candidate's total time) for `gpu`, replacing any entry for the same
    /// adapter and wgtrain version, whatever its shader hash, so that
    /// editing a kernel does not grow the file. Entries for other adapters
    /// are kept; a corrupt file is replaced.
    pub fn store(&self, gpu: &Gpu, tuning: &MatmulTuning) -> Result<()> {
        let totals: serde_json::Map<String, Value> = tuning
            .candidates
            .iter()
            .filter_map(|c| {
                // Tenths of a millisecond: the file is for reading.
                let ms = (c.total()?.as_secs_f64() * 1e4).round() / 10.0;
                Some((kernel_name(c.kernel).to_string(), json!(ms)))
            })
            .collect();
        self.insert(&CacheKey::of(gpu), tuning.kernel, totals)
    }

    fn entries(&self) -> Vec<Value> {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Vec::new();
        };
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(mut doc)) if doc.get("format") == Some(&json!(FORMAT)) => {
                match doc.remove("entries") {
                    Some(Value::Array(entries)) => entries,
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        }
    }

    fn lookup(&self, key: &CacheKey) -> Option<MatmulKernel> {
        self.entries()
            .iter()
            .find(|e| key.matches(e, true))
            .and_then(|e| kernel_from_name(e["kernel"].as_str()?))
    }

    fn insert(
        &self,
        key: &CacheKey,
        kernel: MatmulKernel,
        totals: serde_json::Map<String, Value>,
    ) -> Result<()> {
        let mut entries = self.entries();
        entries.retain(|e| !key.matches(e, false));
        let mut entry: serde_json::Map<String, Value> = CacheKey::FIELDS
            .iter()
            .zip(key.values())
            .map(|(field, value)| (field.to_string(), json!(value)))
            .collect();
        entry.insert("kernel".into(), json!(kernel_name(kernel)));
        entry.insert("total_ms".into(), Value::Object(totals));
        entries.push(Value::Object(entry));
        let doc = json!({ "format": FORMAT, "entries": entries });
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let text = serde_json::to_string_pretty(&doc).expect("a JSON value serializes");
        crate::train::write_atomic(&self.path, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(adapter: &str, shaders: &str) -> CacheKey {
        CacheKey {
            adapter: adapter.into(),
            driver: "driver".into(),
            driver_info: "1.0".into(),
            backend: "Vulkan".into(),
            wgtrain: "0.1.0".into(),
            shaders: shaders.into(),
        }
    }

    fn temp_cache(name: &str) -> MatmulCache {
        let dir =
            std::env::temp_dir().join(format!("wgtrain-autotune-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        MatmulCache::new(dir)
    }

    #[test]
    fn entries_round_trip_and_match_only_their_key() {
        let cache = temp_cache("round-trip");
        let (a, b) = (key("A", "h1"), key("B", "h1"));
        assert_eq!(cache.lookup(&a), None, "no file yet");
        cache
            .insert(&a, MatmulKernel::Workgroup, Default::default())
            .unwrap();
        cache
            .insert(&b, MatmulKernel::Registers, Default::default())
            .unwrap();
        assert_eq!(cache.lookup(&a), Some(MatmulKernel::Workgroup));
        assert_eq!(cache.lookup(&b), Some(MatmulKernel::Registers));
        // Another adapter, driver or shader hash does not use the entry.
        assert_eq!(cache.lookup(&key("C", "h1")), None);
        assert_eq!(cache.lookup(&key("A", "h2")), None);
        let other_driver = CacheKey {
            driver_info: "2.0".into(),
            ..a.clone()
        };
        assert_eq!(cache.lookup(&other_driver), None);
        // A re-measurement after a kernel edit replaces the stale entry.
        cache
            .insert(&key("A", "h2"), MatmulKernel::Registers, Default::default())
            .unwrap();
        assert_eq!(cache.lookup(&a), None);
        assert_eq!(cache.lookup(&key("A", "h2")), Some(MatmulKernel::Registers));
        assert_eq!(cache.entries().len(), 2);
        std::fs::remove_dir_all(cache.path().parent().unwrap()).unwrap();
    }

    #[test]
    fn a_corrupt_file_reads_as_empty_and_is_replaced() {
        let cache = temp_cache("corrupt");
        let k = key("A", "h1");
        std::fs::create_dir_all(cache.path().parent().unwrap()).unwrap();
        for junk in [
            "{\"format\": 1, \"entries\": [{\"adapter\": ",
            "\u{0}\u{1}binary",
            "[]",
            "{\"format\": 99, \"entries\": []}",
            "{\"format\": 1, \"entries\": 7}",
        ] {
            std::fs::write(cache.path(), junk).unwrap();
            assert_eq!(cache.lookup(&k), None, "{junk:?}");
        }
        // An entry naming no known kernel is ignored too.
        let mut entry = json!({"kernel": "Quantum"});
        for (field, value) in CacheKey::FIELDS.iter().zip(k.values()) {
            entry[*field] = json!(value);
        }
        let doc = json!({"format": FORMAT, "entries": [entry]});
        std::fs::write(cache.path(), doc.to_string()).unwrap();
        assert_eq!(cache.lookup(&k), None);
        cache
            .insert(&k, MatmulKernel::RegistersShared, Default::default())
            .unwrap();
        assert_eq!(cache.lookup(&k), Some(MatmulKernel::RegistersShared));
        std::fs::remove_dir_all(cache.path().parent().unwrap()).unwrap();
    }

    #[test]
    fn an_unreadable_path_reads_as_empty() {
        // A folder where the file should be: reading fails, lookup does not.
        let cache = temp_cache("unreadable");
        std::fs::create_dir_all(cache.path()).unwrap();
        assert_eq!(cache.lookup(&key("A", "h1")), None);
        assert!(cache
            .insert(&key("A", "h1"), MatmulKernel::Registers, Default::default())
            .is_err());
        std::fs::remove_dir_all(cache.path().parent().unwrap()).unwrap();
    }

    #[test]
    fn the_shader_hash_is_fnv1a() {
        // Published FNV-1a 64 test vectors: the hash on disk must not drift.
        assert_eq!(fnv1a(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(FNV_OFFSET, b"foobar"), 0x8594_4171_f739_67e8);
        assert!(shader_hash().starts_with("fnv1a64:"));
    }
}
