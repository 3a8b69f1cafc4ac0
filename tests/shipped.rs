//! A shipped model: the weights, the architecture and the preprocessing in
//! one file, rebuilt on any backend to the same predictions from raw input.

mod common;

use common::{random, random_labels};
use std::collections::HashMap;
use wgtrain::checkpoint::{self, HostData, HostTensor};
use wgtrain::data::{Dataset, Preprocessor};
use wgtrain::{shipped, Backend, Cpu, Error, Init, Sequential};

fn raw_data() -> Dataset {
    // Features on different scales, so every preprocessing changes them.
    let n = 40;
    let x: Vec<f32> = random(3, n * 5)
        .iter()
        .enumerate()
        .map(|(i, v)| v * (1 + i % 5) as f32 + (i % 5) as f32)
        .collect();
    Dataset::classification(x, 5, random_labels(4, n, 3), 3).unwrap()
}

fn spec() -> Sequential {
    Sequential::new(5)
        .dense(7, Init::HeNormal)
        .batch_norm()
        .relu()
        .residual(|s| s.dense(7, Init::HeNormal).relu())
        .dropout(0.2)
        .dense(3, Init::XavierUniform)
}

fn path(label: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "wgtrain-shipped-{label}-{}.safetensors",
        std::process::id()
    ))
}

/// Saved from the f32 CPU backend with each preprocessing (and none),
/// loaded on `b`: the same transform to the last bit (f64 tensors), the
/// metadata the caller added, and the same classes from raw input as the
/// original model gives on preprocessed input.
fn round_trip_gives_the_same_predictions<B: Backend>(b: &B, label: &str) {
    let raw = raw_data();
    let kinds = [
        None,
        Some(Preprocessor::Center),
        Some(Preprocessor::Standardize),
        Some(Preprocessor::GlobalStandardize),
        Some(Preprocessor::PcaWhiten {
            epsilon: Preprocessor::WHITEN_EPSILON,
        }),
    ];
    for kind in kinds {
        let transform = kind.map(|k| k.fit(&raw).unwrap());
        let mut prepared = raw.clone();
        if let Some(t) = &transform {
            t.apply(&mut prepared).unwrap();
        }
        let cpu = Cpu::<f32>::new();
        let mut model = spec().build(&cpu, 9).unwrap();
        let expected = model.predict(prepared.features(), 16).unwrap();
        let file = path(label);
        let extra = HashMap::from([("wgtrain.test_accuracy".to_string(), "0.5".to_string())]);
        shipped::save(&file, &mut model, transform.as_ref(), extra).unwrap();
        let mut loaded = shipped::load(&file, b).unwrap();
        assert_eq!(loaded.preprocess, transform, "{label} {kind:?}");
        assert_eq!(loaded.metadata["wgtrain.test_accuracy"], "0.5");
        assert_eq!(loaded.model.spec().describe(), spec().describe());
        assert_eq!(
            loaded.predict(raw.features(), 16).unwrap(),
            expected,
            "{label} {kind:?}"
        );
        let p = loaded.predict_proba(raw.features(), 16).unwrap();
        assert_eq!(p.len(), raw.len() * 3);
        let _ = std::fs::remove_file(&file);
    }
}

backend_tests!(round_trip: round_trip_gives_the_same_predictions on cpu_f32, cpu_f64, gpu);

#[test]
fn what_is_not_a_shipped_model_is_named() {
    let cpu = Cpu::<f32>::new();
    let mut model = spec().build(&cpu, 9).unwrap();
    // A plain checkpoint has no architecture.
    let plain = path("plain");
    checkpoint::save_model(&plain, &mut model).unwrap();
    let e = shipped::load(&plain, &cpu).err().unwrap();
    assert!(
        matches!(&e, Error::Format { detail, .. } if detail.contains("plain checkpoint")),
        "{e}"
    );
    // Statistics that do not fit the model's input.
    let mut tensors = checkpoint::state_dict(&mut model).unwrap();
    tensors.push(HostTensor {
        name: "preprocess.mean".into(),
        shape: vec![4],
        data: HostData::F64(vec![0.0; 4]),
    });
    let metadata = HashMap::from([
        (
            shipped::ARCHITECTURE_KEY.to_string(),
            spec().describe().to_string(),
        ),
        (shipped::PREPROCESS_KEY.to_string(), "center".to_string()),
    ]);
    let short = path("short");
    checkpoint::write_atomic(&short, &tensors, metadata).unwrap();
    let e = shipped::load(&short, &cpu).err().unwrap();
    assert!(
        matches!(&e, Error::Format { detail, .. } if detail.contains("preprocess.mean holds 4 values, the model takes 5")),
        "{e}"
    );
    let _ = std::fs::remove_file(&plain);
    let _ = std::fs::remove_file(&short);
}
