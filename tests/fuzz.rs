//! Mutation fuzzing of every loader: IDX (raw and gzip), CSV, model
//! checkpoints and optimizer state, from valid seeds, with a fixed seed.
//! Every mutated input must give `Ok` or a typed error, never a panic;
//! a checkpoint that loads must hold exactly the original tensors (its
//! checksum catches the rest). `WGTRAIN_FUZZ_ITERS` (default 1000 per seed)
//! runs longer. Plus the hostile inputs that used to exhaust memory.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use wgtrain::checkpoint::{self, HostData};
use wgtrain::data::{self, Column};
use wgtrain::optim::{Adam, Optim, Optimizer};
use wgtrain::{Cpu, Error, Init, Sequential};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// One to four mutations: flipped bits, bytes set to extremes, a cut, a
/// repeated or inserted run.
fn mutate(seed: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if v.is_empty() {
            v.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..v.len());
        match rng.random_range(0..6) {
            0 => v[at] ^= 1 << rng.random_range(0..8),
            1 => v[at] = [0x00, 0xff, 0x7f, 0x80][rng.random_range(0..4)],
            2 => v[at] = rng.random(),
            3 => v.truncate(at),
            4 => {
                let end = (at + rng.random_range(1..64)).min(v.len());
                let run = v[at..end].to_vec();
                v.splice(at..at, run);
            }
            _ => {
                let run: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                v.splice(at..at, run);
            }
        }
    }
    v
}

#[derive(Default, Debug)]
struct Tally {
    ok: usize,
    errors: usize,
    panics: usize,
    garbage: usize,
}

/// Runs `load` on `iters` mutations of `seed`; `load` returns whether an
/// `Ok` result is garbage (a checkpoint whose values changed).
fn fuzz(
    name: &str,
    seed: &[u8],
    iters: usize,
    load: impl Fn(&Path) -> wgtrain::Result<bool>,
) -> Tally {
    let dir = std::env::temp_dir().join(format!("wgtrain-fuzz-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("input");
    let mut rng = StdRng::seed_from_u64(0xF022 ^ name.len() as u64);
    let mut tally = Tally::default();
    for _ in 0..iters {
        std::fs::write(&path, mutate(seed, &mut rng)).unwrap();
        match catch_unwind(AssertUnwindSafe(|| load(&path))) {
            Ok(Ok(false)) => tally.ok += 1,
            Ok(Ok(true)) => tally.garbage += 1,
            Ok(Err(_)) => tally.errors += 1,
            Err(_) => tally.panics += 1,
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("fuzz {name}: {iters} inputs, {tally:?}");
    tally
}

#[test]
fn mutated_files_give_typed_errors_never_panics_or_garbage() {
    let iters: usize = std::env::var("WGTRAIN_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = std::env::temp_dir().join(format!("wgtrain-fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Valid seeds.
    let (images, labels) = (dir.join("images"), dir.join("labels"));
    data::write_idx_images(
        &images,
        4,
        5,
        &(0..3 * 20).map(|i| i as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    data::write_idx_labels(&labels, &[0, 1, 2]).unwrap();
    let images = std::fs::read(&images).unwrap();
    let labels = std::fs::read(&labels).unwrap();
    let csv = b"a,b,label\n0.5,1,0\n2,-3e-1,2\n7,8,1\n".to_vec();
    let cpu = Cpu::<f32>::new();
    let spec = Sequential::new(3)
        .dense(4, Init::HeNormal)
        .batch_norm()
        .relu()
        .dense(2, Init::XavierUniform);
    let mut model = spec.build(&cpu, 1).unwrap();
    let model_path = dir.join("model.safetensors");
    checkpoint::save_model(&model_path, &mut model).unwrap();
    let model_file = std::fs::read(&model_path).unwrap();
    let (original, _) = checkpoint::read(&model_path).unwrap();
    let mut opt = Optim::new(Adam::default()).unwrap();
    model
        .forward_backward(
            &wgtrain::Backend::upload(&cpu, 2, 3, &[0.1; 6]).unwrap(),
            wgtrain::Loss::SoftmaxCrossEntropy,
            wgtrain::Target::Labels(&wgtrain::Backend::indices(&cpu, &[0, 1], 2).unwrap()),
        )
        .unwrap();
    wgtrain::train::train_step(
        &mut model,
        &mut opt,
        &wgtrain::Backend::upload(&cpu, 2, 3, &[0.1; 6]).unwrap(),
        wgtrain::Target::Labels(&wgtrain::Backend::indices(&cpu, &[0, 1], 2).unwrap()),
        &Default::default(),
        &mut wgtrain::train::LocalSync,
    )
    .unwrap();
    let opt_path = dir.join("optimizer.safetensors");
    let state = opt.export_state(&cpu).unwrap();
    checkpoint::save_optimizer(&opt_path, &state, Default::default()).unwrap();
    let opt_file = std::fs::read(&opt_path).unwrap();

    let mut all = Vec::new();
    all.push(fuzz("idx-images", &images, iters, |p| {
        data::read_idx_images(p).map(|_| false)
    }));
    all.push(fuzz("idx-images-gz", &gzip(&images), iters, |p| {
        data::read_idx_images(p).map(|_| false)
    }));
    all.push(fuzz("idx-labels", &labels, iters, |p| {
        data::read_idx_labels(p).map(|_| false)
    }));
    all.push(fuzz("idx-labels-gz", &gzip(&labels), iters, |p| {
        data::read_idx_labels(p).map(|_| false)
    }));
    all.push(fuzz("csv", &csv, iters, |p| {
        data::load_csv(p, Column::Name("label".into()), None).map(|_| false)
    }));
    all.push(fuzz("checkpoint", &model_file, iters, |p| {
        let mut m = spec.build(&cpu, 2).unwrap();
        checkpoint::load_model(p, &mut m)?;
        // Loaded: every tensor must be the original's, bit for bit.
        let (tensors, _) = checkpoint::read(p)?;
        Ok(tensors != original
            || tensors
                .iter()
                .any(|t| matches!(&t.data, HostData::F32(v) if v.iter().any(|x| !x.is_finite()))))
    }));
    all.push(fuzz("optimizer", &opt_file, iters, |p| {
        let (loaded, _) = checkpoint::load_optimizer(p)?;
        let mut fresh = Optim::new(Adam::default()).unwrap();
        fresh.import_state(&cpu, &loaded)?;
        Ok(loaded != state)
    }));
    let total = all.iter().fold(Tally::default(), |t, a| Tally {
        ok: t.ok + a.ok,
        errors: t.errors + a.errors,
        panics: t.panics + a.panics,
        garbage: t.garbage + a.garbage,
    });
    println!("fuzz total: {} inputs, {total:?}", 7 * iters);
    assert_eq!(total.panics, 0, "panics");
    assert_eq!(
        total.garbage, 0,
        "checkpoints that loaded with changed values"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A gzip IDX file whose header declares 3 small images but whose stream
/// inflates to 256 MiB: refused after inflating no more than the header
/// declares (plus one byte), quickly; a header declaring more than
/// MAX_IDX_BYTES is refused before inflating anything.
#[test]
fn gzip_bombs_are_refused_without_inflating_them() {
    let dir = std::env::temp_dir().join(format!("wgtrain-bomb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bomb.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&[0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 28, 0, 0, 0, 28])
        .unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..256 {
        e.write_all(&zeros).unwrap();
    }
    std::fs::write(&path, e.finish().unwrap()).unwrap();
    let started = std::time::Instant::now();
    let err = data::read_idx_images(&path).unwrap_err();
    assert!(err.to_string().contains("beyond"), "{err}");
    assert!(
        started.elapsed().as_secs_f64() < 1.0,
        "inflated the whole stream"
    );
    // 2^32 images of 2^16 × 2^16 pixels declared.
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&[0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0, 1, 0, 0])
        .unwrap();
    std::fs::write(&path, e.finish().unwrap()).unwrap();
    let err = data::read_idx_images(&path).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A CSV line longer than MAX_CSV_LINE is an error naming the line, read
/// with at most that much of it in memory.
#[test]
fn an_overlong_csv_line_is_refused() {
    let dir = std::env::temp_dir().join(format!("wgtrain-longcsv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("long.csv");
    let mut text = String::from("a,label\n1,0\n");
    text.push_str(&"1,".repeat(data::MAX_CSV_LINE));
    text.push_str("0\n");
    std::fs::write(&path, text).unwrap();
    let err = data::load_csv(&path, Column::Name("label".into()), None).unwrap_err();
    assert!(err.to_string().contains("line 3 is longer than"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
