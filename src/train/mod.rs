//! The training loop: epochs of shuffled minibatches gathered on the device,
//! validation every epoch, early stopping, learning-rate schedules,
//! checkpoints and exact resumption.
//!
//! ```
//! use wgtrain::train::{fit, TrainConfig, Report};
//! use wgtrain::optim::{Adam, Optim};
//! use wgtrain::{Cpu, Dataset, Init, Sequential};
//! // XOR-like data: two features, two classes.
//! let features = vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0];
//! let data = Dataset::classification(features, 2, vec![0, 1, 1, 0], 2).unwrap();
//! let cpu = Cpu::<f32>::new();
//! let mut model = Sequential::new(2).dense(16, Init::HeNormal).relu().dense(2, Init::XavierUniform).build(&cpu, 0).unwrap();
//! let mut opt = Optim::new(Adam { lr: 0.05, ..Adam::default() }).unwrap();
//! let config = TrainConfig { epochs: 200, batch_size: 4, report: Report::Quiet, ..TrainConfig::default() };
//! let history = fit(&mut model, &mut opt, &data, None, &config).unwrap();
//! assert_eq!(history.epochs.last().unwrap().train_accuracy, Some(1.0));
//! ```

mod full_batch;
mod health;
mod history;
mod lr_find;
mod plateau;
#[cfg(feature = "plot")]
mod plot;
mod resident;
mod sampler;
mod sets;
pub(crate) mod step;
mod verify;

pub use full_batch::{descend_until_converged, Converged, Convergence, FullBatch, StopReason};
/// Also what the matmul kernel cache (`gpu::MatmulCache`) is written with.
pub(crate) use history::write_atomic;
pub use history::{EpochRecord, History};
pub use lr_find::{lr_find, LrFindResult, LrFinder};
pub use plateau::{PlateauConfig, PlateauMode, ReduceLrOnPlateau, ThresholdMode};
#[cfg(feature = "plot")]
pub use plot::{plot_history, plot_images, plot_layer_norms, plot_lr_find};
pub use sampler::Sampler;
pub use step::{train_step, GradSync, LocalSync, StepOptions};
pub use verify::Verification;

use crate::backend::{Backend, Loss, Shaped};
use crate::checkpoint;
use crate::data::Dataset;
use crate::optim::Optimizer;
use crate::parallel::{shard, Collective, Solo};
use crate::schedule::Schedule;
use crate::{Error, Model, Result};
use health::{check_parameters, Health};
use resident::Resident;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use step::skip_step;
// The std clock on native targets, the page's on the web.
use web_time::Instant;

/// What early stopping watches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Monitor {
    /// Validation loss, lower is better.
    ValLoss,
    /// Validation accuracy, higher is better.
    ValAccuracy,
}

/// Stop when the monitored validation metric has not improved by more than
/// `min_delta` for `patience` epochs, and (if `restore_best`) put back the
/// weights of the best epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyStopping {
    /// The metric.
    pub monitor: Monitor,
    /// Epochs without improvement before stopping.
    pub patience: usize,
    /// The smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Restore the best weights at the end.
    pub restore_best: bool,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        EarlyStopping {
            monitor: Monitor::ValLoss,
            patience: 5,
            min_delta: 0.0,
            restore_best: true,
        }
    }
}

/// Whether the schedule's `t` counts epochs or optimizer steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScheduleUnit {
    /// `t` = completed epochs (the learning rate changes between epochs).
    Epoch,
    /// `t` = optimizer steps taken.
    Iteration,
}

/// How a run reports progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// A progress bar per epoch (loss, samples/s) and a line per epoch.
    Progress,
    /// A line per epoch.
    Lines,
    /// One JSON object per epoch on stdout, for scripts.
    JsonLines,
    /// Nothing.
    Quiet,
}

/// What a callback tells the loop after an epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Control {
    /// Go on.
    Continue,
    /// End the run after this epoch.
    Stop,
    /// Go on at this learning rate. Without a schedule it holds for the rest
    /// of the run; with one, the schedule's next value replaces it (at the
    /// next epoch, or the next step for [`ScheduleUnit::Iteration`]).
    SetLr(f64),
}

/// Where an epoch stands every `report_every` steps: what a progress bar
/// or a page's live curves show between epochs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRecord {
    /// The epoch, from 1.
    pub epoch: usize,
    /// Steps done in this epoch, from 1.
    pub step: usize,
    /// Steps in this epoch.
    pub steps: usize,
    /// Steps done in the run, counting those of a resumed run.
    pub steps_done: usize,
    /// Mean training loss over the epoch's samples so far.
    pub train_loss: f64,
    /// Training accuracy over the epoch's samples so far (class labels only).
    pub train_accuracy: Option<f64>,
    /// Samples per second since the epoch began.
    pub samples_per_sec: f64,
}

/// What the loop tells a callback: every epoch's record, and (if it asks)
/// where each epoch stands every `report_every` steps.
///
/// A closure `FnMut(&EpochRecord) -> Control` is a callback that watches
/// epochs only:
///
/// ```
/// use wgtrain::train::{Callback, Control};
/// // Halve the rate whenever validation loss rose.
/// let mut last = f64::INFINITY;
/// let mut lr = 1e-3;
/// let halve: Callback = Box::new(move |r: &wgtrain::train::EpochRecord| {
///     let rose = r.val_loss.is_some_and(|l| l > last);
///     last = r.val_loss.unwrap_or(last);
///     if rose { lr /= 2.0; Control::SetLr(lr) } else { Control::Continue }
/// });
/// ```
///
/// One that draws live curves also takes the steps:
///
/// ```
/// use wgtrain::train::{Control, EpochRecord, StepRecord, TrainCallback};
/// #[derive(Default)]
/// struct Curve(Vec<(usize, f64)>);
/// impl TrainCallback for Curve {
///     fn on_epoch(&mut self, _: &EpochRecord) -> Control { Control::Continue }
///     fn on_steps(&mut self, r: &StepRecord) { self.0.push((r.steps_done, r.train_loss)) }
///     fn wants_steps(&self) -> bool { true }
/// }
/// ```
pub trait TrainCallback {
    /// After every epoch: go on, stop, or change the learning rate. Under
    /// data parallelism replica 0's answer holds for every replica.
    fn on_epoch(&mut self, record: &EpochRecord) -> Control;

    /// Every `report_every` steps and at the end of each epoch, on every
    /// replica (with the same figures), when [`TrainCallback::wants_steps`].
    fn on_steps(&mut self, record: &StepRecord) {
        let _ = record;
    }

    /// Whether to call [`TrainCallback::on_steps`]: taking the running
    /// accuracy costs one more read-back per report.
    fn wants_steps(&self) -> bool {
        false
    }
}

impl<F: FnMut(&EpochRecord) -> Control> TrainCallback for F {
    fn on_epoch(&mut self, record: &EpochRecord) -> Control {
        self(record)
    }
}

/// A callback as the loop takes them: see [`TrainCallback`].
pub type Callback<'a> = Box<dyn TrainCallback + 'a>;

/// Everything a run needs besides the model, optimizer and data.
pub struct TrainConfig {
    /// Epochs to run (in all, counting those of a resumed run).
    pub epochs: usize,
    /// Minibatch size; the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// The loss.
    pub loss: Loss,
    /// Draw a new order every epoch.
    pub shuffle: bool,
    /// Seeds the shuffles (epoch `e` uses a seed derived from it and `e`).
    pub seed: u64,
    /// Also report validation top-`k` accuracy when > 1.
    pub top_k: usize,
    /// The learning-rate schedule (the optimizer's own rate when `None`).
    pub schedule: Option<Schedule>,
    /// What the schedule's `t` counts.
    pub schedule_unit: ScheduleUnit,
    /// Early stopping on a validation metric (needs validation data).
    pub early_stopping: Option<EarlyStopping>,
    /// A fresh random transform of every training image every epoch, on
    /// the device (see [`crate::ops::augment`]); validation and test data
    /// are never augmented.
    pub augment: Option<crate::ops::augment::Augment>,
    /// Progress output.
    pub report: Report,
    /// Steps between loss readbacks inside an epoch (a readback waits for
    /// the device). Divergence is checked after every step on the device
    /// and read at these readbacks, so it is reported with its exact step.
    pub report_every: usize,
    /// Write `last.safetensors`, `best.safetensors`, the optimizer state and
    /// the history here after every epoch, committed as one set
    /// (`sets/epoch-N/` with a manifest, made `current` by one rename; the
    /// top-level names link into it).
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue the run whose checkpoints are in this folder (its current
    /// set, verified against its manifest first).
    pub resume_from: Option<PathBuf>,
    /// The optimizer group for biases and batch-norm parameters (e.g. one
    /// made with `GroupOptions::no_decay()`); group 0 when `None`.
    pub bias_group: Option<usize>,
    /// The max-norm constraint on every unit's incoming weights after each
    /// update (Srivastava et al. 2014 use 3–4 with dropout); see
    /// [`StepOptions::max_norm`].
    pub max_norm: Option<f64>,
    /// Micro-batches per step (gradient accumulation): each replica's share
    /// of a minibatch runs forward and backward in this many parts, whose
    /// gradients add up (weighted by their rows) before one optimizer step,
    /// so a batch larger than the device holds trains as in one piece (with
    /// batch norm, each part normalised by its own statistics, as PyTorch
    /// does). 1: no accumulation.
    pub accumulation: usize,
    /// Gaussian noise of this σ on every weight during each training pass
    /// ([`Model::set_weight_noise`]); the clean weights are updated.
    pub weight_noise: Option<f64>,
    /// Warn (once, on stderr, and in [`History::warnings`]) when training
    /// accuracy exceeds validation accuracy by more than this (0.05: five
    /// points), or, for data without class labels, when the validation loss
    /// exceeds the training loss by more than this fraction of it. Seed 001:
    /// "there should be a gap, but not too large".
    pub gap_warning: Option<f64>,
    /// Record per-layer gradient norms and dead-ReLU fractions in each
    /// [`EpochRecord`] (one reduction per parameter per step, and one
    /// evaluation of a probe batch per epoch).
    pub layer_stats: bool,
    /// The verification mode: every this many steps, replay the step on the
    /// CPU reference backend in f64 from the same parameters, optimizer
    /// state and batch, record the divergence of the losses, gradients and
    /// updated parameters in [`History::verifications`], and stop with
    /// [`Error::Verification`] past `verify_tolerance`. One replica only.
    pub verify_every: Option<usize>,
    /// The largest divergence `max |x − ref| / max(1, |ref|)` the
    /// verification accepts (1e-4: f32 arithmetic against f64 over a step,
    /// with room for the loss's reductions over a batch).
    pub verify_tolerance: f64,
    /// How each epoch's order is drawn: a shuffle (the default), class-
    /// stratified minibatches, or a preference for high-loss samples.
    pub sampler: Sampler,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 64,
            loss: Loss::SoftmaxCrossEntropy,
            shuffle: true,
            seed: 0,
            top_k: 1,
            schedule: None,
            schedule_unit: ScheduleUnit::Epoch,
            early_stopping: None,
            augment: None,
            report: Report::Lines,
            report_every: 20,
            checkpoint_dir: None,
            resume_from: None,
            bias_group: None,
            max_norm: None,
            accumulation: 1,
            weight_noise: None,
            gap_warning: Some(0.05),
            layer_stats: false,
            verify_every: None,
            verify_tolerance: 1e-4,
            sampler: Sampler::Shuffle,
        }
    }
}

/// Rows of the probe batch that [`TrainConfig::layer_stats`] counts dead
/// ReLUs on (the first of the validation set, else of the training set).
const PROBE_ROWS: usize = 1024;

/// File names inside a checkpoint folder.
pub const LAST: &str = "last.safetensors";
/// The best epoch's weights (early stopping's monitor, else the lowest
/// validation loss, else the lowest training loss).
pub const BEST: &str = "best.safetensors";
/// The optimizer state and the loop's counters.
pub const OPTIMIZER: &str = "optimizer.safetensors";

/// The loop's own counters, stored with the optimizer state.
#[derive(Clone, Copy, Debug, Default)]
struct LoopState {
    epochs_done: usize,
    steps_done: usize,
    best_metric: Option<f64>,
    best_epoch: Option<usize>,
    bad_epochs: usize,
}

impl LoopState {
    fn to_metadata(self) -> HashMap<String, String> {
        let mut m = HashMap::from([
            ("epochs_done".to_string(), self.epochs_done.to_string()),
            ("steps_done".to_string(), self.steps_done.to_string()),
            ("bad_epochs".to_string(), self.bad_epochs.to_string()),
        ]);
        if let (Some(v), Some(e)) = (self.best_metric, self.best_epoch) {
            m.insert("best_metric".into(), format!("{v:e}"));
            m.insert("best_epoch".into(), e.to_string());
        }
        m
    }

    fn from_metadata(m: &HashMap<String, String>, path: &Path) -> Result<LoopState> {
        let get = |k: &str| -> Result<Option<f64>> {
            m.get(k)
                .map(|v| {
                    v.parse::<f64>().map_err(|_| Error::Format {
                        path: path.to_path_buf(),
                        detail: format!("{k} = {v} is not a number"),
                    })
                })
                .transpose()
        };
        Ok(LoopState {
            epochs_done: get("epochs_done")?.unwrap_or(0.0) as usize,
            steps_done: get("steps_done")?.unwrap_or(0.0) as usize,
            best_metric: get("best_metric")?,
            best_epoch: get("best_epoch")?.map(|e| e as usize),
            bad_epochs: get("bad_epochs")?.unwrap_or(0.0) as usize,
        })
    }
}

fn validate(
    config: &TrainConfig,
    model_input: usize,
    model_output: usize,
    train: &Dataset,
    val: Option<&Dataset>,
    replicas: usize,
) -> Result<()> {
    config.loss.validate()?;
    if let Some(c) = config.max_norm {
        crate::ops::max_norm::check(c)?;
    }
    if let Some(std) = config.weight_noise {
        crate::ops::noise::check_std(std).map_err(|_| Error::InvalidParameter {
            name: "weight_noise",
            value: std,
            allowed: "finite and ≥ 0",
        })?;
    }
    if let Some(gap) = config.gap_warning {
        if !(gap >= 0.0 && gap.is_finite()) {
            return Err(Error::InvalidParameter {
                name: "gap_warning",
                value: gap,
                allowed: "finite and ≥ 0",
            });
        }
    }
    config.sampler.validate()?;
    if config.sampler == Sampler::Stratified && train.classes().is_none() {
        return Err(Error::Model(
            "the stratified sampler needs class labels; this training set has dense targets".into(),
        ));
    }
    if config.verify_every == Some(0) {
        return Err(Error::InvalidParameter {
            name: "verify_every",
            value: 0.0,
            allowed: "at least 1 (steps between checks)",
        });
    }
    if !(config.verify_tolerance > 0.0 && config.verify_tolerance.is_finite()) {
        return Err(Error::InvalidParameter {
            name: "verify_tolerance",
            value: config.verify_tolerance,
            allowed: "finite and > 0",
        });
    }
    if config.verify_every.is_some() && replicas > 1 {
        return Err(Error::Model(
            "verify_every replays one replica's step on the CPU; train on one device to verify"
                .into(),
        ));
    }
    if replicas > train.len() {
        return Err(Error::InvalidParameter {
            name: "replicas (devices × ranks)",
            value: replicas as f64,
            allowed: "at most the number of training samples: use fewer devices or ranks",
        });
    }
    if config.batch_size == 0 || config.batch_size > train.len() {
        return Err(Error::InvalidParameter {
            name: "batch_size",
            value: config.batch_size as f64,
            allowed: "between 1 and the number of training samples",
        });
    }
    if !config.batch_size.is_multiple_of(replicas) {
        return Err(Error::InvalidParameter {
            name: "batch_size",
            value: config.batch_size as f64,
            allowed: "a multiple of the number of replicas (devices × ranks), so that every \
                      replica takes an equal shard: change --batch-size or the replica count",
        });
    }
    if config.accumulation == 0 || config.accumulation * replicas > config.batch_size {
        return Err(Error::InvalidParameter {
            name: "accumulation",
            value: config.accumulation as f64,
            allowed: "between 1 and batch_size / replicas (every micro-batch needs a row)",
        });
    }
    if config.epochs == 0 {
        return Err(Error::InvalidParameter {
            name: "epochs",
            value: 0.0,
            allowed: "at least 1",
        });
    }
    if config.report_every == 0 {
        return Err(Error::InvalidParameter {
            name: "report_every",
            value: 0.0,
            allowed: "at least 1",
        });
    }
    for (what, d) in std::iter::once(("training", train)).chain(val.map(|v| ("validation", v))) {
        if d.dim() != model_input {
            return Err(Error::Shape {
                op: "fit",
                detail: format!(
                    "the {what} data has {} features, the model takes {model_input}",
                    d.dim()
                ),
            });
        }
        if d.target_width() != model_output {
            return Err(Error::Shape {
                op: "fit",
                detail: format!(
                    "the {what} targets are {} wide, the model outputs {model_output}",
                    d.target_width()
                ),
            });
        }
    }
    if config.early_stopping.is_some() && val.is_none() {
        return Err(Error::Model("early stopping needs validation data".into()));
    }
    Ok(())
}

/// Whether some replica's shard of a full minibatch, or of the epoch's
/// last, has a micro-batch (of `micro` per shard) of a single row.
fn single_row_batches(
    batch_size: usize,
    samples: usize,
    replicas: usize,
    micro: usize,
) -> Option<usize> {
    let last = match samples % batch_size {
        0 => batch_size,
        rest => rest,
    };
    [batch_size, last].into_iter().find(|&rows| {
        (0..replicas).any(|r| {
            let mine = shard(rows, r, replicas).len();
            (0..micro).any(|j| shard(mine, j, micro).len() == 1)
        })
    })
}

/// Batch norm cannot normalise a batch of one row (its variance is 0):
/// refused before the first step, rather than after an epoch.
fn check_batch_norm_batches(
    batch_size: usize,
    samples: usize,
    replicas: usize,
    micro: usize,
) -> Result<()> {
    let Some(rows) = single_row_batches(batch_size, samples, replicas, micro) else {
        return Ok(());
    };
    let better = (batch_size + 1..=samples).find(|&b| {
        b.is_multiple_of(replicas) && single_row_batches(b, samples, replicas, micro).is_none()
    });
    Err(Error::Model(format!(
        "with batch norm no replica's minibatch (or micro-batch) may have a single row, but \
         {samples} samples in batches of {batch_size} over {replicas} replica(s) in {micro} \
         micro-batch(es) give a batch of {rows} row(s) with a one-row part: choose another \
         batch size{}",
        better.map_or(String::new(), |b| format!(" (e.g. {b})"))
    )))
}

/// The optimizer state read on resume must be for these parameters, shape
/// for shape (another architecture's would fail only at the first step).
fn check_optimizer_state<B: Backend>(
    model: &mut Model<B>,
    state: &crate::optim::OptimState,
    path: &Path,
) -> Result<()> {
    let shapes: HashMap<String, (usize, usize)> = model
        .parameters_mut()
        .into_iter()
        .map(|p| (p.name, (p.value.rows(), p.value.cols())))
        .collect();
    // A rule without state (plain SGD) stores none, and no shape.
    for (name, p) in state.params.iter().filter(|(_, p)| !p.tensors.is_empty()) {
        match shapes.get(name) {
            Some(&shape) if shape == (p.rows, p.cols) => {}
            found => {
                return Err(Error::Format {
                    path: path.to_path_buf(),
                    detail: format!(
                        "optimizer state for {name} is {}x{}, but the model's {name} is {}: \
                         the state belongs to another network",
                        p.rows,
                        p.cols,
                        found.map_or("missing".to_string(), |(r, c)| format!("{r}x{c}"))
                    ),
                })
            }
        }
    }
    Ok(())
}

/// Seeds epoch `e`'s shuffle: a function of the run's seed and `e` alone,
/// so a resumed run draws the same orders as an uninterrupted one.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Evaluates `data` in batches on the device, this replica taking its
/// shard of each batch; returns (mean loss, top-1, top-k) over all replicas.
async fn evaluate<B: Backend>(
    model: &mut Model<B>,
    data: &mut Resident<B>,
    config: &TrainConfig,
    group: &mut dyn Collective,
) -> Result<(f64, Option<f64>, Option<f64>)> {
    let b = model.backend().clone();
    if group.size() > 1 {
        // Batch-norm running statistics are replica 0's (DDP's broadcast_buffers).
        broadcast_model(model, group, false)?;
    }
    let (mut loss_sum, mut top1, mut topk) = (b.zeros(1, 1)?, b.zeros(1, 1)?, b.zeros(1, 1)?);
    let slices = data.epoch(&b, config.batch_size.max(256), false, 0)?;
    let labelled = data.classes().is_some();
    for s in slices {
        let Some(s) = s.rows(shard(s.rows, group.rank(), group.size())) else {
            continue;
        };
        let (x, target) = data.gather(&b, s)?;
        let mut counts: Vec<(usize, &mut B::Tensor)> = if labelled {
            vec![(1, &mut top1)]
        } else {
            vec![]
        };
        if labelled && config.top_k > 1 {
            counts.push((config.top_k, &mut topk));
        }
        model.evaluate_batch(x, config.loss, target, &mut loss_sum, &mut counts)?;
    }
    let n = data.len() as f64;
    let mut sums = [
        b.download_async(&loss_sum).await?[0],
        b.download_async(&top1).await?[0],
        b.download_async(&topk).await?[0],
    ];
    group.all_reduce_sum_f64(&mut sums)?;
    let acc = labelled.then_some(sums[1] / n);
    let acc_k = (labelled && config.top_k > 1).then_some(sums[2] / n);
    Ok((sums[0] / n, acc, acc_k))
}

/// Evaluates a model on a data set: (mean loss, top-1 accuracy for labelled data).
pub fn evaluate_dataset<B: Backend>(
    model: &mut Model<B>,
    data: &Dataset,
    loss: Loss,
) -> Result<(f64, Option<f64>)> {
    let b = model.backend().clone();
    let mut resident = Resident::upload(&b, data)?;
    let config = TrainConfig {
        loss,
        batch_size: data.len().min(1024),
        ..TrainConfig::default()
    };
    let (l, acc, _) = pollster::block_on(evaluate(model, &mut resident, &config, &mut Solo))?;
    Ok((l, acc))
}

/// Trains `model` with `opt` on `train`, validating on `val` every epoch.
pub fn fit<B: Backend, O: Optimizer<B>>(
    model: &mut Model<B>,
    opt: &mut O,
    train: &Dataset,
    val: Option<&Dataset>,
    config: &TrainConfig,
) -> Result<History> {
    fit_with_callbacks(model, opt, train, val, config, Vec::new())
}

/// As [`fit`], calling each callback after every epoch.
pub fn fit_with_callbacks<B: Backend, O: Optimizer<B>>(
    model: &mut Model<B>,
    opt: &mut O,
    train: &Dataset,
    val: Option<&Dataset>,
    config: &TrainConfig,
    callbacks: Vec<Callback<'_>>,
) -> Result<History> {
    fit_with_sync(model, opt, train, val, config, callbacks, &mut LocalSync)
}

/// As [`fit_with_callbacks`], with `sync` run on the gradients of every
/// step between backward and the optimizer ([`train_step`]): the hook a
/// data-parallel run synchronises its replicas through. Blocks on
/// [`fit_async`].
pub fn fit_with_sync<B: Backend, O: Optimizer<B>>(
    model: &mut Model<B>,
    opt: &mut O,
    train: &Dataset,
    val: Option<&Dataset>,
    config: &TrainConfig,
    callbacks: Vec<Callback<'_>>,
    sync: &mut dyn GradSync<B>,
) -> Result<History> {
    pollster::block_on(fit_async(model, opt, train, val, config, callbacks, sync))
}

/// The training loop as a future: every readback (the loss every
/// `report_every` steps, the epoch's metrics) is awaited rather than
/// blocked on, so a browser page can run it under its event loop. The
/// blocking [`fit`], [`fit_with_callbacks`] and [`fit_with_sync`] wait on it.
///
/// ```
/// use wgtrain::optim::{Optim, Sgd};
/// use wgtrain::train::{fit_async, LocalSync, Report, TrainConfig};
/// use wgtrain::{Cpu, Dataset, Init, Sequential};
/// let data = Dataset::classification(vec![0.0, 1.0, 1.0, 0.0], 2, vec![0, 1], 2).unwrap();
/// let cpu = Cpu::<f32>::new();
/// let mut model = Sequential::new(2).dense(2, Init::XavierUniform).build(&cpu, 0).unwrap();
/// let mut opt = Optim::new(Sgd::default()).unwrap();
/// let config = TrainConfig { epochs: 2, batch_size: 2, report: Report::Quiet, ..TrainConfig::default() };
/// let mut sync = LocalSync;
/// let run = fit_async(&mut model, &mut opt, &data, None, &config, Vec::new(), &mut sync);
/// let history = pollster::block_on(run).unwrap(); // a page would `.await` it
/// assert_eq!(history.epochs.len(), 2);
/// ```
pub async fn fit_async<B: Backend, O: Optimizer<B>>(
    model: &mut Model<B>,
    opt: &mut O,
    train: &Dataset,
    val: Option<&Dataset>,
    config: &TrainConfig,
    callbacks: Vec<Callback<'_>>,
    sync: &mut dyn GradSync<B>,
) -> Result<History> {
    run(model, opt, train, val, config, callbacks, sync, &mut Solo).await
}

/// As [`fit_replica_async`], blocking.
pub fn fit_replica<B: Backend, O: Optimizer<B>>(
    model: &mut Model<B>,
    opt: &mut O,
    train: &Dataset,
    val: Option<&Dataset>,
    config: &TrainConfig,
    callbacks: Vec<Callback<'_>>,
    group: &mut dyn Collective,
) -> Result<History> {
    pollster::block_on(fit_replica_async(
        model, opt, train, val, config, callbacks, group,
    ))
}

/// The training loop of one data-parallel replica: as [`fit_async`], with
/// this replica taking its [`shard`](crate::parallel::shard) of every
/// global batch of `config.batch_size` rows and the gradients summed over
/// `group` before every step (see [`crate::parallel`] for what that
/// guarantees). The replicas start from replica 0's weights; replica 0
/// alone reports progress and writes checkpoints; metrics, early stopping
/// and the callbacks' controls (replica 0's) are the same on every replica.
/// On an error the group is told, so that no other replica waits for this one.
///
/// ```
/// use wgtrain::optim::{Optim, Sgd};
/// use wgtrain::parallel::ThreadGroup;
/// use wgtrain::train::{fit_replica, Report, TrainConfig};
/// use wgtrain::{Cpu, Dataset, Init, Sequential};
/// let data = Dataset::classification(vec![0.0, 1.0, 1.0, 0.0], 2, vec![0, 1], 2).unwrap();
/// let config = TrainConfig { epochs: 2, batch_size: 2, report: Report::Quiet, ..TrainConfig::default() };
/// let losses: Vec<f64> = std::thread::scope(|s| {
///     let runs: Vec<_> = ThreadGroup::new(2).into_iter().map(|mut member| {
///         let (data, config) = (&data, &config);
///         s.spawn(move || {
///             let cpu = Cpu::<f32>::new();
///             let mut model = Sequential::new(2).dense(2, Init::XavierUniform).build(&cpu, 0).unwrap();
///             let mut opt = Optim::new(Sgd::default()).unwrap();
///             let h = fit_replica(&mut model, &mut opt, data, None, config, Vec::new(), &mut member).unwrap();
///             h.epochs[1].train_loss
///         })
///     }).collect();
///     runs.into_iter().map(|r| r.join().unwrap()).collect()
/// });
/// assert_eq!(losses[0], losses[1]); // the same metrics on every replica
/// ```
pub async fn fit_replica_async<B: Backend, O: Optimizer<B>>(
    model: &mut Model<B>,
    opt: &mut O,
    train: &Dataset,
    val: Option<&Dataset>,
    config: &TrainConfig,
    callbacks: Vec<Callback<'_>>,
    group: &mut dyn Collective,
) -> Result<History> {
    let result = run(
        model,
        opt,
        train,
        val,
        config,
        callbacks,
        &mut LocalSync,
        group,
    )
    .await;
    if let Err(e) = &result {
        group.abort(e);
    }
    result
}

/// Sums the step's gradients over the replicas, each weighted by its share
/// of the global batch, then runs the caller's hook.
struct ReplicaSync<'a, B: Backend> {
    group: &'a mut dyn Collective,
    weight: f64,
    then: &'a mut dyn GradSync<B>,
}

impl<B: Backend> GradSync<B> for ReplicaSync<'_, B> {
    fn sync(
        &mut self,
        backend: &B,
        grads: &mut [&mut B::Tensor],
        mut flat: Option<&mut B::Tensor>,
    ) -> Result<()> {
        if self.group.size() > 1 {
            // One transfer of the flat gradient where the backend made one.
            let mut tensors: Vec<&mut B::Tensor> = match flat.as_deref_mut() {
                Some(all) => vec![all],
                None => grads.iter_mut().map(|g| &mut **g).collect(),
            };
            all_reduce_tensors(backend, self.group, &mut tensors, self.weight)?;
        }
        self.then.sync(backend, grads, flat)
    }
}

/// `t ← Σ_replicas weight · t` for each tensor, in one collective, in the
/// backend's precision.
fn all_reduce_tensors<B: Backend>(
    b: &B,
    group: &mut dyn Collective,
    tensors: &mut [&mut B::Tensor],
    weight: f64,
) -> Result<()> {
    let mut at = 0;
    if std::mem::size_of::<B::Scalar>() > 4 {
        let mut host = Vec::new();
        for t in tensors.iter() {
            host.extend(b.download(t)?.into_iter().map(|v| v * weight));
        }
        group.all_reduce_sum_f64(&mut host)?;
        for t in tensors.iter_mut() {
            let n = t.len();
            b.write(t, &host[at..at + n])?;
            at += n;
        }
        return Ok(());
    }
    // f32 end to end: one copy out, one in (the weight applied in f64 and
    // rounded once).
    let mut wire: Vec<f32> = match tensors {
        // The flat gradient: its read-back is the message, no copy.
        [all] => b.download_f32(all)?,
        _ => {
            let mut wire = Vec::new();
            for t in tensors.iter() {
                wire.extend(b.download_f32(t)?);
            }
            wire
        }
    };
    if weight != 1.0 {
        wire.iter_mut()
            .for_each(|v| *v = (*v as f64 * weight) as f32);
    }
    group.all_reduce_sum(&mut wire)?;
    for t in tensors.iter_mut() {
        let n = t.len();
        b.write_f32(t, &wire[at..at + n])?;
        at += n;
    }
    Ok(())
}

/// Makes every replica's parameters (when `parameters`) and batch-norm
/// buffers replica 0's.
fn broadcast_model<B: Backend>(
    model: &mut Model<B>,
    group: &mut dyn Collective,
    parameters: bool,
) -> Result<()> {
    let b = model.backend().clone();
    {
        let (buffers, mut counters) = model.buffers_mut();
        let mut tensors: Vec<&mut B::Tensor> = buffers.into_iter().map(|buf| buf.value).collect();
        let mut counts: Vec<f64> = counters.iter().map(|(_, c)| **c as f64).collect();
        broadcast_tensors(&b, group, &mut tensors, &mut counts, "buffer")?;
        for ((_, c), v) in counters.iter_mut().zip(counts) {
            **c = v as u64;
        }
    }
    if parameters {
        let mut params = model.parameters_mut();
        let mut tensors: Vec<&mut B::Tensor> = params.iter_mut().map(|p| &mut *p.value).collect();
        broadcast_tensors(&b, group, &mut tensors, &mut [], "parameter")?;
    }
    Ok(())
}

/// Replaces `tensors` and the host values `extra` by replica 0's, after
/// checking that every replica holds as many (`what` names them in the error).
fn broadcast_tensors<B: Backend>(
    b: &B,
    group: &mut dyn Collective,
    tensors: &mut [&mut B::Tensor],
    extra: &mut [f64],
    what: &str,
) -> Result<()> {
    let mut host = Vec::new();
    for t in tensors.iter() {
        host.extend(b.download(t)?);
    }
    host.extend_from_slice(extra);
    let mut count = [host.len() as f64];
    group.broadcast_f64(&mut count, 0)?;
    if count[0] != host.len() as f64 {
        return Err(Error::Model(format!(
            "replica {} has {} {what} values, replica 0 has {}: every replica must build the same network",
            group.rank(),
            host.len(),
            count[0]
        )));
    }
    group.broadcast_f64(&mut host, 0)?;
    let mut at = 0;
    for t in tensors.iter_mut() {
        let n = t.len();
        b.write(t, &host[at..at + n])?;
        at += n;
    }
    extra.copy_from_slice(&host[at..]);
    Ok(())
}

/// The loop behind [`fit_async`] (one replica, `group` = [`Solo`]) and
/// [`fit_replica_async`]: [`TrainConfig::weight_noise`] holds for the run
/// only, and the model's own setting is back afterwards, error or not.
#[allow(clippy::too_many_arguments)]
async fn run<B: Backend, O: Optimizer<B>>(
    model: &mut Model<B>,
    opt: &mut O,
    train: &Dataset,
    val: Option<&Dataset>,
    config: &TrainConfig,
    callbacks: Vec<Callback<'_>>,
    sync: &mut dyn GradSync<B>,
    group: &mut dyn Collective,
) -> Result<History> {
    let own = model.weight_noise();
    if let Some(std) = config.weight_noise {
        model.set_weight_noise(std)?;
    }
    let result = run_loop(model, opt, train, val, config, callbacks, sync, group).await;
    model.set_weight_noise(own)?;
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_loop<B: Backend, O: Optimizer<B>>(
    model: &mut Model<B>,
    opt: &mut O,
    train: &Dataset,
    val: Option<&Dataset>,
    config: &TrainConfig,
    mut callbacks: Vec<Callback<'_>>,
    sync: &mut dyn GradSync<B>,
    group: &mut dyn Collective,
) -> Result<History> {
    let (rank, replicas) = (group.rank(), group.size());
    validate(
        config,
        model.spec().input_width(),
        model.spec().output_width(),
        train,
        val,
        replicas,
    )?;
    if !model.buffers_mut().0.is_empty() {
        check_batch_norm_batches(
            config.batch_size,
            train.len(),
            replicas,
            config.accumulation,
        )?;
    }
    // Replica 0 speaks and writes for the run.
    let (report, checkpoint_dir) = if rank == 0 {
        (config.report, config.checkpoint_dir.as_ref())
    } else {
        (Report::Quiet, None)
    };
    let b = model.backend().clone();
    let sets = checkpoint_dir
        .map(|dir| sets::Sets::open(dir))
        .transpose()?;
    let mut base_lr = opt.lr();
    let step_options = StepOptions {
        loss: config.loss,
        bias_group: config.bias_group,
        max_norm: config.max_norm,
    };
    let mut state = LoopState::default();
    let mut history = History::default();
    // The verified current set of the folder resumed from.
    let resume_set = config
        .resume_from
        .as_deref()
        .map(sets::verified)
        .transpose()?;
    if let Some(dir) = &resume_set {
        checkpoint::load_model(&dir.join(LAST), model)?;
        let (opt_state, meta) = checkpoint::load_optimizer(&dir.join(OPTIMIZER))?;
        check_optimizer_state(model, &opt_state, &dir.join(OPTIMIZER))?;
        opt.import_state(&b, &opt_state)?;
        state = LoopState::from_metadata(&meta, &dir.join(OPTIMIZER))?;
        let path = dir.join("history.json");
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        history = History::from_json(&text, &path)?;
    }
    if replicas > 1 {
        broadcast_model(model, group, true)?;
    }
    check_parameters(model, "before training").await?;
    let mut health = Health::new(&b, config.report_every)?;

    let mut train_data = Resident::upload(&b, train)?;
    let mut augmenter = config
        .augment
        .map(|a| {
            if a.image_len() != train.dim() {
                return Err(Error::Shape {
                    op: "augment",
                    detail: format!(
                        "{}×{}×{} images for samples of {} features",
                        a.channels,
                        a.height,
                        a.width,
                        train.dim()
                    ),
                });
            }
            crate::ops::augment::Augmenter::new(&b, a)
        })
        .transpose()?;
    let mut val_data = val.map(|v| Resident::upload(&b, v)).transpose()?;
    let labelled = train.classes().is_some();
    let wants_accuracy = labelled && callbacks.iter().any(|cb| cb.wants_steps());
    let (mut loss_sum, mut correct) = (b.zeros(1, 1)?, b.zeros(1, 1)?);
    let mut best: Vec<B::Tensor> = Vec::new();
    if let (Some(dir), Some(_)) = (&resume_set, state.best_epoch) {
        // The best weights so far live in best.safetensors; keep them at hand.
        let current = {
            let mut snap = Vec::new();
            model.save_snapshot(&mut snap)?;
            snap
        };
        let (step, seed) = (model.step(), model.dropout_seed());
        checkpoint::load_model(&dir.join(BEST), model)?;
        model.save_snapshot(&mut best)?;
        model.restore_snapshot(&current)?;
        model.set_step(step);
        model.set_dropout_seed(seed);
    }

    let mut verifier = config
        .verify_every
        .map(|n| verify::Verifier::new(model, n, config.verify_tolerance))
        .transpose()?;
    // The loss-weighted sampler's per-row losses, by batch size.
    let mut per_row: HashMap<usize, B::Tensor> = HashMap::new();
    let weigh_losses = matches!(config.sampler, Sampler::LossWeighted { .. });
    let mut stats = config
        .layer_stats
        .then(|| LayerStats::new(model, val.unwrap_or(train)))
        .transpose()?;
    for epoch in state.epochs_done..config.epochs {
        let lr_at = |t: usize| config.schedule.as_ref().map_or(base_lr, |s| s.lr(t));
        if config.schedule_unit == ScheduleUnit::Epoch {
            opt.set_lr(lr_at(epoch))?;
        }
        let slices = train_data.epoch_sampled(
            &b,
            config.batch_size,
            config.sampler,
            config.shuffle,
            epoch_seed(config.seed, epoch),
        )?;
        let bar = progress_bar(report, slices.len(), epoch + 1, config.epochs);
        b.fill(&mut loss_sum, 0.0)?;
        b.fill(&mut correct, 0.0)?;
        let start = Instant::now();
        // Rows of the global batches so far, over all replicas.
        let mut seen = 0usize;
        for (step, s) in slices.iter().enumerate() {
            if config.schedule_unit == ScheduleUnit::Iteration {
                opt.set_lr(lr_at(state.steps_done))?;
            }
            let rows = shard(s.rows, rank, replicas);
            let mut replica_sync = ReplicaSync {
                group: &mut *group,
                weight: rows.len() as f64 / s.rows as f64,
                then: &mut *sync,
            };
            match s.rows(rows.clone()) {
                Some(mine) => {
                    // The micro-batches of this replica's share (one part
                    // without accumulation).
                    let parts: Vec<resident::Slice> = (0..config.accumulation)
                        .filter_map(|j| mine.rows(shard(mine.rows, j, config.accumulation)))
                        .collect();
                    if parts.len() > 1 {
                        model.zero_grad()?;
                    }
                    let verifying = match &mut verifier {
                        Some(v) if v.due(state.steps_done + 1) => {
                            v.begin(model, opt)?;
                            true
                        }
                        _ => false,
                    };
                    for part in &parts {
                        model.set_first_row((rows.start + part.offset - mine.offset) as u64);
                        let samples = augmenter.as_ref().map(|_| train_data.sample_ids(*part));
                        let (x, target) = train_data.gather(&b, *part)?;
                        let x = match (&mut augmenter, samples) {
                            (Some(a), Some(samples)) => {
                                a.apply(&b, x, &samples, config.seed, epoch as u64)?
                            }
                            _ => x,
                        };
                        if parts.len() == 1 {
                            model.forward_backward(x, config.loss, target)?;
                        } else {
                            let weight = part.rows as f64 / mine.rows as f64;
                            model.accumulate_backward(x, config.loss, target, weight)?;
                        }
                        let loss = model.loss_tensor(part.rows).expect("set by the pass");
                        b.axpy(part.rows as f64, loss, &mut loss_sum)?;
                        if weigh_losses {
                            let out = match per_row.entry(part.rows) {
                                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                                std::collections::hash_map::Entry::Vacant(e) => {
                                    e.insert(b.zeros(part.rows, 1)?)
                                }
                            };
                            let pred = model.output(part.rows).expect("set by forward");
                            b.loss_per_row(config.loss, pred, target, out)?;
                        }
                        if let Some(v) = verifier.as_mut().filter(|_| verifying) {
                            let first = (rows.start + part.offset - mine.offset) as u64;
                            let weight = part.rows as f64 / mine.rows as f64;
                            v.record_part(&b, x, target, loss, first, weight)?;
                        }
                        if let crate::Target::Labels(labels) = target {
                            let out = model.output(part.rows).expect("set by forward");
                            b.count_top_k(out, labels, 1, &mut correct)?;
                        }
                        if let Some(losses) = per_row.get(&part.rows).filter(|_| weigh_losses) {
                            train_data.record_losses(&b, *part, losses)?;
                        }
                    }
                    let last = parts.last().expect("accumulation ≤ rows").rows;
                    step::apply_gradients(model, opt, &step_options, &mut replica_sync)?;
                    if let Some(v) = verifier.as_mut().filter(|_| verifying) {
                        if let Some(record) =
                            v.finish(model, &step_options, state.steps_done + 1)?
                        {
                            history.verifications.push(record);
                        }
                    }
                    health.record_loss(&b, model.loss_tensor(last))?;
                    health.record_parameters(model)?;
                    if let Some(stats) = &mut stats {
                        stats.record_gradients(model)?;
                    }
                }
                // The last batch had fewer rows than there are replicas:
                // this one adds nothing but still takes the step.
                None => {
                    skip_step(model, opt, &step_options, &mut replica_sync)?;
                    health.record_loss(&b, None)?;
                    health.record_parameters(model)?;
                    if let Some(stats) = &mut stats {
                        stats.record_gradients(model)?;
                    }
                }
            }
            state.steps_done += 1;
            seen += s.rows;
            if (step + 1) % config.report_every == 0 || step + 1 == slices.len() {
                if let Some(bad) = health.check(&b, group).await? {
                    if let Some(bar) = &bar {
                        bar.abandon();
                    }
                    // The window ends at this step; `bad.step` counts within it.
                    let window = (step % config.report_every) + 1;
                    return Err(diverged(
                        model,
                        epoch + 1,
                        step + 2 - window + bad.step,
                        bad.what,
                        bad.value,
                    )
                    .await);
                }
                let mut total = [b.download_async(&loss_sum).await?[0], 0.0];
                if wants_accuracy {
                    total[1] = b.download_async(&correct).await?[0];
                }
                group.all_reduce_sum_f64(&mut total)?;
                let record = StepRecord {
                    epoch: epoch + 1,
                    step: step + 1,
                    steps: slices.len(),
                    steps_done: state.steps_done,
                    train_loss: total[0] / seen as f64,
                    train_accuracy: wants_accuracy.then(|| total[1] / seen as f64),
                    samples_per_sec: seen as f64 / start.elapsed().as_secs_f64(),
                };
                if let Some(bar) = &bar {
                    bar.set_position(step as u64 + 1);
                    bar.set_message(format!(
                        "loss {:.4}  {:.0} samples/s",
                        record.train_loss, record.samples_per_sec
                    ));
                }
                for cb in callbacks.iter_mut().filter(|cb| cb.wants_steps()) {
                    cb.on_steps(&record);
                }
                // A page repaints only when the loop hands the event loop back.
                #[cfg(all(feature = "web", target_arch = "wasm32"))]
                crate::web::yield_to_event_loop().await;
            }
        }
        b.synchronize()?;
        if weigh_losses {
            train_data.collect_losses(&b, group)?;
        }
        // Every replica has finished the epoch once this sum is taken: the
        // checkpoints below are of an epoch they all completed.
        let mut sums = [
            b.download_async(&loss_sum).await?[0],
            b.download_async(&correct).await?[0],
        ];
        group.all_reduce_sum_f64(&mut sums)?;
        let seconds = start.elapsed().as_secs_f64();
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let train_loss = sums[0] / seen as f64;
        let train_accuracy = labelled.then_some(sums[1] / seen as f64);
        let (val_loss, val_accuracy, val_top_k) = match &mut val_data {
            Some(v) => {
                let (l, a, k) = evaluate(model, v, config, group).await?;
                if !l.is_finite() {
                    return Err(Error::Diverged {
                        epoch: epoch + 1,
                        step: slices.len(),
                        what: "the validation loss".into(),
                        value: l,
                    });
                }
                (Some(l), a, k)
            }
            None => (None, None, None),
        };
        let lambda = opt.l2_coefficient();
        let objective = if lambda > 0.0 {
            Some(train_loss + lambda * crate::diagnostics::l2_penalty(model)?)
        } else {
            None
        };
        let (grad_norms, dead_relu) = match &mut stats {
            Some(stats) => stats.epoch(model, slices.len())?,
            None => (Vec::new(), Vec::new()),
        };
        let record = EpochRecord {
            epoch: epoch + 1,
            train_loss,
            train_accuracy,
            val_loss,
            val_accuracy,
            val_top_k,
            lr: opt.lr(),
            seconds,
            samples_per_sec: seen as f64 / seconds,
            objective,
            grad_norms,
            dead_relu,
        };
        print_record(report, &record, config.epochs);
        if let Some(warning) = config.gap_warning.and_then(|g| gap_warning(&record, g)) {
            // Once per run: the gap usually stays once it opens.
            if history.warnings.is_empty() {
                if report != Report::Quiet {
                    eprintln!("warning: {warning}");
                }
                history.warnings.push(warning);
            }
        }
        history.epochs.push(record.clone());
        state.epochs_done = epoch + 1;

        let mut stop = false;
        // The best epoch is early stopping's monitor's, or else the lowest
        // validation loss (training loss without validation data):
        // best.safetensors changes only when it improves.
        let (monitor, min_delta) = config
            .early_stopping
            .as_ref()
            .map_or((Monitor::ValLoss, 0.0), |es| (es.monitor, es.min_delta));
        let metric = match monitor {
            Monitor::ValLoss => val_loss.or(Some(train_loss)),
            Monitor::ValAccuracy => val_accuracy.map(|a| -a),
        }
        .ok_or_else(|| Error::Model("early stopping on accuracy needs class labels".into()))?;
        let improved = state
            .best_metric
            .is_none_or(|best| metric < best - min_delta);
        if improved {
            state.best_metric = Some(metric);
            state.best_epoch = Some(epoch + 1);
            state.bad_epochs = 0;
            if config.early_stopping.is_some_and(|es| es.restore_best) {
                model.save_snapshot(&mut best)?;
            }
        } else if let Some(es) = &config.early_stopping {
            state.bad_epochs += 1;
            stop = state.bad_epochs >= es.patience;
        }
        if let Some(sets) = &sets {
            sets.commit(epoch + 1, |set| {
                checkpoint::save_model(&set.join(LAST), model)?;
                if improved {
                    checkpoint::save_model(&set.join(BEST), model)?;
                }
                checkpoint::save_optimizer(
                    &set.join(OPTIMIZER),
                    &opt.export_state(&b)?,
                    state.to_metadata(),
                )?;
                history.save(set)
            })?;
        }
        // [stop, new rate or NaN]: replica 0's controls, for every replica.
        let mut control = [0.0, f64::NAN];
        for cb in callbacks.iter_mut() {
            match cb.on_epoch(&record) {
                Control::Continue => {}
                Control::Stop => control[0] = 1.0,
                Control::SetLr(lr) => control[1] = lr,
            }
        }
        if replicas > 1 {
            group.broadcast_f64(&mut control, 0)?;
        }
        stop |= control[0] != 0.0;
        if !control[1].is_nan() {
            opt.set_lr(control[1])?;
            if config.schedule.is_none() {
                base_lr = control[1];
            }
        }
        if stop {
            history.stopped_early = true;
            break;
        }
    }
    if let Some(es) = &config.early_stopping {
        if es.restore_best && !best.is_empty() {
            model.restore_snapshot(&best)?;
            history.best_epoch = state.best_epoch;
        }
    }
    if let Some(sets) = &sets {
        // The final history (best epoch, early stop) in a set of its own.
        sets.commit(state.epochs_done, |set| history.save(set))?;
    }
    Ok(history)
}

/// The warning for a train/validation gap past `max_gap`, if there is one
/// (see [`TrainConfig::gap_warning`]).
fn gap_warning(r: &EpochRecord, max_gap: f64) -> Option<String> {
    match (r.train_accuracy, r.val_accuracy, r.val_loss) {
        (Some(train), Some(val), _) if train - val > max_gap => Some(format!(
            "epoch {}: training accuracy {:.2}% is {:.2} points above validation accuracy \
             {:.2}% (more than {:.2}): the model is overfitting; more regularisation \
             (weight decay, dropout, augmentation) or early stopping would help",
            r.epoch,
            100.0 * train,
            100.0 * (train - val),
            100.0 * val,
            100.0 * max_gap
        )),
        (None, _, Some(val)) if val - r.train_loss > max_gap * r.train_loss => Some(format!(
            "epoch {}: validation loss {val:.4} is more than {:.0}% above training loss {:.4}: \
             the model is overfitting",
            r.epoch,
            100.0 * max_gap,
            r.train_loss
        )),
        _ => None,
    }
}

/// A value per parameter tensor or layer, by name.
type NamedValues = Vec<(String, f64)>;

/// What [`TrainConfig::layer_stats`] adds up during an epoch: each
/// gradient's squared norm per step, in one `1×1` slot per parameter
/// (views of one tensor where the backend makes them, for one readback),
/// and the probe batch the dead ReLUs are counted on.
struct LayerStats<B: Backend> {
    names: Vec<String>,
    slots: crate::backend::FlatTensors<B::Tensor>,
    probe: B::Tensor,
}

impl<B: Backend> LayerStats<B> {
    fn new(model: &mut Model<B>, data: &Dataset) -> Result<Self> {
        let b = model.backend().clone();
        let names = model.parameter_names();
        let slots = b.zeros_flat(&vec![(1, 1); names.len()])?;
        let rows = data.len().min(PROBE_ROWS);
        let probe = b.upload(rows, data.dim(), &data.features()[..rows * data.dim()])?;
        Ok(LayerStats {
            names,
            slots,
            probe,
        })
    }

    /// Adds this step's squared gradient norms.
    fn record_gradients(&mut self, model: &mut Model<B>) -> Result<()> {
        let b = model.backend().clone();
        for (p, slot) in model.parameters_mut().iter().zip(&mut self.slots.views) {
            b.accumulate_sum_squares(p.grad, slot)?;
        }
        Ok(())
    }

    /// The epoch's RMS gradient norms over `steps` steps and the dead-ReLU
    /// fractions on the probe batch; clears the sums for the next epoch.
    fn epoch(&mut self, model: &mut Model<B>, steps: usize) -> Result<(NamedValues, NamedValues)> {
        let b = model.backend().clone();
        let sums = match &self.slots.whole {
            Some(all) => {
                let sums = self.slots.firsts(&b.download(all)?);
                b.fill(self.slots.whole.as_mut().expect("matched"), 0.0)?;
                sums
            }
            None => {
                let mut sums = Vec::with_capacity(self.names.len());
                for slot in &mut self.slots.views {
                    sums.push(b.download(slot)?[0]);
                    b.fill(slot, 0.0)?;
                }
                sums
            }
        };
        let norms = self
            .names
            .iter()
            .zip(sums)
            .map(|(n, s)| (n.clone(), (s / steps as f64).sqrt()))
            .collect();
        Ok((norms, model.dead_relu_fractions(&self.probe)?))
    }
}

/// The error for a step whose loss or parameters are not finite, naming
/// the first non-finite parameter tensor when it is the parameters.
async fn diverged<B: Backend>(
    model: &mut Model<B>,
    epoch: usize,
    step: usize,
    what: &str,
    value: f64,
) -> Error {
    let what = match check_parameters(model, "").await {
        Err(Error::NonFinite { what: name, .. }) if what == "the parameters" => {
            name.trim_end().to_string()
        }
        _ => what.to_string(),
    };
    Error::Diverged {
        epoch,
        step,
        what,
        value,
    }
}

fn progress_bar(
    report: Report,
    steps: usize,
    epoch: usize,
    epochs: usize,
) -> Option<indicatif::ProgressBar> {
    if report != Report::Progress {
        return None;
    }
    let bar = indicatif::ProgressBar::new(steps as u64);
    let style =
        indicatif::ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(format!("{epoch}/{epochs}"));
    Some(bar)
}

fn print_record(report: Report, r: &EpochRecord, epochs: usize) {
    let pct = |v: Option<f64>| v.map_or("   -   ".to_string(), |a| format!("{:6.2}%", 100.0 * a));
    let num = |v: Option<f64>| v.map_or("   -  ".to_string(), |l| format!("{l:.4}"));
    match report {
        Report::Progress | Report::Lines => println!(
            "epoch {:>3}/{epochs}  train loss {:.4}{} acc {}  val loss {} acc {}{}  lr {:.2e}  {:.1}s  {:.0} samples/s",
            r.epoch,
            r.train_loss,
            r.objective.map_or(String::new(), |o| format!(" (with λΩ {o:.4})")),
            pct(r.train_accuracy),
            num(r.val_loss),
            pct(r.val_accuracy),
            r.val_top_k.map_or(String::new(), |k| format!(" top-k {:.2}%", 100.0 * k)),
            r.lr,
            r.seconds,
            r.samples_per_sec
        ),
        Report::JsonLines => println!("{}", r.to_json()),
        Report::Quiet => {}
    }
}
