//! The learning-rate range test (Smith 2017; `Tuner.lr_find` in PyTorch
//! Lightning): train on a subset with a rate that grows geometrically each
//! step, watch the smoothed loss, stop once it has blown up, and suggest
//! the rate where it fell fastest. Seed 001's advice ("try several
//! log-spaced values on a smaller set") in one short run. The model and the
//! optimizer are put back as they were afterwards.

use super::resident::{Resident, Slice};
use super::step::{train_step, LocalSync, StepOptions};
use crate::backend::{Backend, Loss};
use crate::data::Dataset;
use crate::optim::{require, Optimizer};
use crate::{Model, Result};

/// The sweep, with Lightning's defaults where it has them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrFinder {
    /// The first rate.
    pub start_lr: f64,
    /// The last rate (reached only if the loss has not blown up first).
    pub end_lr: f64,
    /// Steps, one minibatch and one rate each, log-spaced from start to end.
    pub steps: usize,
    /// Rows per minibatch.
    pub batch_size: usize,
    /// The loss trained.
    pub loss: Loss,
    /// Weight of the past in the loss's running average (bias-corrected).
    pub smoothing: f64,
    /// Stop once the smoothed loss exceeds this many times its minimum.
    pub diverge_factor: f64,
    /// Seeds the order of the samples.
    pub seed: u64,
}

impl Default for LrFinder {
    fn default() -> Self {
        LrFinder {
            start_lr: 1e-6,
            end_lr: 1.0,
            steps: 100,
            batch_size: 64,
            loss: Loss::SoftmaxCrossEntropy,
            // Lightning's 0.98 lags by ~50 steps of a 100-step sweep: the
            // curve then sits a decade of rates behind the minibatch losses.
            smoothing: 0.9,
            diverge_factor: 4.0,
            seed: 0,
        }
    }
}

/// What the sweep saw.
#[derive(Clone, Debug, PartialEq)]
pub struct LrFindResult {
    /// The rate of each step taken.
    pub lrs: Vec<f64>,
    /// Each step's minibatch loss.
    pub losses: Vec<f64>,
    /// The running average of the losses, bias-corrected.
    pub smoothed: Vec<f64>,
    /// The rate where the smoothed loss fell fastest against log(rate),
    /// when enough steps were taken to tell.
    pub suggestion: Option<f64>,
    /// The step at which the loss blew up and the sweep stopped.
    pub diverged_at: Option<usize>,
}

impl LrFinder {
    fn validate(&self, samples: usize) -> Result<()> {
        let (start, end) = (self.start_lr, self.end_lr);
        require(
            "lr_find start_lr",
            start,
            start > 0.0 && start.is_finite(),
            "finite and > 0",
        )?;
        require(
            "lr_find end_lr",
            end,
            end > start && end.is_finite(),
            "finite and above start_lr",
        )?;
        require(
            "lr_find steps",
            self.steps as f64,
            self.steps >= 2,
            "at least 2",
        )?;
        require(
            "lr_find batch_size",
            self.batch_size as f64,
            self.batch_size > 0 && self.batch_size <= samples,
            "between 1 and the number of samples",
        )?;
        let s = self.smoothing;
        require("lr_find smoothing", s, (0.0..1.0).contains(&s), "in [0, 1)")?;
        let d = self.diverge_factor;
        require("lr_find diverge_factor", d, d > 1.0, "above 1")?;
        self.loss.validate()
    }

    /// The rate of step `i`.
    fn lr(&self, i: usize) -> f64 {
        let t = i as f64 / (self.steps - 1) as f64;
        self.start_lr * (self.end_lr / self.start_lr).powf(t)
    }
}

/// Runs the range test on `data` with `model` and `opt`, and puts both
/// back (weights, batch-norm statistics, the dropout counter, the
/// optimizer's state and rate) before returning.
///
/// ```
/// use wgtrain::optim::{Optim, Optimizer, Sgd};
/// use wgtrain::train::{lr_find, LrFinder};
/// use wgtrain::{Cpu, Dataset, Init, Sequential};
/// let cpu = Cpu::<f32>::new();
/// let x: Vec<f32> = (0..400).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
/// let labels: Vec<u32> = x.chunks(4).map(|r| (r[0] + r[1] > 0.0) as u32).collect();
/// let data = Dataset::classification(x, 4, labels, 2).unwrap();
/// let mut model = Sequential::new(4).dense(8, Init::HeNormal).relu().dense(2, Init::XavierUniform)
///     .build(&cpu, 0).unwrap();
/// let mut opt = Optim::new(Sgd { lr: 0.01, ..Sgd::default() }).unwrap();
/// let finder = LrFinder { start_lr: 1e-4, end_lr: 10.0, steps: 60, batch_size: 16, ..Default::default() };
/// let found = lr_find(&mut model, &mut opt, &data, &finder).unwrap();
/// let lr = found.suggestion.unwrap();
/// assert!((1e-4..=10.0).contains(&lr));
/// assert_eq!(opt.lr(), 0.01); // put back
/// ```
pub fn lr_find<B: Backend, O: Optimizer<B>>(
    model: &mut Model<B>,
    opt: &mut O,
    data: &Dataset,
    finder: &LrFinder,
) -> Result<LrFindResult> {
    finder.validate(data.len())?;
    let b = model.backend().clone();
    let mut snapshot = Vec::new();
    model.save_snapshot(&mut snapshot)?;
    let (step, lr) = (model.step(), opt.lr());
    let state = opt.export_state(&b)?;
    let result = sweep(model, opt, data, finder);
    model.restore_snapshot(&snapshot)?;
    model.set_step(step);
    opt.import_state(&b, &state)?;
    opt.set_lr(lr)?;
    result
}

fn sweep<B: Backend, O: Optimizer<B>>(
    model: &mut Model<B>,
    opt: &mut O,
    data: &Dataset,
    finder: &LrFinder,
) -> Result<LrFindResult> {
    let b = model.backend().clone();
    let options = StepOptions {
        loss: finder.loss,
        ..StepOptions::default()
    };
    // Resident on the device and gathered there, as `fit` does; a new
    // shuffle whenever the sweep has used every full minibatch.
    let mut resident = Resident::upload(&b, data)?;
    let mut batches = Vec::new().into_iter();
    let mut epoch = 0u64;
    let mut out = LrFindResult {
        lrs: Vec::new(),
        losses: Vec::new(),
        smoothed: Vec::new(),
        suggestion: None,
        diverged_at: None,
    };
    let (mut average, mut best) = (0.0, f64::INFINITY);
    for i in 0..finder.steps {
        let slice = loop {
            if let Some(s) = batches.next() {
                break s;
            }
            let full: Vec<Slice> = resident
                .epoch(&b, finder.batch_size, true, finder.seed.wrapping_add(epoch))?
                .into_iter()
                .filter(|s| s.rows == finder.batch_size)
                .collect();
            batches = full.into_iter();
            epoch += 1;
        };
        let lr = finder.lr(i);
        opt.set_lr(lr)?;
        let (x, target) = resident.gather(&b, slice)?;
        train_step(model, opt, x, target, &options, &mut LocalSync)?;
        let loss = model.last_loss()?;
        average = finder.smoothing * average + (1.0 - finder.smoothing) * loss;
        let smoothed = average / (1.0 - finder.smoothing.powi(i as i32 + 1));
        out.lrs.push(lr);
        out.losses.push(loss);
        out.smoothed.push(smoothed);
        if !smoothed.is_finite() || smoothed > finder.diverge_factor * best {
            out.diverged_at = Some(i);
            break;
        }
        best = best.min(smoothed);
    }
    out.suggestion = steepest(&out.lrs, &out.smoothed);
    Ok(out)
}

/// The rate where `smoothed` falls fastest against log(rate), by central
/// differences, leaving out the first tenth (the average is still settling)
/// and the last point (the blow-up); `None` with fewer than 5 points left.
fn steepest(lrs: &[f64], smoothed: &[f64]) -> Option<f64> {
    let n = smoothed.len().saturating_sub(1);
    let first = (smoothed.len() / 10).max(1);
    if n < first + 5 {
        return None;
    }
    (first..n - 1)
        .map(|i| {
            let slope = (smoothed[i + 1] - smoothed[i - 1]) / (lrs[i + 1].ln() - lrs[i - 1].ln());
            (slope, lrs[i])
        })
        .filter(|(slope, _)| slope.is_finite())
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, lr)| lr)
}
