//! One training step, the unit [`fit`](super::fit) loops over: forward and
//! backward on a minibatch, then the gradient-synchronisation hook, then the
//! optimizer. A data-parallel run plugs its all-reduce in as a [`GradSync`];
//! a hand-written loop calls [`train_step`] directly.

use crate::backend::{Backend, Loss, Target};
use crate::optim::{Optimizer, ParamRef};
use crate::{Model, Result};

/// Makes the gradients of one step agree across replicas, between backward
/// and the optimizer step. Clipping by global norm
/// ([`GradClip::Norm`](crate::backend::GradClip::Norm)) runs inside the
/// optimizer, so it sees the synchronised gradients, and every replica
/// clips (and steps) alike.
///
/// ```
/// use wgtrain::train::GradSync;
/// use wgtrain::Backend;
/// /// Scales every gradient: e.g. 1/replicas after a sum.
/// struct Scale(f64);
/// impl<B: Backend> GradSync<B> for Scale {
///     fn sync(
///         &mut self,
///         backend: &B,
///         grads: &mut [&mut B::Tensor],
///         flat: Option<&mut B::Tensor>,
///     ) -> wgtrain::Result<()> {
///         match flat {
///             Some(all) => backend.scale(all, self.0), // one dispatch
///             None => grads.iter_mut().try_for_each(|g| backend.scale(g, self.0)),
///         }
///     }
/// }
/// ```
pub trait GradSync<B: Backend> {
    /// Called once per step with every gradient of the model, in
    /// `state_dict` order, as the backward pass left them, and, where the
    /// backend made one, the flat tensor they are all views of
    /// ([`FlatParams::grads`](crate::FlatParams)): changing either changes
    /// both, so an all-reduce can move the flat tensor in one transfer.
    fn sync(
        &mut self,
        backend: &B,
        grads: &mut [&mut B::Tensor],
        flat: Option<&mut B::Tensor>,
    ) -> Result<()>;
}

/// One replica: the gradients stay as backward left them.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalSync;

impl<B: Backend> GradSync<B> for LocalSync {
    fn sync(&mut self, _: &B, _: &mut [&mut B::Tensor], _: Option<&mut B::Tensor>) -> Result<()> {
        Ok(())
    }
}

/// What a step needs besides the model, the optimizer and the batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepOptions {
    /// The loss.
    pub loss: Loss,
    /// The optimizer group of biases and batch-norm parameters (group 0,
    /// the weights' group, when `None`).
    pub bias_group: Option<usize>,
    /// The max-norm constraint after each update: every unit's incoming
    /// weights (a row of each dense or conv weight) scaled back to this L2
    /// norm where longer ([`Backend::max_norm_rows`](crate::Backend::max_norm_rows)).
    pub max_norm: Option<f64>,
}

impl Default for StepOptions {
    fn default() -> Self {
        StepOptions {
            loss: Loss::SoftmaxCrossEntropy,
            bias_group: None,
            max_norm: None,
        }
    }
}

/// One step on one minibatch: forward and backward (the loss and the
/// output stay readable through [`Model::loss_tensor`] and
/// [`Model::output`]), `sync` on every gradient, then `opt` on every
/// parameter.
///
/// ```
/// use wgtrain::optim::{Optim, Sgd};
/// use wgtrain::train::{train_step, LocalSync, StepOptions};
/// use wgtrain::{Backend, Cpu, Init, Sequential, Target};
/// let cpu = Cpu::<f64>::new();
/// let mut model = Sequential::new(2).dense(2, Init::XavierUniform).build(&cpu, 0).unwrap();
/// let mut opt = Optim::new(Sgd { lr: 0.5, ..Sgd::default() }).unwrap();
/// let x = cpu.upload_f64(2, 2, &[1.0, 0.0, 0.0, 1.0]).unwrap();
/// let y = cpu.indices(&[0, 1], 2).unwrap();
/// let mut losses = Vec::new();
/// for _ in 0..20 {
///     train_step(&mut model, &mut opt, &x, Target::Labels(&y), &StepOptions::default(), &mut LocalSync).unwrap();
///     losses.push(model.loss_value(2).unwrap());
/// }
/// assert!(losses[19] < losses[0] / 2.0);
/// ```
pub fn train_step<B: Backend, O: Optimizer<B> + ?Sized>(
    model: &mut Model<B>,
    opt: &mut O,
    x: &B::Tensor,
    target: Target<'_, B>,
    options: &StepOptions,
    sync: &mut dyn GradSync<B>,
) -> Result<()> {
    model.forward_backward(x, options.loss, target)?;
    apply_gradients(model, opt, options, sync)
}

/// A step for a data-parallel replica with no rows in this batch (the last
/// batch of an epoch can have fewer rows than there are replicas): zero
/// gradients into the sum, the same update as the others, and the step
/// counter advanced as a forward pass would, so the dropout masks stay in
/// step with the other replicas'.
pub(crate) fn skip_step<B: Backend, O: Optimizer<B> + ?Sized>(
    model: &mut Model<B>,
    opt: &mut O,
    options: &StepOptions,
    sync: &mut dyn GradSync<B>,
) -> Result<()> {
    let b = model.backend().clone();
    for p in model.parameters_mut() {
        b.fill(p.grad, 0.0)?;
    }
    model.count_training_pass();
    apply_gradients(model, opt, options, sync)
}

/// `sync` on the gradients backward left, then `opt` on every parameter.
pub(crate) fn apply_gradients<B: Backend, O: Optimizer<B> + ?Sized>(
    model: &mut Model<B>,
    opt: &mut O,
    options: &StepOptions,
    sync: &mut dyn GradSync<B>,
) -> Result<()> {
    let b = model.backend().clone();
    let (mut params, mut flat) = model.parameters_and_flat_mut();
    {
        let mut grads: Vec<&mut B::Tensor> = params.iter_mut().map(|p| &mut *p.grad).collect();
        sync.sync(&b, &mut grads, flat.as_mut().map(|f| &mut f.grads))?;
    }
    // Which parameters the max-norm constraint reaches (none without it).
    let weights: Vec<bool> = match options.max_norm {
        Some(_) => params.iter().map(|p| p.is_weight).collect(),
        None => Vec::new(),
    };
    let mut refs: Vec<ParamRef<'_, B>> = params
        .into_iter()
        .map(|p| {
            let group = if p.is_weight {
                0
            } else {
                options.bias_group.unwrap_or(0)
            };
            ParamRef::new(p.name, p.value, p.grad).in_group(group)
        })
        .collect();
    opt.step_flat(&b, &mut refs, flat)?;
    if let Some(c) = options.max_norm {
        for (r, _) in refs.iter_mut().zip(&weights).filter(|(_, &w)| w) {
            b.max_norm_rows(r.param, c)?;
        }
    }
    Ok(())
}
