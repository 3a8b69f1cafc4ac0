//! The verification mode: every n steps of a real run, the step is replayed
//! on the CPU reference backend in f64 from the same parameters, buffers,
//! optimizer state, dropout counters and (augmented) batch, and the
//! backend's loss, gradients and updated parameters are compared with the
//! reference's (`max |x − ref| / max(1, |ref|)`, the measure of the parity
//! tests). Past the tolerance the run stops with [`Error::Verification`].
//! Each check costs a copy of the model and optimizer state to the host and
//! one CPU step; its time is recorded.

use crate::backend::{Backend, Shaped, Target};
use crate::optim::Optimizer;
use crate::train::step::{apply_gradients, StepOptions};
use crate::train::LocalSync;
use crate::{checkpoint, Cpu, Error, Model, Result};
use web_time::Instant;

/// One verified step, as [`History::verifications`](super::History) keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Verification {
    /// The run's step (1-based, counting a resumed run's).
    pub step: usize,
    /// Divergence of the micro-batches' losses.
    pub loss: f64,
    /// Divergence of the gradients the optimizer was given.
    pub gradients: f64,
    /// Divergence of the parameters after the update.
    pub parameters: f64,
    /// Seconds the check took (copies, the CPU step, the comparison).
    pub seconds: f64,
}

/// One micro-batch of the step, on the host.
struct Part {
    x: Vec<f64>,
    rows: usize,
    labels: Option<(Vec<u32>, usize)>,
    dense: Option<Vec<f64>>,
    first_row: u64,
    weight: f64,
    /// The backend's loss on it.
    loss: f64,
}

/// The state a step started from, and its batch, on the host.
pub(crate) struct Pending {
    state: Vec<checkpoint::HostTensor>,
    optimizer: Box<dyn Optimizer<Cpu<f64>>>,
    step: u64,
    seed: u64,
    parts: Vec<Part>,
    started: Instant,
}

/// What the run's loop keeps for the verification mode.
pub(crate) struct Verifier {
    pub every: usize,
    pub tolerance: f64,
    reference: Model<Cpu<f64>>,
    pending: Option<Pending>,
}

impl Verifier {
    /// A reference twin of `model`'s architecture.
    pub fn new<B: Backend>(model: &Model<B>, every: usize, tolerance: f64) -> Result<Self> {
        let mut reference = model.spec().build(&Cpu::<f64>::new(), 0)?;
        reference.set_weight_noise(model.weight_noise())?;
        Ok(Verifier {
            every,
            tolerance,
            reference,
            pending: None,
        })
    }

    /// Whether the run's step `step` (1-based) is checked.
    pub fn due(&self, step: usize) -> bool {
        step.is_multiple_of(self.every)
    }

    /// Before the step: copies the model's state and the optimizer's.
    pub fn begin<B: Backend, O: Optimizer<B> + ?Sized>(
        &mut self,
        model: &mut Model<B>,
        opt: &O,
    ) -> Result<()> {
        let started = Instant::now();
        let optimizer = opt.cpu_reference(model.backend())?.ok_or_else(|| {
            Error::Model(
                "verify_every needs an optimizer with a CPU reference (optim::Optim)".into(),
            )
        })?;
        self.pending = Some(Pending {
            state: checkpoint::state_dict(model)?,
            optimizer,
            step: model.step(),
            seed: model.dropout_seed(),
            parts: Vec::new(),
            started,
        });
        Ok(())
    }

    /// A micro-batch of the step: its features (as trained, after any
    /// augmentation), target, first row and weight in the step.
    pub fn record_part<B: Backend>(
        &mut self,
        b: &B,
        x: &B::Tensor,
        target: Target<'_, B>,
        loss: &B::Tensor,
        first_row: u64,
        weight: f64,
    ) -> Result<()> {
        let Some(p) = &mut self.pending else {
            return Ok(());
        };
        let (labels, dense) = match target {
            Target::Labels(l) => (
                Some((b.download_indices(l)?, crate::IndexVector::bound(l))),
                None,
            ),
            Target::Dense(t) => (None, Some(b.download(t)?)),
        };
        p.parts.push(Part {
            x: b.download(x)?,
            rows: x.rows(),
            labels,
            dense,
            first_row,
            weight,
            loss: b.download(loss)?[0],
        });
        Ok(())
    }

    /// After the step: replays it on the reference and compares; the
    /// record, or the error past the tolerance.
    pub fn finish<B: Backend>(
        &mut self,
        model: &mut Model<B>,
        options: &StepOptions,
        step: usize,
    ) -> Result<Option<Verification>> {
        let Some(mut p) = self.pending.take() else {
            return Ok(None);
        };
        let cpu = *self.reference.backend();
        let r = &mut self.reference;
        checkpoint::load_state_dict(r, &p.state, "the verified step's state".as_ref())?;
        r.set_dropout_seed(p.seed);
        r.set_step(p.step);
        let width = r.spec().input_width();
        let mut losses = (Vec::new(), Vec::new());
        let accumulate = p.parts.len() > 1;
        if accumulate {
            r.zero_grad()?;
        }
        for part in &p.parts {
            let x = cpu.upload_f64(part.rows, width, &part.x)?;
            let (idx, dense);
            let target = match (&part.labels, &part.dense) {
                (Some((labels, classes)), _) => {
                    idx = cpu.indices(labels, *classes)?;
                    Target::Labels(&idx)
                }
                (_, Some(values)) => {
                    dense = cpu.upload_f64(part.rows, values.len() / part.rows, values)?;
                    Target::Dense(&dense)
                }
                _ => unreachable!("a part has a target"),
            };
            r.set_first_row(part.first_row);
            if accumulate {
                r.accumulate_backward(&x, options.loss, target, part.weight)?;
            } else {
                r.forward_backward(&x, options.loss, target)?;
            }
            losses.0.push(part.loss);
            losses.1.push(r.loss_value(part.rows)?);
        }
        let (ours, theirs) = (&losses.0, &losses.1);
        let mut grads_ref = Vec::new();
        for q in r.parameters_mut() {
            grads_ref.extend(cpu.download(q.grad)?);
        }
        apply_gradients(r, &mut *p.optimizer, options, &mut LocalSync)?;
        let b = model.backend().clone();
        let mut grads = Vec::new();
        let mut params = Vec::new();
        for q in model.parameters_mut() {
            grads.extend(b.download(q.grad)?);
            params.extend(b.download(q.value)?);
        }
        let mut params_ref = Vec::new();
        for q in r.parameters_mut() {
            params_ref.extend(cpu.download(q.value)?);
        }
        let record = Verification {
            step,
            loss: divergence(ours, theirs),
            gradients: divergence(&grads, &grads_ref),
            parameters: divergence(&params, &params_ref),
            seconds: p.started.elapsed().as_secs_f64(),
        };
        for (what, d) in [
            ("the losses", record.loss),
            ("the gradients", record.gradients),
            ("the updated parameters", record.parameters),
        ] {
            // A NaN divergence fails too.
            if d.is_nan() || d > self.tolerance {
                return Err(Error::Verification {
                    step,
                    what,
                    divergence: d,
                    tolerance: self.tolerance,
                });
            }
        }
        Ok(Some(record))
    }
}

/// `max |x − ref| / max(1, |ref|)`; infinite when the lengths differ or a
/// value is not finite.
fn divergence(x: &[f64], reference: &[f64]) -> f64 {
    if x.len() != reference.len() {
        return f64::INFINITY;
    }
    x.iter()
        .zip(reference)
        .map(|(a, r)| {
            let d = (a - r).abs() / r.abs().max(1.0);
            if d.is_nan() {
                f64::INFINITY
            } else {
                d
            }
        })
        .fold(0.0, f64::max)
}
