//! Classifies an IDX image file with a shipped model (what the main job
//! writes as `runs/mnist/model.safetensors`: weights, architecture and
//! standardisation in one file) and prints the accuracy beside the one the
//! model recorded, per-class precision and recall, and the confusion matrix;
//! with `--features plot` it also draws the most confidently wrong digits.
//!
//! ```text
//! cargo run --release --example mnist -- --epochs 5           # writes runs/mnist/model.safetensors
//! cargo run --release --features plot --example predict       # the test digits of data/mnist
//! cargo run --release --example predict -- --images X --labels Y --device cpu
//! ```

use clap::Parser;
use std::path::PathBuf;
use wgtrain::data::{mnist, read_idx_images, read_idx_labels};
use wgtrain::{shipped, Backend, Device, Error};

#[derive(Parser)]
#[command(about = "Classify IDX images with a shipped wgtrain model")]
struct Args {
    /// The shipped model (weights, architecture, preprocessing).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/runs/mnist/model.safetensors"))]
    model: PathBuf,
    /// An IDX image file (raw or gzip); default: the test images in --data.
    #[arg(long)]
    images: Option<PathBuf>,
    /// Its IDX label file; default: the test labels in --data.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Where MNIST is, for the defaults of --images and --labels.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"))]
    data: PathBuf,
    /// `gpu`, `cpu` or `auto` (default: WGTRAIN_DEVICE, else auto).
    #[arg(long)]
    device: Option<String>,
    /// Samples per batch on the device.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// The PNG of the most confidently wrong digits (needs --features plot).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/runs/mnist/wrong.png"))]
    wrong: PathBuf,
}

fn main() {
    let args = Args::parse();
    if let Some(d) = &args.device {
        std::env::set_var("WGTRAIN_DEVICE", d);
    }
    let result = match Device::from_env() {
        Ok(Device::Gpu(g)) => run(&args, &g),
        Ok(Device::Cpu(c)) => run(&args, &c),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run<B: Backend>(args: &Args, backend: &B) -> wgtrain::Result<()> {
    let (images, labels) = match (&args.images, &args.labels) {
        (Some(i), Some(l)) => (i.clone(), l.clone()),
        (None, None) => {
            let files = mnist::find(&args.data).ok_or_else(|| Error::MissingData {
                dir: args.data.clone(),
                help: "no MNIST files there: pass --images and --labels, or run the main job first"
                    .into(),
            })?;
            (files.test_images, files.test_labels)
        }
        _ => {
            return Err(Error::Setting {
                name: "--images/--labels",
                value: "only one of them".into(),
                allowed: "both, or neither (MNIST's test set)",
            })
        }
    };
    let mut model = shipped::load(&args.model, backend)?;
    let img = read_idx_images(&images)?;
    let truth = read_idx_labels(&labels)?;
    let width = model.model.spec().input_width();
    if img.rows * img.cols != width {
        return Err(Error::Shape {
            op: "predict",
            detail: format!(
                "{} holds {}×{} images, the model takes {width} values per sample",
                images.display(),
                img.rows,
                img.cols
            ),
        });
    }
    if truth.len() != img.count {
        return Err(Error::Shape {
            op: "predict",
            detail: format!("{} images but {} labels", img.count, truth.len()),
        });
    }
    // The raw scale the main job loads pixels at; the file's own
    // preprocessing comes after.
    let raw: Vec<f32> = img.pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    let proba = model.predict_proba(&raw, args.batch)?;
    let classes = model.model.spec().output_width();
    let predicted: Vec<usize> = proba
        .chunks(classes)
        .map(|p| (0..classes).fold(0, |best, k| if p[k] > p[best] { k } else { best }))
        .collect();

    let mut confusion = vec![vec![0usize; classes]; classes];
    for (&t, &p) in truth.iter().zip(&predicted) {
        confusion[t as usize][p] += 1;
    }
    let correct: usize = (0..classes).map(|k| confusion[k][k]).sum();
    let accuracy = correct as f64 / img.count as f64;
    println!(
        "{}: {} images, accuracy {:.2}% ({correct} right)",
        images.display(),
        img.count,
        100.0 * accuracy
    );
    if let Some(recorded) = model.metadata.get("wgtrain.test_accuracy") {
        println!(
            "the model recorded {:.2}% on its test set when it was saved",
            100.0 * recorded.parse::<f64>().unwrap_or(f64::NAN)
        );
    }
    println!("class  precision  recall  support");
    for (k, row) in confusion.iter().enumerate() {
        let predicted_k: usize = confusion.iter().map(|r| r[k]).sum();
        let support: usize = row.iter().sum();
        let ratio = |a: usize, b: usize| {
            if b == 0 {
                f64::NAN
            } else {
                a as f64 / b as f64
            }
        };
        println!(
            "{k:>5}  {:>8.2}%  {:>5.2}%  {support:>7}",
            100.0 * ratio(row[k], predicted_k),
            100.0 * ratio(row[k], support)
        );
    }
    println!("confusion matrix (rows: true class, columns: predicted)");
    println!(
        "      {}",
        (0..classes).map(|k| format!("{k:>5}")).collect::<String>()
    );
    for (t, row) in confusion.iter().enumerate() {
        println!(
            "{t:>5} {}",
            row.iter().map(|n| format!("{n:>5}")).collect::<String>()
        );
    }

    // The wrong ones the model was surest of.
    let mut wrong: Vec<(f32, usize)> = (0..img.count)
        .filter(|&i| predicted[i] != truth[i] as usize)
        .map(|i| (proba[i * classes + predicted[i]], i))
        .collect();
    wrong.sort_by(|a, b| b.0.total_cmp(&a.0));
    wrong.truncate(24);
    #[cfg(feature = "plot")]
    {
        let side = img.rows * img.cols;
        let tiles: Vec<(&[u8], String)> = wrong
            .iter()
            .map(|&(p, i)| {
                let caption = format!("{} → {} ({:.0}%)", truth[i], predicted[i], 100.0 * p);
                (&img.pixels[i * side..(i + 1) * side], caption)
            })
            .collect();
        let title = "the most confidently wrong digits: true → predicted (probability)";
        wgtrain::train::plot_images(&tiles, img.rows, img.cols, &args.wrong, title)?;
        println!(
            "{} of the wrong digits: {}",
            tiles.len(),
            args.wrong.display()
        );
    }
    #[cfg(not(feature = "plot"))]
    println!(
        "{} wrong digits, the surest at {:.1}% (build with --features plot for their picture)",
        img.count - correct,
        wrong.first().map_or(0.0, |w| 100.0 * w.0)
    );
    Ok(())
}
