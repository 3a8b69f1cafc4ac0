//! Augmentation (`ops::augment`): the GPU transforms every image as the CPU
//! does, at awkward sizes; hand-built transforms do what they say (the
//! identity, a shift, a mirror); draws are a function of (seed, epoch,
//! sample); bad parameters are typed errors.

mod common;

use common::random;
use wgtrain::ops::augment::{Augment, TRANSFORM_FLOATS};
use wgtrain::{Backend, Cpu, Error};

/// Runs `aug` on `rows` images of `input` through `backend`, drawing the
/// transforms for samples 100.. at epoch 3 under seed 9.
fn run<B: Backend>(b: &B, aug: &Augment, rows: usize, input: &[f32]) -> Vec<f64> {
    let transforms: Vec<f32> = (0..rows as u64)
        .flat_map(|s| aug.draw(9, 3, 100 + s))
        .collect();
    let keys: Vec<u32> = (0..rows as u64)
        .map(|s| aug.elastic_key(9, 3, 100 + s))
        .collect();
    let taps = aug.taps();
    let x = b.upload(rows, aug.image_len(), input).unwrap();
    let t = b.upload(rows, TRANSFORM_FLOATS, &transforms).unwrap();
    let k = b.indices(&keys, usize::MAX).unwrap();
    let g = b.upload(1, taps.len(), &taps).unwrap();
    let mut out = b.zeros(rows, aug.image_len()).unwrap();
    b.augment(&x, &t, &k, &g, &aug.spec(), &mut out).unwrap();
    b.download(&out).unwrap()
}

fn everything(h: usize, w: usize, c: usize) -> Augment {
    Augment {
        rotate_degrees: 15.0,
        scale: (0.85, 1.15),
        shear_degrees: 10.0,
        translate: 1.5,
        flip_horizontal: true,
        flip_vertical: true,
        elastic_alpha: 8.0,
        elastic_sigma: 1.5,
        contrast: (0.7, 1.3),
        brightness: 0.1,
        background: -0.25,
        ..Augment::none(h, w, c)
    }
}

/// The GPU against the CPU kernel on fresh random images: 1, 7 and 33
/// images of 5×7×1, 28×28×1 and 6×4×3, affine only, elastic only, and
/// everything at once. Tolerance 1e-5 of max(1, |cpu|): both compute in
/// f32 in the same order; a compiler may fuse a product and a sum into one
/// rounding, which moves a source coordinate by ~1e-7 pixel.
fn gpu_matches_the_cpu<B: Backend>(b: &B, label: &str) {
    let cpu = Cpu::<f32>::new();
    for (h, w, c) in [(5, 7, 1), (28, 28, 1), (6, 4, 3)] {
        let configs = [
            Augment {
                elastic_alpha: 0.0,
                ..everything(h, w, c)
            },
            Augment {
                elastic_alpha: 3.0,
                elastic_sigma: 1.0,
                ..Augment::none(h, w, c)
            },
            everything(h, w, c),
        ];
        for aug in configs {
            for rows in [1, 7, 33] {
                let input = random((rows * h * w * c) as u64, rows * h * w * c);
                let (got, want) = (run(b, &aug, rows, &input), run(&cpu, &aug, rows, &input));
                let err = got
                    .iter()
                    .zip(&want)
                    .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
                    .fold(0.0, f64::max);
                assert!(
                    err <= 1e-5,
                    "{label} {h}×{w}×{c}, {rows} images, {aug:?}: {err:e}"
                );
                // And it changed the images.
                assert!(got
                    .iter()
                    .zip(&input)
                    .any(|(g, i)| (g - f64::from(*i)).abs() > 1e-3));
            }
        }
    }
}

backend_tests!(parity: gpu_matches_the_cpu on cpu_f32, gpu);

/// Hand-built transforms, through `b`: the identity leaves an image as it
/// is, a translation by (2, 1) shifts it (the background coming in), and
/// M = diag(−1, 1) mirrors it, all exactly.
fn hand_built_transforms<B: Backend>(b: &B, label: &str) {
    let (h, w) = (4, 5);
    let image: Vec<f32> = (0..h * w).map(|i| i as f32 / 10.0).collect();
    let spec = Augment {
        background: -1.0,
        ..Augment::none(h, w, 1)
    }
    .spec();
    let apply = |t: [f32; TRANSFORM_FLOATS]| {
        let x = b.upload(1, h * w, &image).unwrap();
        let t = b.upload(1, TRANSFORM_FLOATS, &t).unwrap();
        let k = b.indices(&[0], 1).unwrap();
        let g = b.upload(1, 1, &[1.0]).unwrap();
        let mut out = b.zeros(1, h * w).unwrap();
        b.augment(&x, &t, &k, &g, &spec, &mut out).unwrap();
        b.download(&out)
            .unwrap()
            .iter()
            .map(|&v| v as f32)
            .collect::<Vec<f32>>()
    };
    assert_eq!(
        apply([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0]),
        image,
        "{label}: identity"
    );
    let shifted = apply([1.0, 0.0, 0.0, 1.0, 2.0, 1.0, 1.0, 0.0]);
    for y in 0..h {
        for x in 0..w {
            let want = if x >= 2 && y >= 1 {
                image[(y - 1) * w + x - 2]
            } else {
                -1.0
            };
            assert_eq!(shifted[y * w + x], want, "{label}: shift at ({y}, {x})");
        }
    }
    let mirrored = apply([-1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.5]);
    for y in 0..h {
        for x in 0..w {
            // Contrast 2 about the background −1, brightness 0.5.
            let (background, contrast, brightness) = (-1.0f32, 2.0f32, 0.5f32);
            let want = image[y * w + (w - 1 - x)] * contrast
                + (background * (1.0 - contrast) + brightness);
            assert_eq!(mirrored[y * w + x], want, "{label}: mirror at ({y}, {x})");
        }
    }
}

backend_tests!(hand_built: hand_built_transforms on cpu_f32, cpu_f64, gpu);

#[test]
fn draws_are_a_function_of_seed_epoch_and_sample() {
    let aug = everything(28, 28, 1);
    assert_eq!(aug.draw(1, 2, 3), aug.draw(1, 2, 3));
    assert_ne!(aug.draw(1, 2, 3), aug.draw(1, 3, 3));
    assert_ne!(aug.draw(1, 2, 3), aug.draw(1, 2, 4));
    assert_ne!(aug.elastic_key(1, 2, 3), aug.elastic_key(1, 2, 4));
    // Rotations cover ±15°: the matrix's angle spreads over the range.
    let angles: Vec<f64> = (0..2000)
        .map(|s| {
            let t = Augment {
                scale: (1.0, 1.0),
                shear_degrees: 0.0,
                flip_horizontal: false,
                flip_vertical: false,
                ..aug
            }
            .draw(5, 0, s);
            f64::from(t[1]).atan2(f64::from(t[0])).to_degrees()
        })
        .collect();
    let (lo, hi) = angles
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    assert!(
        lo < -14.0 && hi > 14.0 && lo >= -15.0 - 1e-6 && hi <= 15.0 + 1e-6,
        "{lo} {hi}"
    );
    let taps = aug.taps();
    assert_eq!(taps.len(), 2 * 5 + 1); // ±⌈3σ⌉ for σ = 1.5
    assert!((taps.iter().sum::<f32>() - 1.0).abs() < 1e-6);
}

#[test]
fn bad_augmentation_is_a_typed_error() {
    let base = Augment::none(28, 28, 1);
    for (bad, name) in [
        (
            Augment {
                elastic_alpha: -1.0,
                ..base
            },
            "augment elastic_alpha",
        ),
        (
            Augment {
                translate: 28.0,
                ..base
            },
            "augment translate",
        ),
        (
            Augment {
                scale: (1.2, 0.8),
                ..base
            },
            "augment scale max",
        ),
        (
            Augment {
                rotate_degrees: f64::NAN,
                ..base
            },
            "augment rotate_degrees",
        ),
        (
            Augment {
                contrast: (-0.5, 1.0),
                ..base
            },
            "augment contrast min",
        ),
        (Augment { height: 0, ..base }, "augment image size"),
    ] {
        match bad.validate() {
            Err(Error::InvalidParameter { name: n, .. }) => assert_eq!(n, name),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // A batch whose rows are not the configured images.
    let cpu = Cpu::<f32>::new();
    let x = cpu.zeros(2, 10).unwrap();
    let t = cpu.zeros(2, TRANSFORM_FLOATS).unwrap();
    let k = cpu.indices(&[0, 0], 1).unwrap();
    let g = cpu.zeros(1, 1).unwrap();
    let mut out = cpu.zeros(2, 10).unwrap();
    let e = cpu
        .augment(&x, &t, &k, &g, &base.spec(), &mut out)
        .unwrap_err();
    assert!(
        matches!(&e, Error::Shape { detail, .. } if detail.contains("1×28×28")),
        "{e}"
    );
}

/// Images of 6×6 in 3 classes (a bar's position), for the training tests.
fn bars(n: usize) -> wgtrain::Dataset {
    let noise = random(11, n * 36);
    let mut x = Vec::with_capacity(n * 36);
    let labels: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
    for (i, &l) in labels.iter().enumerate() {
        for p in 0..36 {
            let bar = (p % 6) / 2 == l as usize;
            x.push(if bar { 1.0 } else { 0.0 } + 0.1 * noise[i * 36 + p]);
        }
    }
    wgtrain::Dataset::classification(x, 36, labels, 3).unwrap()
}

fn train_with<B: Backend>(b: &B, augment: Option<Augment>) -> Vec<f64> {
    use wgtrain::optim::{Optim, Sgd};
    use wgtrain::train::{fit, Report, TrainConfig};
    let spec = wgtrain::Sequential::new(36)
        .dense(16, wgtrain::Init::HeNormal)
        .relu()
        .dense(3, wgtrain::Init::XavierUniform);
    let mut model = spec.build(b, 4).unwrap();
    let mut opt = Optim::new(Sgd {
        lr: 0.05,
        momentum: 0.9,
        ..Sgd::default()
    })
    .unwrap();
    let config = TrainConfig {
        epochs: 3,
        batch_size: 16,
        report: Report::Quiet,
        augment,
        ..TrainConfig::default()
    };
    fit(&mut model, &mut opt, &bars(80), None, &config).unwrap();
    model.parameter("0.weight").unwrap().2
}

/// In the loop: no change at all trains exactly as no augmentation; the
/// full pipeline on the GPU ends within 1e-4 of the CPU after 15 steps
/// (the per-step 1e-5 of the kernels, carried through training).
fn training_with_augmentation<B: Backend>(b: &B, label: &str) {
    assert_eq!(
        train_with(b, Some(Augment::none(6, 6, 1))),
        train_with(b, None),
        "{label}"
    );
    let aug = Augment {
        elastic_sigma: 1.0,
        elastic_alpha: 2.0,
        translate: 1.0,
        ..everything(6, 6, 1)
    };
    let (got, want) = (
        train_with(b, Some(aug)),
        train_with(&Cpu::<f32>::new(), Some(aug)),
    );
    let err = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1.0))
        .fold(0.0, f64::max);
    assert!(err < 1e-4, "{label}: {err:e}");
    assert_ne!(
        got,
        train_with(b, None),
        "{label}: augmentation changed nothing"
    );
}

backend_tests!(in_the_loop: training_with_augmentation on cpu_f32, gpu);

#[test]
fn augmenting_samples_of_another_shape_is_refused() {
    use wgtrain::optim::{Optim, Sgd};
    use wgtrain::train::{fit, Report, TrainConfig};
    let cpu = Cpu::<f32>::new();
    let mut model = wgtrain::Sequential::new(36)
        .dense(3, wgtrain::Init::XavierUniform)
        .build(&cpu, 0)
        .unwrap();
    let mut opt = Optim::new(Sgd::default()).unwrap();
    let config = TrainConfig {
        epochs: 1,
        batch_size: 5,
        report: Report::Quiet,
        augment: Some(Augment::none(28, 28, 1)),
        ..TrainConfig::default()
    };
    let e = fit(&mut model, &mut opt, &bars(10), None, &config).unwrap_err();
    assert!(
        matches!(&e, Error::Shape { detail, .. } if detail.contains("1×28×28") && detail.contains("36")),
        "{e}"
    );
}
