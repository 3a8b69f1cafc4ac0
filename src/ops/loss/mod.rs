//! Losses: the mean loss of a batch and its gradient with respect to the
//! predictions, in one pass. Here: the losses, their codes (named in WGSL
//! by generated constants), the check, and the CPU reference (`cpu.rs`);
//! `gpu.rs` dispatches `shaders/loss/loss.wgsl`. Parity and finite
//! differences: `tests/kernels.rs` and `tests/network.rs`.

pub(crate) mod cpu;
pub(crate) mod gpu;
#[cfg(test)]
mod tests;

use crate::backend::checks::{check_same, shape_err};
use crate::backend::{Backend, IndexVector, Shaped, Target};
use crate::Result;

/// A loss: summed over the output columns, averaged over the batch rows.
///
/// | ours | target | PyTorch equivalent |
/// |---|---|---|
/// | `SoftmaxCrossEntropy` | labels or soft targets | `CrossEntropyLoss()` |
/// | `SmoothedCrossEntropy { smoothing: ε }` | labels or soft targets | `CrossEntropyLoss(label_smoothing=ε)` |
/// | `SquaredError` ½‖y−a‖² | dense | `MSELoss(reduction='sum') / (2N)` |
/// | `L1` ‖y−a‖₁ | dense | `L1Loss(reduction='sum') / N` |
/// | `Hinge` Σ_{c≠y} max(0, a_c − a_y + 1) | labels | `MultiMarginLoss() · C` |
/// | `SquaredHinge` Σ_{c≠y} max(0, a_c − a_y + 1)² | labels | `MultiMarginLoss(p=2) · C` |
/// | `BinaryCrossEntropy` on logits | dense in \[0, 1\] | `BCEWithLogitsLoss(reduction='sum') / N` |
/// | `RbfEuclidean { beta: β }` Σⱼ (1 − e^(−β(yⱼ−aⱼ)²)) | dense | — (the Welsch / correntropy loss) |
///
/// ```
/// use wgtrain::{Backend, Cpu, Loss, Target};
/// let cpu = Cpu::<f64>::new();
/// let z = cpu.upload_f64(1, 2, &[0.0, 0.0]).unwrap();
/// let y = cpu.indices(&[0], 2).unwrap();
/// let (mut grad, mut loss) = (cpu.zeros(1, 2).unwrap(), cpu.zeros(1, 1).unwrap());
/// // Smoothing 0.2 over 2 classes aims at (0.9, 0.1) instead of (1, 0).
/// let smoothed = Loss::SmoothedCrossEntropy { smoothing: 0.2 };
/// cpu.loss(smoothed, &z, Target::Labels(&y), &mut grad, &mut loss).unwrap();
/// let g = cpu.download(&grad).unwrap();
/// assert!((g[0] - (0.5 - 0.9)).abs() < 1e-12 && (g[1] - (0.5 - 0.1)).abs() < 1e-12);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    /// Softmax then cross-entropy, computed together with a stable log-sum-exp.
    SoftmaxCrossEntropy,
    /// Softmax cross-entropy against targets mixed with the uniform
    /// distribution, `(1 − ε)·t + ε/C` for `C` classes (label smoothing,
    /// Szegedy et al. 2016): the network is not pushed to infinite logits.
    SmoothedCrossEntropy {
        /// ε, in \[0, 1\].
        smoothing: f64,
    },
    /// ½‖y − a‖², the seeds' squared error.
    SquaredError,
    /// ‖y − a‖₁, with the subgradient 0 at equality.
    L1,
    /// The multi-class SVM loss with margin 1.
    Hinge,
    /// The squared multi-class SVM loss with margin 1.
    SquaredHinge,
    /// Sigmoid then binary cross-entropy per output (multi-label), stable form.
    BinaryCrossEntropy,
    /// Seed 001's "RBF on top of the Euclidean loss", `Σⱼ uⱼ e^(−βⱼ(y − a)²)`
    /// with `uⱼ = 1` and one β, turned into a loss to minimise:
    /// `Σⱼ (1 − e^(−β(yⱼ − aⱼ)²))`. Near the target it is `β·‖y − a‖²`
    /// (the Euclidean loss); far from it each output's term saturates at 1,
    /// so outliers pull with a bounded force (robust regression; the Welsch
    /// or correntropy loss). Gradient `2β(aⱼ − yⱼ)·e^(−β(yⱼ − aⱼ)²)`.
    RbfEuclidean {
        /// β > 0: the inverse squared width, `1/β` the squared error at
        /// which a term is 1 − 1/e of the way to saturation.
        beta: f64,
    },
}

impl Loss {
    /// The code of this loss in `shaders/loss.wgsl`.
    pub(crate) fn code(self) -> u32 {
        self.named_code().1
    }

    /// `(WGSL constant, code)` of this loss.
    fn named_code(self) -> (&'static str, u32) {
        match self {
            Loss::SoftmaxCrossEntropy => ("LOSS_SOFTMAX_CROSS_ENTROPY", 0),
            Loss::SquaredError => ("LOSS_SQUARED_ERROR", 1),
            Loss::L1 => ("LOSS_L1", 2),
            Loss::Hinge => ("LOSS_HINGE", 3),
            Loss::SquaredHinge => ("LOSS_SQUARED_HINGE", 4),
            Loss::BinaryCrossEntropy => ("LOSS_BINARY_CROSS_ENTROPY", 5),
            Loss::SmoothedCrossEntropy { .. } => ("LOSS_SMOOTHED_CROSS_ENTROPY", 6),
            Loss::RbfEuclidean { .. } => ("LOSS_RBF_EUCLIDEAN", 7),
        }
    }

    /// The label smoothing ε (0 for every loss but
    /// [`Loss::SmoothedCrossEntropy`]).
    pub fn smoothing(self) -> f64 {
        match self {
            Loss::SmoothedCrossEntropy { smoothing } => smoothing,
            _ => 0.0,
        }
    }

    /// The RBF loss's β (0 for every other loss).
    pub fn rbf_beta(self) -> f64 {
        match self {
            Loss::RbfEuclidean { beta } => beta,
            _ => 0.0,
        }
    }

    /// Checks the loss's own parameters.
    pub fn validate(self) -> Result<()> {
        if let Loss::RbfEuclidean { beta } = self {
            if !(beta > 0.0 && beta.is_finite()) {
                return Err(crate::Error::InvalidParameter {
                    name: "RBF loss beta",
                    value: beta,
                    allowed: "finite and > 0",
                });
            }
        }
        let smoothing = self.smoothing();
        if !(0.0..=1.0).contains(&smoothing) {
            return Err(crate::Error::InvalidParameter {
                name: "label smoothing",
                value: smoothing,
                allowed: "in [0, 1]",
            });
        }
        Ok(())
    }

    /// All losses (label smoothing at 0.1, the RBF loss's β at 0.5), for
    /// tests and examples.
    pub fn all() -> [Loss; 8] {
        [
            Loss::SoftmaxCrossEntropy,
            Loss::SquaredError,
            Loss::L1,
            Loss::Hinge,
            Loss::SquaredHinge,
            Loss::BinaryCrossEntropy,
            Loss::SmoothedCrossEntropy { smoothing: 0.1 },
            Loss::RbfEuclidean { beta: 0.5 },
        ]
    }

    /// Whether this loss takes class labels (else dense targets).
    /// Softmax cross-entropy takes either.
    pub fn takes_labels(self) -> bool {
        matches!(
            self,
            Loss::SoftmaxCrossEntropy
                | Loss::SmoothedCrossEntropy { .. }
                | Loss::Hinge
                | Loss::SquaredHinge
        )
    }

    /// Whether this loss takes dense targets of the prediction's shape.
    pub fn takes_dense(self) -> bool {
        !matches!(self, Loss::Hinge | Loss::SquaredHinge)
    }
}

/// The WGSL constants naming every loss by its code, placed before
/// shaders/loss/loss.wgsl.
pub(crate) fn wgsl_constants() -> String {
    let lines: Vec<String> = Loss::all()
        .iter()
        .map(|l| {
            let (name, code) = l.named_code();
            format!("const {name}: u32 = {code}u;")
        })
        .collect();
    format!(
        "// Generated by ops::loss::wgsl_constants.\n{}\n",
        lines.join("\n")
    )
}

/// Checks a loss's operands (the label range was checked when the labels were written).
pub(crate) fn check<B: Backend>(
    kind: Loss,
    pred: &B::Tensor,
    target: &Target<'_, B>,
    grad: &B::Tensor,
    loss: &B::Tensor,
) -> Result<()> {
    kind.validate()?;
    check_same("loss", "gradient vs prediction", grad, pred)?;
    if loss.rows() != 1 || loss.cols() != 1 {
        return Err(shape_err(
            "loss",
            format!("the loss output must be 1x1, got {}", loss.shape_str()),
        ));
    }
    match target {
        Target::Labels(labels) => {
            if !kind.takes_labels() {
                return Err(shape_err(
                    "loss",
                    format!("{kind:?} needs dense targets, got class labels"),
                ));
            }
            if labels.len() != pred.rows() {
                return Err(shape_err(
                    "loss",
                    format!(
                        "{} labels for a batch of {} rows",
                        labels.len(),
                        pred.rows()
                    ),
                ));
            }
            if labels.bound() > pred.cols() {
                return Err(shape_err(
                    "loss",
                    format!(
                        "labels may go up to {} but the prediction has {} classes",
                        labels.bound() - 1,
                        pred.cols()
                    ),
                ));
            }
        }
        Target::Dense(t) => {
            if !kind.takes_dense() {
                return Err(shape_err(
                    "loss",
                    format!("{kind:?} needs class labels, got dense targets"),
                ));
            }
            check_same("loss", "target vs prediction", *t, pred)?;
        }
    }
    Ok(())
}
