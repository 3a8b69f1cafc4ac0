//! The matmul tuner and its disk cache, through explicit cache folders so
//! that no test depends on (or writes to) the user's cache or the process
//! environment; `tests/autotune_env.rs` covers the environment variables.

mod common;

use common::{assert_parity, gpu, random};
use serde_json::{json, Value};
use std::path::PathBuf;
use wgtrain::gpu::{MatmulCache, MatmulTuning};
use wgtrain::{Activation, Backend, Cpu, MatmulKernel, MatmulSpec};

/// An empty folder of this test's own under the system temp folder.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgtrain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A tuning result naming `kernel`, as if measured, for cache tests that need
/// no measurement.
fn chosen(kernel: MatmulKernel) -> MatmulTuning {
    MatmulTuning {
        kernel,
        candidates: Vec::new(),
    }
}

#[test]
fn the_tuner_picks_the_fastest_kernel_that_matches_the_cpu() {
    let Some(g) = gpu() else { return };
    let before = g.matmul_kernel();
    let tuning = g.measure_matmul().unwrap();
    println!("{}", g.describe());
    for c in &tuning.candidates {
        println!(
            "{:?}: parity {:.2e}, total {:?}, {:?}",
            c.kernel,
            c.parity_error,
            c.total(),
            c.timing
        );
    }
    println!("chosen: {:?}", tuning.kernel);
    assert_eq!(g.matmul_kernel(), before, "measuring changes nothing");
    let winner = tuning
        .candidates
        .iter()
        .find(|c| c.kernel == tuning.kernel)
        .expect("the winner is a candidate");
    let fastest = tuning.candidates.iter().filter_map(|c| c.total()).min();
    assert_eq!(winner.total(), fastest);
    assert!(winner.parity_error <= 1e-4);
    for c in &tuning.candidates {
        assert_eq!(c.timing.is_ok(), c.parity_error <= 1e-4, "{c:?}");
    }

    // The winner on shapes and an epilogue the tuner's check did not use.
    g.set_matmul_kernel(tuning.kernel);
    let cpu = Cpu::<f32>::new();
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        for (m, n, k) in [(65, 7, 1000), (257, 132, 36)] {
            let (a, bm, bias) = (random(20, m * k), random(21, k * n), random(22, n));
            let shapes = ((m, n, k), ta, tb);
            let gv = product(&g, shapes, &a, &bm, &bias);
            let cv = product(&cpu, shapes, &a, &bm, &bias);
            assert_parity(
                &format!("tuned {:?} ta={ta} tb={tb} {m}x{k}·{k}x{n}", tuning.kernel),
                &gv,
                &cv,
                1e-4,
            );
        }
    }

    // What is stored is what was chosen, with every accepted total.
    let cache = MatmulCache::new(temp_dir("tuned"));
    cache.store(&g, &tuning).unwrap();
    assert_eq!(cache.load(&g), Some(tuning.kernel));
    let text = std::fs::read_to_string(cache.path()).unwrap();
    println!("{}:\n{text}", cache.path().display());
    let doc: Value = serde_json::from_str(&text).unwrap();
    let totals = doc["entries"][0]["total_ms"].as_object().unwrap();
    let accepted = tuning.candidates.iter().filter(|c| c.timing.is_ok());
    assert_eq!(totals.len(), accepted.count());
    std::fs::remove_dir_all(cache.path().parent().unwrap()).unwrap();
}

/// `op(A)·op(B) + bias` through tanh, from host data.
fn product<B: Backend<Scalar = f32>>(
    b: &B,
    ((m, n, k), ta, tb): ((usize, usize, usize), bool, bool),
    a: &[f32],
    bm: &[f32],
    bias: &[f32],
) -> Vec<f64> {
    let (ar, ac) = if ta { (k, m) } else { (m, k) };
    let (br, bc) = if tb { (n, k) } else { (k, n) };
    let a = b.upload(ar, ac, a).unwrap();
    let bm = b.upload(br, bc, bm).unwrap();
    let bias = b.upload(1, n, bias).unwrap();
    let mut out = b.zeros(m, n).unwrap();
    let spec = MatmulSpec {
        transpose_a: ta,
        transpose_b: tb,
        bias: Some(&bias),
        act: Activation::Tanh,
        gate: None,
    };
    b.matmul(&a, &bm, &mut out, spec).unwrap();
    b.download(&out).unwrap()
}

#[test]
fn the_cache_round_trips_for_this_adapter_only() {
    let Some(g) = gpu() else { return };
    let cache = MatmulCache::new(temp_dir("round-trip"));
    assert_eq!(cache.load(&g), None, "no file yet");
    for kernel in [MatmulKernel::Workgroup, MatmulKernel::Registers] {
        cache.store(&g, &chosen(kernel)).unwrap();
        assert_eq!(cache.load(&g), Some(kernel));
    }
    let text = std::fs::read_to_string(cache.path()).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let entries = doc["entries"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        1,
        "a second store replaces the entry: {text}"
    );
    assert_eq!(entries[0]["adapter"], json!(g.adapter_info().name));
    assert_eq!(entries[0]["kernel"], json!("Registers"));

    // The same entry, made on another adapter, driver, release or with other
    // matmul shaders, is not used.
    for (field, value) in [
        ("adapter", "Some Other GPU"),
        ("driver", "other"),
        ("driver_info", "other 1.0"),
        ("backend", "Metal"),
        ("wgtrain", "0.0.0"),
        ("shaders", "fnv1a64:0000000000000000"),
    ] {
        let mut other = doc.clone();
        other["entries"][0][field] = json!(value);
        std::fs::write(cache.path(), other.to_string()).unwrap();
        assert_eq!(cache.load(&g), None, "an entry with another {field}");
    }
    std::fs::remove_dir_all(cache.path().parent().unwrap()).unwrap();
}

#[test]
fn a_corrupt_cache_file_is_ignored_and_replaced() {
    let Some(g) = gpu() else { return };
    let cache = MatmulCache::new(temp_dir("corrupt"));
    cache.store(&g, &chosen(MatmulKernel::Workgroup)).unwrap();
    let good = std::fs::read_to_string(cache.path()).unwrap();
    for junk in [&good[..good.len() / 2], "", "not json", "{\"format\": 1}"] {
        std::fs::write(cache.path(), junk).unwrap();
        assert_eq!(cache.load(&g), None, "{junk:?}");
    }
    cache.store(&g, &chosen(MatmulKernel::Registers)).unwrap();
    assert_eq!(cache.load(&g), Some(MatmulKernel::Registers));
    std::fs::remove_dir_all(cache.path().parent().unwrap()).unwrap();
}
