//! The environment variables of the matmul kernel cache, `WGTRAIN_CACHE_DIR`,
//! `XDG_CACHE_HOME`, `HOME` and `WGTRAIN_AUTOTUNE`, as `Gpu::new` reads them.
//! Environment variables are process-wide, so this file holds one test: no
//! other test of this binary can open a device while they are changed.

mod common;

use common::gpu;
use std::path::PathBuf;
use wgtrain::gpu::{MatmulCache, MatmulTuning};
use wgtrain::{Gpu, MatmulKernel};

fn set(name: &str, value: Option<&str>) {
    match value {
        Some(v) => std::env::set_var(name, v),
        None => std::env::remove_var(name),
    }
}

#[test]
fn gpu_new_reads_the_cache_the_environment_names() {
    // Where the cache is: WGTRAIN_CACHE_DIR, then XDG_CACHE_HOME (if
    // absolute), then HOME. Mesa keeps its shader cache under the last two,
    // so they are restored before a device is opened.
    let saved = ["XDG_CACHE_HOME", "HOME"].map(|name| (name, std::env::var(name).ok()));
    let path = || MatmulCache::from_env().map(|c| c.path().to_path_buf());
    let file = |dir: &str| Some(PathBuf::from(dir).join("matmul-kernel.json"));
    set("WGTRAIN_CACHE_DIR", Some("/c/w"));
    set("XDG_CACHE_HOME", Some("/c/x"));
    set("HOME", Some("/c/h"));
    assert_eq!(path(), file("/c/w"));
    set("WGTRAIN_CACHE_DIR", Some(""));
    assert_eq!(path(), file("/c/x/wgtrain"));
    set("XDG_CACHE_HOME", Some("relative"));
    assert_eq!(path(), file("/c/h/.cache/wgtrain"));
    set("HOME", None);
    assert_eq!(path(), None);
    for (name, value) in &saved {
        set(name, value.as_deref());
    }

    let dir = std::env::temp_dir().join(format!("wgtrain-env-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    set("WGTRAIN_CACHE_DIR", Some(dir.to_str().unwrap()));
    set("WGTRAIN_AUTOTUNE", None);
    let cache = MatmulCache::from_env().unwrap();
    assert_eq!(cache.path(), dir.join("matmul-kernel.json"));

    // No entry and no WGTRAIN_AUTOTUNE: the default, nothing measured.
    let Some(g) = gpu() else { return };
    let default = g.matmul_kernel();
    assert!(
        !cache.path().exists(),
        "Gpu::new measured without being asked"
    );

    // WGTRAIN_AUTOTUNE=1 and no entry: measured and cached.
    set("WGTRAIN_AUTOTUNE", Some("1"));
    let g = Gpu::new().unwrap();
    let tuned = cache.load(&g).expect("Gpu::new cached its measurement");
    assert_eq!(g.matmul_kernel(), tuned);

    // An entry is used as it stands, even with WGTRAIN_AUTOTUNE=1. The
    // kernel stored is the one neither the default nor the measurement
    // picked, so that using it cannot be a coincidence.
    let other = [
        MatmulKernel::Registers,
        MatmulKernel::RegistersShared,
        MatmulKernel::Workgroup,
    ]
    .into_iter()
    .find(|&k| k != default && k != tuned)
    .unwrap();
    let tuning = MatmulTuning {
        kernel: other,
        candidates: Vec::new(),
    };
    cache.store(&g, &tuning).unwrap();
    assert_eq!(Gpu::new().unwrap().matmul_kernel(), other);

    // A corrupt file is ignored: the default again, and no error.
    set("WGTRAIN_AUTOTUNE", None);
    std::fs::write(cache.path(), "{\"format\": 1, \"entries\": [{").unwrap();
    assert_eq!(Gpu::new().unwrap().matmul_kernel(), default);

    // autotune_matmul writes where the environment says.
    std::fs::remove_file(cache.path()).unwrap();
    let kernel = g.autotune_matmul().unwrap();
    assert_eq!(cache.load(&g), Some(kernel));
    std::fs::remove_dir_all(&dir).unwrap();
}
