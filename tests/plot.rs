//! Training-curve PNGs (feature `plot`): files on synthetic histories, their
//! size and content, and failures that leave no temporary file behind.
#![cfg(feature = "plot")]

use std::path::{Path, PathBuf};
use wgtrain::train::{plot_history, EpochRecord, History};
use wgtrain::Error;

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// A fresh empty folder per test, so tests can run in parallel.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgtrain-plot-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn record(epoch: usize, train_loss: f64) -> EpochRecord {
    EpochRecord {
        epoch,
        train_loss,
        train_accuracy: None,
        val_loss: None,
        val_accuracy: None,
        val_top_k: None,
        lr: 1e-3,
        seconds: 1.0,
        samples_per_sec: 1000.0,
        objective: None,
        grad_norms: Vec::new(),
        dead_relu: Vec::new(),
    }
}

/// Falling losses, rising accuracies, validation missing for a few epochs
/// (a gap in the curve) and early stopping's best epoch.
fn classification(epochs: usize) -> History {
    History {
        epochs: (1..=epochs)
            .map(|e| {
                let t = e as f64;
                let gap = (10..13).contains(&e);
                EpochRecord {
                    train_accuracy: Some(1.0 - 0.6 / t.sqrt()),
                    val_loss: (!gap).then_some(0.3 + 2.0 / t + 0.004 * t),
                    val_accuracy: (!gap).then_some(0.95 - 0.5 / t - 0.001 * t),
                    ..record(e, 2.3 / t.sqrt())
                }
            })
            .collect(),
        best_epoch: Some(epochs * 2 / 3),
        stopped_early: true,
        warnings: Vec::new(),
        verifications: Vec::new(),
    }
}

/// Width and height from the IHDR chunk, which must come first.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(
        bytes.len() > 33,
        "{} bytes is too short for a PNG",
        bytes.len()
    );
    assert_eq!(bytes[..8], PNG_SIGNATURE, "not a PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR", "the first chunk is not IHDR");
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// The decoded RGB pixels.
fn pixels(bytes: &[u8]) -> Vec<[u8; 3]> {
    let mut reader = png::Decoder::new(std::io::Cursor::new(bytes))
        .read_info()
        .unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf[..info.buffer_size()]
        .chunks_exact(3)
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".tmp"))
        .collect()
}

#[test]
fn classification_plot_is_a_png_of_the_expected_size() {
    let dir = scratch("classification");
    let path = dir.join("curves.png");
    plot_history(&classification(30), &path, "Synthetic run").unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(png_size(&bytes), (1200, 500));
    // The curves are drawn in their colours (blue training, orange validation).
    let px = pixels(&bytes);
    assert_eq!(px.len(), 1200 * 500);
    let count = |c: [u8; 3]| px.iter().filter(|&&p| p == c).count();
    assert!(count([31, 119, 180]) > 500, "no training curve");
    assert!(count([230, 110, 0]) > 500, "no validation curve");
    assert!(leftovers(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn regression_single_and_empty_histories_still_plot() {
    let dir = scratch("shapes");
    // Regression: no accuracy anywhere, no validation, a non-finite loss.
    let mut regression = History {
        epochs: (1..=8).map(|e| record(e, 1.0 / e as f64)).collect(),
        ..History::default()
    };
    regression.epochs[3].train_loss = f64::NAN;
    let single = History {
        epochs: vec![record(1, 0.7)],
        best_epoch: Some(1),
        ..History::default()
    };
    let long = classification(300);
    for (name, history) in [
        ("regression", regression),
        ("single", single),
        ("empty", History::default()),
        ("long", long),
    ] {
        let path = dir.join(format!("{name}.png"));
        plot_history(&history, &path, "").unwrap();
        assert_eq!(
            png_size(&std::fs::read(&path).unwrap()),
            (1200, 500),
            "{name}"
        );
    }
    assert!(leftovers(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unwritable_destinations_give_io_errors_and_leave_no_temporary_file() {
    let dir = scratch("unwritable");
    let history = classification(5);

    // The "folder" is a regular file: the temporary file cannot be created.
    let file = dir.join("not-a-folder");
    std::fs::write(&file, b"x").unwrap();
    let err = plot_history(&history, &file.join("curves.png"), "t").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");

    // The destination is a non-empty folder: the temporary file is written
    // but cannot be renamed over it, and must be removed again.
    let taken = dir.join("taken.png");
    std::fs::create_dir(&taken).unwrap();
    std::fs::write(taken.join("keep"), b"x").unwrap();
    let err = plot_history(&history, &taken, "t").unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    assert!(taken.join("keep").exists());

    // A read-only folder, where permissions apply (not to root).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let locked = dir.join("locked");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        let probe = locked.join("probe");
        if std::fs::write(&probe, b"x").is_ok() {
            let _ = std::fs::remove_file(&probe);
        } else {
            let err = plot_history(&history, &locked.join("curves.png"), "t").unwrap_err();
            assert!(matches!(err, Error::Io { .. }), "{err:?}");
            assert_eq!(std::fs::read_dir(&locked).unwrap().count(), 0);
        }
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn layer_norm_plot_draws_each_network_and_skips_zeros() {
    let dir = scratch("layer-norms");
    let path = dir.join("norms.png");
    let vanishing: Vec<f64> = (0..10).map(|l| 10f64.powi(l - 9)).collect();
    let mut steady = vec![0.8; 10];
    // A dead first layer (zero gradient) and a NaN cannot go on a log scale.
    steady[0] = 0.0;
    steady[1] = f64::NAN;
    let networks = [
        ("sigmoid".to_string(), vanishing),
        ("ReLU".to_string(), steady),
    ];
    wgtrain::train::plot_layer_norms(&networks, &path, "norms").unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(png_size(&bytes), (1200, 500));
    let px = pixels(&bytes);
    let count = |c: [u8; 3]| px.iter().filter(|&&p| p == c).count();
    assert!(count([31, 119, 180]) > 500, "no first curve");
    assert!(count([230, 110, 0]) > 500, "no second curve");
    // Nothing to draw still makes an image.
    wgtrain::train::plot_layer_norms(&[], &path, "empty").unwrap();
    assert!(leftovers(&dir).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
