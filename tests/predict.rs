//! Inference: `predict_proba` is the softmax of the evaluation-mode outputs
//! on every backend, whatever the batch; `predict` is its argmax; bad input
//! is a typed error.

mod common;

use common::random;
use wgtrain::{Backend, Cpu, Error, Init, Mode, Sequential};

fn spec() -> Sequential {
    Sequential::new(9)
        .dense(13, Init::HeNormal)
        .batch_norm()
        .relu()
        .dropout(0.3)
        .dense(4, Init::XavierUniform)
}

/// Softmax in f64 of the f64 CPU backend's outputs, one batch for all rows:
/// the reference every backend's probabilities are held against.
fn reference(features: &[f32]) -> Vec<f64> {
    let cpu = Cpu::<f64>::new();
    let mut model = spec().build(&cpu, 5).unwrap();
    let x = cpu.upload(features.len() / 9, 9, features).unwrap();
    let y = cpu
        .download(model.forward(&x, Mode::Eval).unwrap())
        .unwrap();
    y.chunks(4)
        .flat_map(|row| {
            let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = row.iter().map(|z| (z - max).exp()).sum();
            row.iter()
                .map(move |z| (z - max).exp() / sum)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// At 1, 7, 33 and 257 samples, in batches of 32 (so a last partial batch,
/// or one batch smaller than the batch size): probabilities within 1e-6 of
/// the f64 reference (f32 outputs are good to about 1e-7 of their size,
/// and softmax does not amplify that), rows summing to 1, and classes that
/// are the probabilities' argmax. Dropout is off and batch norm uses its
/// running statistics, so the batch does not change any row.
fn probabilities_match_the_reference<B: Backend>(b: &B, label: &str) {
    let mut model = spec().build(b, 5).unwrap();
    for n in [1, 7, 33, 257] {
        let features = random(n as u64, n * 9);
        let p = model.predict_proba(&features, 32).unwrap();
        let r = reference(&features);
        assert_eq!(p.len(), n * 4, "{label}");
        let err = p
            .iter()
            .zip(&r)
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0.0, f64::max);
        assert!(
            err < 1e-6,
            "{label}, {n} samples: max |p − p_ref| = {err:e}"
        );
        for row in p.chunks(4) {
            assert!((row.iter().map(|&v| f64::from(v)).sum::<f64>() - 1.0).abs() < 1e-6);
        }
        let classes = model.predict(&features, 32).unwrap();
        let argmax: Vec<u32> = r
            .chunks(4)
            .map(|row| (0..4).fold(0, |best, k| if row[k] > row[best] { k } else { best }) as u32)
            .collect();
        assert_eq!(classes, argmax, "{label}, {n} samples");
        // One batch for everything gives the same answer.
        assert_eq!(model.predict(&features, n).unwrap(), classes, "{label}");
    }
}

backend_tests!(predict: probabilities_match_the_reference on cpu_f32, cpu_f64, gpu);

#[test]
fn bad_prediction_input_is_a_typed_error() {
    let cpu = Cpu::<f32>::new();
    let mut model = spec().build(&cpu, 5).unwrap();
    let e = model.predict(&[0.0; 10], 8).unwrap_err();
    assert!(
        matches!(&e, Error::Shape { detail, .. } if detail.contains("input width")),
        "{e}"
    );
    let e = model.predict_proba(&[0.0; 9], 0).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidParameter {
                name: "prediction batch",
                ..
            }
        ),
        "{e}"
    );
    // A model whose weights went NaN has no class to give.
    model.set_parameter("4.bias", &[f64::NAN; 4]).unwrap();
    let e = model.predict(&[0.0; 9], 8).unwrap_err();
    assert!(
        matches!(&e, Error::NonFinite { what, .. } if what.contains("output")),
        "{e}"
    );
    // No samples, no predictions.
    assert!(model.predict(&[], 8).unwrap().is_empty());
}

/// Every kind of layer survives `describe` → `from_description`, and the
/// rebuilt stack takes the same state dict (same names and shapes).
#[test]
fn an_architecture_description_rebuilds_the_same_stack() {
    use wgtrain::{checkpoint, Activation};
    let spec = Sequential::new(6)
        .dense(8, Init::HeNormal)
        .batch_norm_with(0.2, 1e-3)
        .act(Activation::LeakyRelu { slope: 0.125 })
        .residual(|s| {
            s.dense(8, Init::HeNormal)
                .act(Activation::TanhPlusLinear { beta: 0.5 })
        })
        .dropout(0.25)
        .act(Activation::Silu)
        .dense(3, Init::XavierUniform);
    let text = spec.describe().to_string();
    let again = Sequential::from_description(&serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(again.describe(), spec.describe());
    let cpu = Cpu::<f32>::new();
    let mut a = spec.build(&cpu, 1).unwrap();
    let mut b = again.build(&cpu, 2).unwrap();
    let names = |t: Vec<checkpoint::HostTensor>| {
        t.into_iter().map(|t| (t.name, t.shape)).collect::<Vec<_>>()
    };
    assert_eq!(
        names(checkpoint::state_dict(&mut a).unwrap()),
        names(checkpoint::state_dict(&mut b).unwrap())
    );
    // What it cannot read is named.
    for bad in [
        serde_json::json!({"layers": []}),
        serde_json::json!({"input": [6], "layers": [{"conv": {}}]}),
        serde_json::json!({"input": [6], "layers": [{"activation": "swish"}]}),
        serde_json::json!({"input": [6], "layers": [{"dense": {"outputs": 0}}]}),
    ] {
        let e = Sequential::from_description(&bad).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Format { .. } | Error::Model(_) | Error::Shape { .. }
            ),
            "{bad}: {e}"
        );
    }
}
