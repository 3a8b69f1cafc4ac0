//! The loop's divergence guard, the same on every backend: after every
//! step, the sums of squares of all parameters and of all gradients, and
//! the step's loss, go into three slots of their own on the device (two
//! reductions and a copy, no readback); each readback of the loop reads the slots since the last one,
//! so a NaN or infinity is pinned to the step it appeared in, whatever
//! the activations did with it on the way (the CPU's ReLU turns a NaN
//! input into 0; the parameters that produced it stay NaN).

use crate::backend::{Backend, FlatTensors};
use crate::parallel::Collective;
use crate::{Error, Model, Result};

/// Slots per step.
const SLOTS: usize = 3;

/// Per-step slots: `[Σ parameters², Σ gradients², loss]` for each step
/// since the last read.
pub(crate) struct Health<B: Backend> {
    /// The slots, and the tensor they are views of where the backend makes
    /// views (one readback instead of one per slot).
    slots: FlatTensors<B::Tensor>,
    used: usize,
}

/// The first step of a window whose values are not finite.
pub(crate) struct Unhealthy {
    /// 0-based index within the window.
    pub step: usize,
    /// "the parameters", "the gradients" or "the loss".
    pub what: &'static str,
    pub value: f64,
}

impl<B: Backend> Health<B> {
    /// Slots for `steps` steps between reads.
    pub fn new(b: &B, steps: usize) -> Result<Self> {
        Ok(Health {
            slots: b.zeros_flat(&vec![(1, 1); SLOTS * steps])?,
            used: 0,
        })
    }

    /// Records the step's loss (`None` for a replica that had no rows);
    /// [`Health::record_parameters`] then completes the step.
    pub fn record_loss(&mut self, b: &B, loss: Option<&B::Tensor>) -> Result<()> {
        let value = &mut self.slots.views[SLOTS * self.used + 2];
        match loss {
            Some(l) => b.copy(l, value),
            None => b.fill(value, 0.0),
        }
    }

    /// Records the model's parameters after the step's update, and the
    /// gradients that made it (a non-finite gradient that value clipping
    /// turned finite is still seen).
    pub fn record_parameters(&mut self, model: &mut Model<B>) -> Result<()> {
        let b = model.backend().clone();
        let [norm, grad_norm] = &mut self.slots.views[SLOTS * self.used..SLOTS * self.used + 2]
        else {
            unreachable!("a parameter and a gradient slot")
        };
        // Zero since the last read (`check` clears every slot at once).
        let (params, flat) = model.parameters_and_flat_mut();
        match flat {
            Some(all) => {
                b.accumulate_sum_squares(&all.params, norm)?;
                b.accumulate_sum_squares(&all.grads, grad_norm)?;
            }
            None => {
                for p in &params {
                    b.accumulate_sum_squares(p.value, norm)?;
                    b.accumulate_sum_squares(p.grad, grad_norm)?;
                }
            }
        }
        self.used += 1;
        Ok(())
    }

    /// Reads the steps recorded since the last read, summed over the
    /// replicas (so that every replica stops at the same step), and forgets
    /// them; the first non-finite one, if any.
    pub async fn check(&mut self, b: &B, group: &mut dyn Collective) -> Result<Option<Unhealthy>> {
        let n = SLOTS * self.used;
        let mut values = match &self.slots.whole {
            // Each slot at its own (aligned) offset in the whole.
            Some(all) => self.slots.firsts(&b.download_async(all).await?)[..n].to_vec(),
            None => {
                let mut v = Vec::with_capacity(n);
                for slot in &self.slots.views[..n] {
                    v.push(b.download_async(slot).await?[0]);
                }
                v
            }
        };
        self.used = 0;
        // Cleared for the next window: one dispatch where the slots share a tensor.
        match &mut self.slots.whole {
            Some(all) => b.fill(all, 0.0)?,
            None => {
                for slot in &mut self.slots.views[..n] {
                    b.fill(slot, 0.0)?;
                }
            }
        }
        group.all_reduce_sum_f64(&mut values)?;
        Ok(values
            .iter()
            .position(|v| !v.is_finite())
            .map(|i| Unhealthy {
                step: i / SLOTS,
                what: ["the parameters", "the gradients", "the loss"][i % SLOTS],
                value: values[i],
            }))
    }
}

/// The first parameter holding a non-finite value, as an error: what a run
/// refuses to start from (`Init::Constant(f64::NAN)`, a corrupted resume).
pub(crate) async fn check_parameters<B: Backend>(model: &mut Model<B>, when: &str) -> Result<()> {
    let b = model.backend().clone();
    for p in model.parameters_mut() {
        let values = b.download_async(p.value).await?;
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: format!("parameter {} {when}", p.name),
                index,
                value: values[index],
            });
        }
    }
    Ok(())
}
