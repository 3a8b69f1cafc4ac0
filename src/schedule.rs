//! Learning-rate schedules: `lr(t)` for a step counter `t` starting at 0.
//!
//! Whether `t` counts epochs or iterations is the caller's choice: a
//! schedule only maps a counter to a rate. PyTorch's schedulers are usually
//! stepped once per epoch; warm-up is usually counted in iterations. Set the
//! result on the optimizer with
//! [`Optimizer::set_lr`](crate::optim::Optimizer::set_lr) before each step.
//!
//! ```
//! use wgtrain::schedule::Schedule;
//! let s = Schedule::warmup(5, 0.2, Schedule::cosine(0.1, 100, 0.0).unwrap()).unwrap();
//! assert!((s.lr(0) - 0.02).abs() < 1e-15);
//! assert_eq!(s.lr(5), 0.1);
//! ```

use crate::optim::{check_lr, require};
use crate::Result;

/// The decay rate of the inverse and exponential schedules.
fn check_epsilon(epsilon: f64) -> Result<()> {
    require(
        "epsilon",
        epsilon,
        epsilon >= 0.0 && epsilon.is_finite(),
        "finite and ≥ 0",
    )
}

/// A learning-rate schedule. Build one with the constructors, which reject
/// bad values with [`Error::InvalidParameter`](crate::Error::InvalidParameter).
///
/// ```
/// use wgtrain::schedule::Schedule;
/// let s = Schedule::step(0.1, 10, 0.5).unwrap();
/// assert_eq!((s.lr(9), s.lr(10), s.lr(25)), (0.1, 0.05, 0.025));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Schedule {
    /// `η₀` at every t.
    Constant {
        /// The rate.
        lr: f64,
    },
    /// `η₀ · γ^⌊t / step_size⌋`: `torch.optim.lr_scheduler.StepLR`.
    Step {
        /// The initial rate η₀.
        lr: f64,
        /// Steps between decays.
        step_size: usize,
        /// Factor per decay.
        gamma: f64,
    },
    /// `η₀ / (1 + ε·t)` (the seed's inverse decay).
    Inverse {
        /// The initial rate η₀.
        lr: f64,
        /// Decay rate ε.
        epsilon: f64,
    },
    /// `η₀ · e^(−ε·t)` (the seed's exponential decay): PyTorch's
    /// `ExponentialLR` with `gamma = e^(−ε)`, which computes `η₀·γᵗ`.
    Exponential {
        /// The initial rate η₀.
        lr: f64,
        /// Decay rate ε.
        epsilon: f64,
    },
    /// `η_min + (η₀ − η_min)·(1 + cos(π·t / T_max)) / 2`: the closed form of
    /// `torch.optim.lr_scheduler.CosineAnnealingLR`. Like PyTorch's, it rises
    /// again after `T_max`; stop at `T_max` or restart for other shapes.
    Cosine {
        /// The initial rate η₀.
        lr: f64,
        /// Steps from η₀ down to η_min.
        t_max: usize,
        /// The lowest rate.
        eta_min: f64,
    },
    /// Linear warm-up, then `inner` restarted at 0: for `t < steps` the rate
    /// is `inner.lr(0)·(f + (1 − f)·t/steps)`, with `f = start_factor`
    /// (PyTorch's `LinearLR` followed by `inner` in `SequentialLR`).
    Warmup {
        /// Length of the warm-up.
        steps: usize,
        /// Fraction of the rate at t = 0.
        start_factor: f64,
        /// The schedule after the warm-up.
        inner: Box<Schedule>,
    },
}

impl Schedule {
    /// A constant rate.
    pub fn constant(lr: f64) -> Result<Schedule> {
        check_lr(lr)?;
        Ok(Schedule::Constant { lr })
    }

    /// Multiply by `gamma` every `step_size` steps.
    pub fn step(lr: f64, step_size: usize, gamma: f64) -> Result<Schedule> {
        check_lr(lr)?;
        require("step_size", step_size as f64, step_size >= 1, "at least 1")?;
        require("gamma", gamma, gamma > 0.0 && gamma <= 1.0, "in (0, 1]")?;
        Ok(Schedule::Step {
            lr,
            step_size,
            gamma,
        })
    }

    /// `lr / (1 + epsilon·t)`.
    pub fn inverse(lr: f64, epsilon: f64) -> Result<Schedule> {
        check_lr(lr)?;
        check_epsilon(epsilon)?;
        Ok(Schedule::Inverse { lr, epsilon })
    }

    /// `lr · e^(−epsilon·t)`.
    pub fn exponential(lr: f64, epsilon: f64) -> Result<Schedule> {
        check_lr(lr)?;
        check_epsilon(epsilon)?;
        Ok(Schedule::Exponential { lr, epsilon })
    }

    /// Cosine annealing from `lr` to `eta_min` over `t_max` steps.
    pub fn cosine(lr: f64, t_max: usize, eta_min: f64) -> Result<Schedule> {
        check_lr(lr)?;
        require("t_max", t_max as f64, t_max >= 1, "at least 1")?;
        require(
            "eta_min",
            eta_min,
            eta_min >= 0.0 && eta_min <= lr,
            "in [0, lr]",
        )?;
        Ok(Schedule::Cosine { lr, t_max, eta_min })
    }

    /// A linear warm-up over `steps` steps from `start_factor·inner.lr(0)`.
    pub fn warmup(steps: usize, start_factor: f64, inner: Schedule) -> Result<Schedule> {
        require("warmup steps", steps as f64, steps >= 1, "at least 1")?;
        require(
            "start_factor",
            start_factor,
            start_factor > 0.0 && start_factor <= 1.0,
            "in (0, 1]",
        )?;
        Ok(Schedule::Warmup {
            steps,
            start_factor,
            inner: Box::new(inner),
        })
    }

    /// The learning rate at step `t` (epochs or iterations, from 0).
    pub fn lr(&self, t: usize) -> f64 {
        let tf = t as f64;
        match self {
            Schedule::Constant { lr } => *lr,
            Schedule::Step {
                lr,
                step_size,
                gamma,
            } => lr * gamma.powi((t / step_size) as i32),
            Schedule::Inverse { lr, epsilon } => lr / (1.0 + epsilon * tf),
            Schedule::Exponential { lr, epsilon } => lr * (-epsilon * tf).exp(),
            Schedule::Cosine { lr, t_max, eta_min } => {
                eta_min
                    + (lr - eta_min) * (1.0 + (std::f64::consts::PI * tf / *t_max as f64).cos())
                        / 2.0
            }
            Schedule::Warmup {
                steps,
                start_factor,
                inner,
            } => {
                if t < *steps {
                    inner.lr(0) * (start_factor + (1.0 - start_factor) * tf / *steps as f64)
                } else {
                    inner.lr(t - steps)
                }
            }
        }
    }
}
