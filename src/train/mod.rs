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

mod history;
#[cfg(feature = "plot")]
mod plot;
mod resident;
mod step;

/// Also what the matmul kernel cache (`gpu::MatmulCache`) is written with.
pub(crate) use history::write_atomic;
pub use history::{EpochRecord, History};
#[cfg(feature = "plot")]
pub use plot::plot_history;
pub use step::{train_step, GradSync, LocalSync, StepOptions};

use crate::backend::{Backend, Loss};
use crate::checkpoint;
use crate::data::Dataset;
use crate::optim::Optimizer;
use crate::schedule::Schedule;
use crate::{Error, Model, Result};
use resident::Resident;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
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

/// A per-epoch callback: sees the epoch's record, may stop the run or
/// change the learning rate.
///
/// ```
/// use wgtrain::train::{Callback, Control};
/// // Halve the rate whenever validation loss rose.
/// let mut last = f64::INFINITY;
/// let mut lr = 1e-3;
/// let halve: Callback = Box::new(move |r| {
///     let rose = r.val_loss.is_some_and(|l| l > last);
///     last = r.val_loss.unwrap_or(last);
///     if rose { lr /= 2.0; Control::SetLr(lr) } else { Control::Continue }
/// });
/// ```
pub type Callback<'a> = Box<dyn FnMut(&EpochRecord) -> Control + 'a>;

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
    /// Progress output.
    pub report: Report,
    /// Steps between loss readbacks inside an epoch (a readback waits for
    /// the device); NaN is detected within this many steps.
    pub report_every: usize,
    /// Write `last.safetensors`, `best.safetensors`, the optimizer state and
    /// the history here after every epoch.
    pub checkpoint_dir: Option<PathBuf>,
    /// Continue the run whose checkpoints are in this folder.
    pub resume_from: Option<PathBuf>,
    /// The optimizer group for biases and batch-norm parameters (e.g. one
    /// made with `GroupOptions::no_decay()`); group 0 when `None`.
    pub bias_group: Option<usize>,
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
            report: Report::Lines,
            report_every: 20,
            checkpoint_dir: None,
            resume_from: None,
            bias_group: None,
        }
    }
}

/// File names inside a checkpoint folder.
pub const LAST: &str = "last.safetensors";
/// The best epoch's weights (early stopping's monitor).
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
) -> Result<()> {
    if config.batch_size == 0 || config.batch_size > train.len() {
        return Err(Error::InvalidParameter {
            name: "batch_size",
            value: config.batch_size as f64,
            allowed: "between 1 and the number of training samples",
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

/// Seeds epoch `e`'s shuffle: a function of the run's seed and `e` alone,
/// so a resumed run draws the same orders as an uninterrupted one.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed ^ (epoch as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Evaluates `data` in batches on the device; returns (mean loss, top-1, top-k).
async fn evaluate<B: Backend>(
    model: &mut Model<B>,
    data: &mut Resident<B>,
    config: &TrainConfig,
) -> Result<(f64, Option<f64>, Option<f64>)> {
    let b = model.backend().clone();
    let (mut loss_sum, mut top1, mut topk) = (b.zeros(1, 1)?, b.zeros(1, 1)?, b.zeros(1, 1)?);
    let slices = data.epoch(&b, config.batch_size.max(256), false, 0)?;
    let labelled = data.classes().is_some();
    for s in slices {
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
    let loss = b.download_async(&loss_sum).await?[0] / n;
    let acc = if labelled {
        Some(b.download_async(&top1).await?[0] / n)
    } else {
        None
    };
    let acc_k = if labelled && config.top_k > 1 {
        Some(b.download_async(&topk).await?[0] / n)
    } else {
        None
    };
    Ok((loss, acc, acc_k))
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
    let (l, acc, _) = pollster::block_on(evaluate(model, &mut resident, &config))?;
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
    mut callbacks: Vec<Callback<'_>>,
    sync: &mut dyn GradSync<B>,
) -> Result<History> {
    validate(
        config,
        model.spec().input_width(),
        model.spec().output_width(),
        train,
        val,
    )?;
    let b = model.backend().clone();
    if let Some(dir) = &config.checkpoint_dir {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
    }
    let mut base_lr = opt.lr();
    let step_options = StepOptions {
        loss: config.loss,
        bias_group: config.bias_group,
    };
    let mut state = LoopState::default();
    let mut history = History::default();
    if let Some(dir) = &config.resume_from {
        checkpoint::load_model(&dir.join(LAST), model)?;
        let (opt_state, meta) = checkpoint::load_optimizer(&dir.join(OPTIMIZER))?;
        opt.import_state(&b, &opt_state)?;
        state = LoopState::from_metadata(&meta, &dir.join(OPTIMIZER))?;
        let path = dir.join("history.json");
        let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        history = History::from_json(&text, &path)?;
    }

    let mut train_data = Resident::upload(&b, train)?;
    let mut val_data = val.map(|v| Resident::upload(&b, v)).transpose()?;
    let labelled = train.classes().is_some();
    let (mut loss_sum, mut correct) = (b.zeros(1, 1)?, b.zeros(1, 1)?);
    let mut best: Vec<B::Tensor> = Vec::new();
    if let (Some(dir), Some(_)) = (&config.resume_from, state.best_epoch) {
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

    for epoch in state.epochs_done..config.epochs {
        let lr_at = |t: usize| config.schedule.as_ref().map_or(base_lr, |s| s.lr(t));
        if config.schedule_unit == ScheduleUnit::Epoch {
            opt.set_lr(lr_at(epoch))?;
        }
        let slices = train_data.epoch(
            &b,
            config.batch_size,
            config.shuffle,
            epoch_seed(config.seed, epoch),
        )?;
        let bar = progress_bar(config.report, slices.len(), epoch + 1, config.epochs);
        b.fill(&mut loss_sum, 0.0)?;
        b.fill(&mut correct, 0.0)?;
        let start = Instant::now();
        let mut seen = 0usize;
        for (step, s) in slices.iter().enumerate() {
            if config.schedule_unit == ScheduleUnit::Iteration {
                opt.set_lr(lr_at(state.steps_done))?;
            }
            let (x, target) = train_data.gather(&b, *s)?;
            train_step(model, opt, x, target, &step_options, sync)?;
            b.axpy(
                s.rows as f64,
                model.loss_tensor(s.rows).expect("set by forward_backward"),
                &mut loss_sum,
            )?;
            if let crate::Target::Labels(labels) = target {
                b.count_top_k(
                    model.output(s.rows).expect("set by forward"),
                    labels,
                    1,
                    &mut correct,
                )?;
            }
            state.steps_done += 1;
            seen += s.rows;
            if (step + 1) % config.report_every == 0 || step + 1 == slices.len() {
                let mean = b.download_async(&loss_sum).await?[0] / seen as f64;
                if !mean.is_finite() {
                    if let Some(bar) = &bar {
                        bar.abandon();
                    }
                    return Err(Error::Diverged {
                        epoch: epoch + 1,
                        step: step + 1,
                        value: mean,
                    });
                }
                if let Some(bar) = &bar {
                    bar.set_position(step as u64 + 1);
                    bar.set_message(format!(
                        "loss {mean:.4}  {:.0} samples/s",
                        seen as f64 / start.elapsed().as_secs_f64()
                    ));
                }
            }
        }
        b.synchronize()?;
        let seconds = start.elapsed().as_secs_f64();
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let train_loss = b.download_async(&loss_sum).await?[0] / seen as f64;
        let train_accuracy = if labelled {
            Some(b.download_async(&correct).await?[0] / seen as f64)
        } else {
            None
        };
        let (val_loss, val_accuracy, val_top_k) = match &mut val_data {
            Some(v) => {
                let (l, a, k) = evaluate(model, v, config).await?;
                (Some(l), a, k)
            }
            None => (None, None, None),
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
        };
        print_record(config.report, &record, config.epochs);
        history.epochs.push(record.clone());
        state.epochs_done = epoch + 1;

        let mut stop = false;
        let mut improved = false;
        if let Some(es) = &config.early_stopping {
            let metric = match es.monitor {
                Monitor::ValLoss => val_loss,
                Monitor::ValAccuracy => val_accuracy.map(|a| -a),
            }
            .ok_or_else(|| Error::Model("early stopping on accuracy needs class labels".into()))?;
            improved = state
                .best_metric
                .is_none_or(|best| metric < best - es.min_delta);
            if improved {
                state.best_metric = Some(metric);
                state.best_epoch = Some(epoch + 1);
                state.bad_epochs = 0;
                if es.restore_best {
                    model.save_snapshot(&mut best)?;
                }
            } else {
                state.bad_epochs += 1;
                stop = state.bad_epochs >= es.patience;
            }
        }
        if let Some(dir) = &config.checkpoint_dir {
            checkpoint::save_model(&dir.join(LAST), model)?;
            if improved || config.early_stopping.is_none() {
                checkpoint::save_model(&dir.join(BEST), model)?;
            }
            checkpoint::save_optimizer(
                &dir.join(OPTIMIZER),
                &opt.export_state(&b)?,
                state.to_metadata(),
            )?;
            history.save(dir)?;
        }
        for cb in callbacks.iter_mut() {
            match cb(&record) {
                Control::Continue => {}
                Control::Stop => stop = true,
                Control::SetLr(lr) => {
                    opt.set_lr(lr)?;
                    if config.schedule.is_none() {
                        base_lr = lr;
                    }
                }
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
    if let Some(dir) = &config.checkpoint_dir {
        history.save(dir)?;
    }
    Ok(history)
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
            "epoch {:>3}/{epochs}  train loss {:.4} acc {}  val loss {} acc {}{}  lr {:.2e}  {:.1}s  {:.0} samples/s",
            r.epoch,
            r.train_loss,
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
