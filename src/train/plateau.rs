//! `torch.optim.lr_scheduler.ReduceLROnPlateau`: multiply the learning rate
//! by `factor` once a metric has stopped improving for `patience` steps,
//! then wait `cooldown` steps before counting again. Stepped per epoch as a
//! [`TrainCallback`] on a validation metric, or by hand ([`ReduceLrOnPlateau::step`])
//! on any metric, per epoch or per optimizer step.

use super::{Control, EpochRecord, Monitor, TrainCallback};
use crate::optim::require;
use crate::Result;

/// Whether a lower or a higher metric is better (PyTorch's `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlateauMode {
    /// Lower is better (`'min'`: a loss).
    Min,
    /// Higher is better (`'max'`: an accuracy).
    Max,
}

/// How `threshold` measures an improvement (PyTorch's `threshold_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThresholdMode {
    /// Better than `best · (1 ∓ threshold)` (`'rel'`).
    Relative,
    /// Better than `best ∓ threshold` (`'abs'`).
    Absolute,
}

/// The settings, with PyTorch's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlateauConfig {
    /// Lower or higher is better.
    pub mode: PlateauMode,
    /// The rate is multiplied by this, in (0, 1).
    pub factor: f64,
    /// Steps without improvement that are tolerated; the next one reduces.
    pub patience: usize,
    /// The smallest improvement that counts.
    pub threshold: f64,
    /// Relative or absolute threshold.
    pub threshold_mode: ThresholdMode,
    /// Steps after a reduction before bad steps count again.
    pub cooldown: usize,
    /// The rate never goes below this.
    pub min_lr: f64,
    /// A reduction smaller than this is not made.
    pub eps: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Relative,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

/// The scheduler's state.
///
/// ```
/// use wgtrain::train::{PlateauConfig, ReduceLrOnPlateau};
/// let mut plateau = ReduceLrOnPlateau::new(PlateauConfig { patience: 1, ..Default::default() }).unwrap();
/// let mut lr = 0.1;
/// for loss in [1.0, 0.9, 0.95, 0.92] {
///     lr = plateau.step(loss, lr);
/// }
/// // 0.95 and 0.92 are not below 0.9: the second bad step reduces.
/// assert!((lr - 0.01).abs() < 1e-15);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ReduceLrOnPlateau {
    config: PlateauConfig,
    best: f64,
    bad_steps: usize,
    cooldown_left: usize,
    /// What the callback reads from each epoch's record.
    monitor: Monitor,
}

impl ReduceLrOnPlateau {
    /// A scheduler; a `factor` outside (0, 1), a negative or non-finite
    /// threshold, `min_lr` or `eps` is an [`Error::InvalidParameter`].
    pub fn new(config: PlateauConfig) -> Result<Self> {
        let f = config.factor;
        require("plateau factor", f, f > 0.0 && f < 1.0, "in (0, 1)")?;
        for (name, v) in [
            ("plateau threshold", config.threshold),
            ("plateau min_lr", config.min_lr),
            ("plateau eps", config.eps),
        ] {
            require(name, v, v >= 0.0 && v.is_finite(), "finite and ≥ 0")?;
        }
        let monitor = match config.mode {
            PlateauMode::Min => Monitor::ValLoss,
            PlateauMode::Max => Monitor::ValAccuracy,
        };
        Ok(ReduceLrOnPlateau {
            config,
            best: Self::worst(config.mode),
            bad_steps: 0,
            cooldown_left: 0,
            monitor,
        })
    }

    /// As a [`TrainCallback`], watch this validation metric (its mode is
    /// the metric's: lower loss, higher accuracy).
    pub fn watching(mut self, monitor: Monitor) -> Self {
        self.monitor = monitor;
        self.config.mode = match monitor {
            Monitor::ValLoss => PlateauMode::Min,
            Monitor::ValAccuracy => PlateauMode::Max,
        };
        self.best = Self::worst(self.config.mode);
        self
    }

    fn worst(mode: PlateauMode) -> f64 {
        match mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        }
    }

    /// The settings.
    pub fn config(&self) -> &PlateauConfig {
        &self.config
    }

    /// The best metric seen so far.
    pub fn best(&self) -> f64 {
        self.best
    }

    fn is_better(&self, metric: f64) -> bool {
        let (best, t) = (self.best, self.config.threshold);
        match (self.config.mode, self.config.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Relative) => metric < best * (1.0 - t),
            (PlateauMode::Min, ThresholdMode::Absolute) => metric < best - t,
            (PlateauMode::Max, ThresholdMode::Relative) => metric > best * (1.0 + t),
            (PlateauMode::Max, ThresholdMode::Absolute) => metric > best + t,
        }
    }

    /// One step on `metric` with the rate now `lr`: the rate to use next
    /// (PyTorch's `scheduler.step(metric)`, in its order of checks).
    pub fn step(&mut self, metric: f64, lr: f64) -> f64 {
        if self.is_better(metric) {
            self.best = metric;
            self.bad_steps = 0;
        } else {
            self.bad_steps += 1;
        }
        if self.cooldown_left > 0 {
            // Bad steps during the cooldown do not count.
            self.cooldown_left -= 1;
            self.bad_steps = 0;
        }
        if self.bad_steps > self.config.patience {
            self.cooldown_left = self.config.cooldown;
            self.bad_steps = 0;
            let reduced = (lr * self.config.factor).max(self.config.min_lr);
            if lr - reduced > self.config.eps {
                return reduced;
            }
        }
        lr
    }
}

impl TrainCallback for ReduceLrOnPlateau {
    /// Steps on the watched validation metric (an epoch without
    /// validation data changes nothing).
    fn on_epoch(&mut self, record: &EpochRecord) -> Control {
        let metric = match self.monitor {
            Monitor::ValLoss => record.val_loss,
            Monitor::ValAccuracy => record.val_accuracy,
        };
        match metric {
            Some(m) => match self.step(m, record.lr) {
                lr if lr != record.lr => Control::SetLr(lr),
                _ => Control::Continue,
            },
            None => Control::Continue,
        }
    }
}
