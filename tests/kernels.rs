//! What every kernel shares: the front's typed errors on bad input, one
//! submission for many dispatches, and timestamp profiling. Each op's own
//! parity tests sit in its folder (`src/ops/<op>/tests.rs`).

mod common;

use common::{gpu, random};
use wgtrain::{Activation, Backend, Error, Loss, MatmulSpec, Target};

#[test]
fn one_submission_for_many_dispatches() {
    let Some(g) = gpu() else { return };
    let x = g.upload(4, 4, &random(1, 16)).unwrap();
    let mut y = g.zeros(4, 4).unwrap();
    g.synchronize().unwrap();
    let (d0, s0) = g.counters();
    for _ in 0..50 {
        g.axpy(1.0, &x, &mut y).unwrap();
    }
    let v = g.download(&y).unwrap();
    let (d1, s1) = g.counters();
    assert_eq!(d1 - d0, 50);
    assert_eq!(
        s1 - s0,
        1,
        "50 dispatches and a readback should be one submission"
    );
    let xs = g.download(&x).unwrap();
    for (a, b) in v.iter().zip(&xs) {
        // 50 accumulations in f32, each rounding by up to 2⁻²⁴·|a|.
        assert!(
            (a - 50.0 * b).abs() < 1e-4 * a.abs().max(1.0),
            "{v:?} vs 50 × {xs:?}"
        );
    }
}

/// Bad input gives the same typed error on both backends, never a panic.
fn bad_inputs<B: Backend>(b: &B, _label: &str) {
    let a = b.zeros(3, 4).unwrap();
    let w = b.zeros(5, 4).unwrap();
    let mut out = b.zeros(3, 5).unwrap();
    let err = b
        .matmul(&a, &w, &mut out, MatmulSpec::default())
        .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    assert!(
        err.to_string().contains("3x4") && err.to_string().contains("5x4"),
        "{err}"
    );
    let mut wrong = b.zeros(3, 4).unwrap();
    assert!(matches!(
        b.matmul(
            &a,
            &w,
            &mut wrong,
            MatmulSpec {
                transpose_b: true,
                ..Default::default()
            }
        ),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(b.zeros(0, 3), Err(Error::Empty { .. })));
    assert!(matches!(
        b.upload(2, 2, &[1.0; 3]),
        Err(Error::Length {
            expected: 4,
            got: 3,
            ..
        })
    ));
    let e = b.indices(&[0, 1, 10], 10).unwrap_err();
    assert!(
        matches!(
            e,
            Error::IndexRange {
                index: 10,
                position: 2,
                bound: 10,
                ..
            }
        ),
        "{e}"
    );
    let labels = b.indices(&[0, 1], 2).unwrap();
    let (mut g3, mut l) = (b.zeros(3, 4).unwrap(), b.zeros(1, 1).unwrap());
    assert!(matches!(
        b.loss(
            Loss::SoftmaxCrossEntropy,
            &a,
            Target::Labels(&labels),
            &mut g3,
            &mut l
        ),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        b.loss(
            Loss::SquaredError,
            &a,
            Target::Labels(&labels),
            &mut g3,
            &mut l
        ),
        Err(Error::Shape { .. })
    ));
    let mut small = b.zeros(2, 4).unwrap();
    let idx = b.indices(&[0, 5], 6).unwrap();
    assert!(
        matches!(
            b.gather_rows(&a, &idx, 0, &mut small),
            Err(Error::Shape { .. })
        ),
        "index bound beyond source rows"
    );
}

backend_tests!(bad_inputs_are_typed_errors: bad_inputs on cpu_f32, cpu_f64, gpu);

#[test]
fn writes_of_the_wrong_length_and_oversize_tensors_are_typed_errors_on_the_gpu() {
    let Some(g) = gpu() else { return };
    // Reading back into the wrong length is impossible by construction;
    // writing the wrong length is an error.
    let mut t = g.zeros(2, 2).unwrap();
    assert!(matches!(
        g.write(&mut t, &[1.0; 5]),
        Err(Error::Length { .. })
    ));
    let limit = g
        .limits()
        .max_storage_buffer_binding_size
        .min(g.limits().max_buffer_size);
    let rows = (limit / 4 / 1024 + 1) as usize;
    assert!(matches!(g.zeros(rows, 1024), Err(Error::TooLarge { .. })));
    // Size arithmetic that would wrap is refused before any allocation.
    assert!(matches!(
        g.zeros(1 << 31, 1 << 31),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn timestamp_profiling_times_each_dispatch_without_changing_results() {
    let Some(g) = gpu() else { return };
    let a = g.upload(65, 33, &random(1, 65 * 33)).unwrap();
    let w = g.upload(17, 33, &random(2, 17 * 33)).unwrap();
    let spec = || MatmulSpec {
        transpose_b: true,
        ..Default::default()
    };
    let mut plain = g.zeros(65, 17).unwrap();
    g.matmul(&a, &w, &mut plain, spec()).unwrap();
    let expected = g.download(&plain).unwrap();
    if !g.supports_timestamps() {
        assert!(
            g.start_profiling(4).is_err(),
            "no timestamps: a typed error"
        );
        return;
    }
    g.start_profiling(4).unwrap();
    let mut z = g.zeros(65, 17).unwrap();
    g.matmul(&a, &w, &mut z, spec()).unwrap();
    let mut h = g.zeros(65, 17).unwrap();
    g.activation(Activation::Relu, &z, &mut h).unwrap();
    let times = g.finish_profiling().unwrap();
    let families: Vec<&str> = times.iter().map(|t| t.family()).collect();
    assert_eq!(families, vec!["matmul", "activation"]);
    assert!(
        times.iter().all(|t| t.seconds > 0.0 && t.seconds < 10.0),
        "{times:?}"
    );
    assert_eq!(
        g.download(&z).unwrap(),
        expected,
        "a profiled dispatch computes the same"
    );
    assert!(
        g.finish_profiling().is_err(),
        "finish without start is an error"
    );
}
