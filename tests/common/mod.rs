//! Helpers shared by the integration tests: the ones the op folders' unit
//! tests use too are in src/ops/testing.rs, included here, and the
//! per-backend test macro.
#![allow(dead_code)]

#[path = "../../src/ops/testing.rs"]
mod testing;
#[allow(unused_imports)] // not every test binary uses them
pub(crate) use testing::*;

/// The CPU backend in f32, for [`backend_tests!`].
pub fn cpu_f32() -> Option<wgtrain::Cpu<f32>> {
    Some(wgtrain::Cpu::new())
}

/// The CPU backend in f64, for [`backend_tests!`].
pub fn cpu_f64() -> Option<wgtrain::Cpu<f64>> {
    Some(wgtrain::Cpu::new())
}

/// One `#[test]` per backend for a generic check
/// `fn check<B: Backend>(b: &B, label: &str)`, where `label` names the test
/// and backend (for temporary folders and messages). The GPU test follows
/// [`gpu`]'s rule: it fails under `CI=true` without an adapter.
///
/// ```ignore
/// backend_tests!(round_trip: check_round_trip on cpu_f32, gpu);
/// // makes round_trip::cpu_f32 and round_trip::gpu
/// ```
#[macro_export]
macro_rules! backend_tests {
    ($name:ident: $check:ident on $($backend:ident),+ $(,)?) => {
        mod $name {
            $(
                #[test]
                fn $backend() {
                    if let Some(b) = super::common::$backend() {
                        super::$check(&b, concat!(stringify!($name), "-", stringify!($backend)));
                    }
                }
            )+
        }
    };
}

/// The numbers of a JSON array of test vectors (PyTorch's, under `tests/data/`).
pub fn json_floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .expect("a JSON array")
        .iter()
        .map(|x| x.as_f64().expect("a number"))
        .collect()
}

/// A fresh empty folder under the system's temporary folder, named after
/// the test and the process (so tests can run in parallel), and removed
/// with everything in it when dropped, so that runs leave nothing behind.
pub struct Scratch(std::path::PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("wgtrain-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for Scratch {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // A folder a test made unwritable on purpose may refuse; that is
        // the test's own leftover, and must not turn a pass into a panic.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
