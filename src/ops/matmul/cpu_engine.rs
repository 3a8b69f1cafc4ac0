//! Which library runs the CPU backend's matrix products, chosen per
//! machine: by a rule from the CPU's instruction set, or, with
//! `WGTRAIN_AUTOTUNE=1` (as for the GPU's kernels), by measuring both once
//! on the training step's products after checking each against the
//! reference loop, and remembering the choice on disk.
//!
//! The choice is made once per process and never changes inside it, so a
//! product always sums in the same order and runs stay bit-identical.

use super::reference_matmul;
use crate::gpu::random;
use crate::{Backend, Cpu, Error, MatmulSpec, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A library that runs the CPU backend's products.
///
/// ```
/// use wgtrain::backend::{cpu_gemm, CpuGemm};
/// // Chosen once per process: the same answer every time.
/// assert_eq!(cpu_gemm(), cpu_gemm());
/// assert_eq!(CpuGemm::from_name(CpuGemm::Gemm.name()), Some(CpuGemm::Gemm));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CpuGemm {
    /// `matrixmultiply`: AVX2 and FMA kernels (no AVX-512), threads over
    /// the output's blocks.
    MatrixMultiply,
    /// The `gemm` crate: AVX-512 kernels where the CPU has them (its AVX2
    /// ones elsewhere), threads over the output and the depth; on an
    /// AVX-512 CPU, products with a side of at most 16 (a 10-class output
    /// layer's) run in wgtrain's own kernel instead (`narrow.rs`), and on
    /// an AVX2 CPU without AVX-512 the f32 products with an output of
    /// 16 × 16 to 2¹⁹ elements run in wgtrain's packed 6 × 16 kernel
    /// (`packed.rs`).
    Gemm,
    /// The system's OpenBLAS (feature `openblas`; Debian: libopenblas-dev),
    /// one single-threaded call per piece of the output. Chosen only by
    /// name or by measurement, never by the rule: an OpenBLAS older than
    /// the CPU falls back to slow kernels (`Prescott`, SSE3, in Debian's
    /// 0.3.21 on an Emerald Rapids Xeon, unless `OPENBLAS_CORETYPE=SkylakeX`).
    #[cfg(feature = "openblas")]
    OpenBlas,
}

impl CpuGemm {
    /// Every library this build has, in the order the tuner measures them.
    pub const ALL: &'static [CpuGemm] = &[
        CpuGemm::MatrixMultiply,
        CpuGemm::Gemm,
        #[cfg(feature = "openblas")]
        CpuGemm::OpenBlas,
    ];

    /// The name used in `WGTRAIN_CPU_GEMM` and in the cache file.
    pub fn name(self) -> &'static str {
        match self {
            CpuGemm::MatrixMultiply => "matrixmultiply",
            CpuGemm::Gemm => "gemm",
            #[cfg(feature = "openblas")]
            CpuGemm::OpenBlas => "openblas",
        }
    }

    /// Its name, and for OpenBLAS the kernels it picked for this CPU
    /// (`openblas (SkylakeX kernels)`); for `gemm` on a CPU where
    /// wgtrain's packed kernel runs, that it does
    /// (`gemm, f32 by wgtrain's AVX2 kernel`).
    pub fn describe(self) -> String {
        if self == CpuGemm::Gemm && super::packed::on_this_cpu() {
            return format!("{}, f32 by wgtrain's AVX2 kernel", self.name());
        }
        #[cfg(feature = "openblas")]
        if self == CpuGemm::OpenBlas {
            let core = super::gemm::openblas::core_name();
            return format!("{} ({core} kernels)", self.name());
        }
        self.name().to_string()
    }

    /// The library called `name`.
    pub fn from_name(name: &str) -> Option<CpuGemm> {
        CpuGemm::ALL.iter().copied().find(|g| g.name() == name)
    }

    /// The rule, when nothing was measured: `gemm` on an x86-64 CPU with
    /// AVX-512 or with AVX2 and FMA, matrixmultiply elsewhere. Measured on
    /// two machines (PERFORMANCE.md): on an Intel Xeon with AVX-512 the
    /// `gemm` crate's kernels beat matrixmultiply's on 8 of 10 of the
    /// training step's products, by 1.2–2.2×; on an AMD EPYC (Zen 3, AVX2
    /// and FMA, no AVX-512) its AVX2 kernels took 5.7–6.2 ms on the
    /// tuner's products against matrixmultiply's 7.0–8.2 ms, and the peer
    /// network's step ran 2.2× faster. No other CPU was measured.
    pub fn by_instruction_set() -> CpuGemm {
        if has_avx512() || has_avx2_fma() {
            CpuGemm::Gemm
        } else {
            CpuGemm::MatrixMultiply
        }
    }
}

/// Whether this CPU has AVX-512 (F).
pub(crate) fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has AVX2 and FMA.
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The library this process's CPU products use: `WGTRAIN_CPU_GEMM`
/// (`gemm`, `matrixmultiply`, or with the feature `openblas`) if set; else, with `WGTRAIN_AUTOTUNE=1`,
/// the cached measurement for this CPU, measured now if there is none;
/// else [`CpuGemm::by_instruction_set`]. Decided at the first call.
pub fn cpu_gemm() -> CpuGemm {
    static CHOICE: OnceLock<CpuGemm> = OnceLock::new();
    *CHOICE.get_or_init(|| {
        if let Some(g) = std::env::var("WGTRAIN_CPU_GEMM")
            .ok()
            .and_then(|v| CpuGemm::from_name(&v))
        {
            return g;
        }
        if std::env::var("WGTRAIN_AUTOTUNE").is_ok_and(|v| v == "1") {
            let cache = CpuGemmCache::from_env();
            if let Some(g) = cache.as_ref().and_then(|c| c.load()) {
                return g;
            }
            if let Ok(tuning) = measure_cpu_gemm() {
                if let Some(c) = &cache {
                    // A cache that cannot be written costs a measurement
                    // next time, nothing else.
                    let _ = c.store(&tuning);
                }
                return tuning.choice;
            }
        }
        CpuGemm::by_instruction_set()
    })
}

/// What [`measure_cpu_gemm`] found.
#[derive(Clone, Debug)]
pub struct CpuGemmTuning {
    /// The faster of the libraries that passed the parity check.
    pub choice: CpuGemm,
    /// Each library's worst parity error against the reference loop, and
    /// the sum of its fastest runs of the timed products (`None` when it
    /// failed the check).
    pub candidates: Vec<(CpuGemm, f64, Option<Duration>)>,
}

/// The products timed, `(m, n, k, transpose_a, transpose_b)`: the three of
/// a 784-512 dense layer at batch 256 (forward `X·Wᵀ`, weight gradient
/// `δᵀ·X`, input gradient `δ·W`), the forward one at batch 64, and a
/// square one.
const PRODUCTS: [(usize, usize, usize, bool, bool); 5] = [
    (256, 512, 784, false, true),
    (512, 784, 256, true, false),
    (256, 784, 512, false, false),
    (64, 512, 784, false, true),
    (512, 512, 512, false, false),
];
/// Timed runs of each product; the fastest counts (on a shared machine the
/// slower runs measure the other load, which varies by ±20% from one
/// second to the next here).
const REPS: usize = 20;
/// Largest parity error accepted against the reference loop, in f32 at
/// k = 257: about k·2⁻²⁴ of the dot products' magnitude, with room.
const TOLERANCE: f64 = 1e-4;

/// Checks every library against [`reference_matmul`] on a product that
/// fills no kernel tile (33×65, k = 257, all four transpose forms), times
/// the ones that pass on the step's products, and picks the faster. Takes
/// about a quarter of a second on a 2-core machine.
///
/// ```no_run
/// let tuning = wgtrain::backend::measure_cpu_gemm().unwrap();
/// println!("{:?}", tuning.choice);
/// ```
pub fn measure_cpu_gemm() -> Result<CpuGemmTuning> {
    let cpu = Cpu::<f32>::new();
    let checked: Vec<(CpuGemm, f64)> = CpuGemm::ALL
        .iter()
        .copied()
        .map(|g| Ok((g, parity_error(&cpu, g)?)))
        .collect::<Result<_>>()?;
    let passed: Vec<CpuGemm> = checked
        .iter()
        .filter(|&&(_, err)| err <= TOLERANCE)
        .map(|&(g, _)| g)
        .collect();
    let times = time_products(&passed);
    let candidates: Vec<(CpuGemm, f64, Option<Duration>)> = checked
        .iter()
        .map(|&(g, err)| {
            (
                g,
                err,
                passed.iter().position(|&p| p == g).map(|i| times[i]),
            )
        })
        .collect();
    let choice = candidates
        .iter()
        .filter_map(|&(g, _, t)| Some((g, t?)))
        .min_by_key(|&(_, t)| t)
        .map(|(g, _)| g)
        .ok_or_else(|| Error::Model("no CPU matmul library passed its parity check".into()))?;
    Ok(CpuGemmTuning { choice, candidates })
}

fn parity_error(cpu: &Cpu<f32>, engine: CpuGemm) -> Result<f64> {
    let (m, n, k) = (33, 65, 257);
    let mut worst = 0.0f64;
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let (ar, ac) = if ta { (k, m) } else { (m, k) };
        let (br, bc) = if tb { (n, k) } else { (k, n) };
        let a = cpu.upload(ar, ac, &random(1, ar * ac))?;
        let b = cpu.upload(br, bc, &random(2, br * bc))?;
        let spec = || MatmulSpec {
            transpose_a: ta,
            transpose_b: tb,
            ..Default::default()
        };
        let mut want = cpu.zeros(m, n)?;
        reference_matmul(&a, &b, &mut want, spec())?;
        let mut got = vec![0.0f32; m * n];
        super::gemm::gemm_with(
            engine,
            (m, n, k),
            (a.data(), ta),
            (b.data(), tb),
            &mut got,
            None,
        );
        for (g, w) in got.iter().zip(want.data()) {
            let e = if g.is_finite() {
                (g - w).abs() as f64 / (w.abs() as f64).max(1.0)
            } else {
                f64::INFINITY
            };
            worst = worst.max(e);
        }
    }
    Ok(worst)
}

/// For each library, the sum over [`PRODUCTS`] of the fastest of
/// [`REPS`] runs. The libraries take turns run by run, so that a slow
/// spell of a shared machine falls on both rather than on one.
fn time_products(engines: &[CpuGemm]) -> Vec<Duration> {
    let mut operands: Vec<_> = PRODUCTS
        .iter()
        .map(|&(m, n, k, _, _)| (random(3, m * k), random(4, k * n), vec![0.0f32; m * n]))
        .collect();
    let mut best = vec![[Duration::MAX; PRODUCTS.len()]; engines.len()];
    // The first round warms the caches and the thread pool, untimed.
    for round in 0..=REPS {
        for (e, &engine) in engines.iter().enumerate() {
            for (i, (&(m, n, k, ta, tb), (a, b, c))) in
                PRODUCTS.iter().zip(operands.iter_mut()).enumerate()
            {
                let t = Instant::now();
                super::gemm::gemm_with(engine, (m, n, k), (a, ta), (b, tb), c, None);
                if round > 0 {
                    best[e][i] = best[e][i].min(t.elapsed());
                }
            }
        }
    }
    best.iter().map(|times| times.iter().sum()).collect()
}

/// Where the choice is remembered: `cpu-matmul.json` in the folder of the
/// GPU's [`MatmulCache`](crate::gpu::MatmulCache), one entry per CPU
/// model, instruction set, thread count and wgtrain version.
///
/// ```no_run
/// use wgtrain::backend::{measure_cpu_gemm, CpuGemmCache};
/// let cache = CpuGemmCache::new("/tmp/wgtrain-cache");
/// let tuning = measure_cpu_gemm().unwrap();
/// cache.store(&tuning).unwrap();
/// assert_eq!(cache.load(), Some(tuning.choice));
/// ```
#[derive(Clone, Debug)]
pub struct CpuGemmCache {
    path: PathBuf,
}

impl CpuGemmCache {
    /// The cache file in folder `dir` (created when first written).
    pub fn new(dir: impl Into<PathBuf>) -> CpuGemmCache {
        CpuGemmCache {
            path: dir.into().join("cpu-matmul.json"),
        }
    }

    /// The cache in the library's cache folder, if one is set.
    pub fn from_env() -> Option<CpuGemmCache> {
        crate::gpu::cache_dir().map(CpuGemmCache::new)
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The library recorded for this machine, or `None` (also for a
    /// missing or corrupt file).
    pub fn load(&self) -> Option<CpuGemm> {
        let key = machine_key();
        self.entries()
            .iter()
            .find(|e| e.get("machine") == Some(&key))
            .and_then(|e| CpuGemm::from_name(e.get("choice")?.as_str()?))
    }

    /// Records `tuning` for this machine, replacing its earlier entry and
    /// keeping the others; written whole or not at all.
    pub fn store(&self, tuning: &CpuGemmTuning) -> Result<()> {
        let key = machine_key();
        let mut entries = self.entries();
        entries.retain(|e| e.get("machine") != Some(&key));
        let times: serde_json::Map<String, Value> = tuning
            .candidates
            .iter()
            .map(|&(g, err, t)| {
                let ms = t.map(|t| (t.as_secs_f64() * 1e4).round() / 10.0);
                (
                    g.name().to_string(),
                    json!({ "parity_error": err, "total_ms": ms }),
                )
            })
            .collect();
        entries.push(json!({ "machine": key, "choice": tuning.choice.name(), "measured": times }));
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let text = serde_json::to_string_pretty(&json!({ "entries": entries }))
            .expect("a JSON value serializes");
        crate::train::write_atomic(&self.path, text.as_bytes())
    }

    fn entries(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v.get("entries")?.as_array().cloned())
            .unwrap_or_default()
    }
}

/// Whose measurement an entry is: the CPU's model name, whether it has
/// AVX-512, the pool's thread count and the library version.
fn machine_key() -> Value {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    json!({
        "cpu": model,
        "avx512": has_avx512(),
        "threads": rayon::current_num_threads(),
        "wgtrain": env!("CARGO_PKG_VERSION"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_libraries_pass_the_parity_check_and_one_is_chosen() {
        let tuning = measure_cpu_gemm().unwrap();
        for &(g, err, time) in &tuning.candidates {
            assert!(err <= TOLERANCE, "{g:?}: {err:e}");
            assert!(time.is_some_and(|t| t > Duration::ZERO), "{g:?} not timed");
        }
        let fastest = tuning.candidates.iter().min_by_key(|c| c.2).map(|c| c.0);
        assert_eq!(Some(tuning.choice), fastest);
    }

    #[test]
    fn the_cache_round_trips_and_survives_corruption() {
        let dir = std::env::temp_dir().join(format!("wgtrain-cpu-gemm-{}", std::process::id()));
        let cache = CpuGemmCache::new(&dir);
        assert_eq!(cache.load(), None);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(cache.path(), "{ not json").unwrap();
        assert_eq!(cache.load(), None);
        for &choice in CpuGemm::ALL {
            let tuning = CpuGemmTuning {
                choice,
                candidates: vec![(choice, 0.0, Some(Duration::from_millis(1)))],
            };
            cache.store(&tuning).unwrap();
            assert_eq!(cache.load(), Some(choice));
        }
        // One entry per machine: the second store replaced the first.
        assert_eq!(cache.entries().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
