//! Optimizers with PyTorch's names, defaults and update formulas, on any
//! [`Backend`]: [`Sgd`], [`EmaMomentum`] (the seed's averaged momentum),
//! [`Adagrad`], [`RmsProp`], [`Adam`] and [`AdamW`].
//!
//! Each optimizer is a plain config struct (the rule) whose defaults are
//! PyTorch's. [`Optim`] pairs a config with the per-parameter state, which
//! lives on the device, is created at the first step, and can be exported to
//! and imported from the host ([`OptimState`]) so that training resumes
//! exactly. Every parameter tensor is updated by one fused
//! [`Backend::optimizer_update`] dispatch.
//!
//! Regularisation, all per parameter group: coupled L2 (`weight_decay`, added
//! to the gradient as PyTorch does), decoupled weight decay ([`AdamW`]), an L1
//! penalty with the sign subgradient, and gradient clipping by value or by
//! global norm ([`GradClip`], as `torch.nn.utils.clip_grad_value_` /
//! `clip_grad_norm_` before `step()`).
//!
//! ```
//! use wgtrain::optim::{Adam, GroupOptions, Optim, Optimizer, ParamRef};
//! use wgtrain::{Backend, Cpu, GradClip};
//! let cpu = Cpu::<f64>::new();
//! let mut w = cpu.upload_f64(1, 3, &[1.0, -2.0, 0.5]).unwrap();
//! let mut b = cpu.upload_f64(1, 1, &[0.1]).unwrap();
//! let gw = cpu.upload_f64(1, 3, &[0.3, -0.1, 0.2]).unwrap();
//! let gb = cpu.upload_f64(1, 1, &[0.05]).unwrap();
//!
//! let mut opt = Optim::new(Adam { weight_decay: 1e-4, ..Adam::default() })
//!     .unwrap()
//!     .with_clip(GradClip::Norm(1.0))
//!     .unwrap();
//! let no_decay = opt.add_group(GroupOptions::no_decay()).unwrap();
//! opt.step(
//!     &cpu,
//!     &mut [ParamRef::new("w", &mut w, &gw), ParamRef::new("b", &mut b, &gb).in_group(no_decay)],
//! )
//! .unwrap();
//! // Adam's first step moves every element by about lr against its gradient.
//! let w1 = cpu.download(&w).unwrap();
//! assert!((w1[0] - (1.0 - 1e-3)).abs() < 1e-6);
//! ```

mod adagrad;
mod adam;
mod lbfgs;
mod momentum;
mod rmsprop;
mod sgd;

pub use adagrad::Adagrad;
pub use adam::{Adam, AdamW};
pub use lbfgs::{Lbfgs, LbfgsOptimizer, LineSearch};
pub use momentum::EmaMomentum;
pub use rmsprop::RmsProp;
pub use sgd::Sgd;

use crate::backend::{Backend, FlatTensors, GradClip, Shaped, UpdateMethod, UpdateRule};
use crate::{Error, FlatParams, Result};
use std::collections::{BTreeMap, HashSet};

/// A rule's hyperparameters: what [`Optim`] needs from an optimizer config.
pub trait OptimizerConfig: std::fmt::Debug {
    /// Checks every hyperparameter, naming the first bad one in
    /// [`Error::InvalidParameter`].
    fn validate(&self) -> Result<()>;
    /// The elementwise update rule.
    fn method(&self) -> UpdateMethod;
    /// The base learning rate.
    fn lr(&self) -> f64;
    /// The L2 coefficient of the default parameter group.
    fn weight_decay(&self) -> f64;
    /// Whether `weight_decay` shrinks the parameter directly (AdamW) rather
    /// than being added to the gradient.
    fn decoupled_weight_decay(&self) -> bool {
        false
    }
}

/// A config chosen at run time (a command-line flag) is one too:
/// `Optim::new(Box::new(Adam::default()) as Box<dyn OptimizerConfig + Send + Sync>)`.
impl<C: OptimizerConfig + ?Sized> OptimizerConfig for Box<C> {
    fn validate(&self) -> Result<()> {
        (**self).validate()
    }
    fn method(&self) -> UpdateMethod {
        (**self).method()
    }
    fn lr(&self) -> f64 {
        (**self).lr()
    }
    fn weight_decay(&self) -> f64 {
        (**self).weight_decay()
    }
    fn decoupled_weight_decay(&self) -> bool {
        (**self).decoupled_weight_decay()
    }
}

/// What a training loop calls once per minibatch.
///
/// ```
/// use wgtrain::optim::{Optim, Optimizer, ParamRef, Sgd};
/// use wgtrain::{Backend, Cpu};
/// fn train_step<B: Backend>(b: &B, opt: &mut dyn Optimizer<B>, w: &mut B::Tensor, g: &B::Tensor) {
///     opt.step(b, &mut ParamRef::from_pairs(vec![(w, g)])).unwrap();
/// }
/// let cpu = Cpu::<f64>::new();
/// let mut w = cpu.upload_f64(1, 2, &[1.0, 2.0]).unwrap();
/// let g = cpu.upload_f64(1, 2, &[0.5, -0.5]).unwrap();
/// let mut opt = Optim::new(Sgd { lr: 0.1, ..Sgd::default() }).unwrap();
/// train_step(&cpu, &mut opt, &mut w, &g);
/// assert_eq!(cpu.download(&w).unwrap(), vec![0.95, 2.05]);
/// ```
pub trait Optimizer<B: Backend> {
    /// Updates every parameter from its gradient. State is created for a
    /// parameter name the first time it is seen; names must be unique within
    /// a call and stable across calls.
    fn step(&mut self, backend: &B, params: &mut [ParamRef<'_, B>]) -> Result<()>;
    /// As [`Optimizer::step`], where `params` are views of `flat` (a
    /// model's [`FlatParams`]): an optimizer may then update them all in one
    /// pass. The default ignores `flat`.
    fn step_flat(
        &mut self,
        backend: &B,
        params: &mut [ParamRef<'_, B>],
        flat: Option<&mut FlatParams<B>>,
    ) -> Result<()> {
        let _ = flat;
        self.step(backend, params)
    }
    /// `optimizer.step()` on a whole model: every parameter, by its
    /// state-dict name, in group 0, from the gradients its last backward
    /// pass left (see [`train_step`](crate::train::train_step) for a bias
    /// group and a gradient hook).
    ///
    /// ```
    /// use wgtrain::optim::{Optim, Optimizer, Sgd};
    /// use wgtrain::{Backend, Cpu, Init, Loss, Sequential, Target};
    /// let cpu = Cpu::<f64>::new();
    /// let mut model = Sequential::new(2).dense(2, Init::XavierUniform).build(&cpu, 0).unwrap();
    /// let mut opt = Optim::new(Sgd { lr: 0.5, ..Sgd::default() }).unwrap();
    /// let (x, y) = (cpu.upload_f64(2, 2, &[1.0, 0.0, 0.0, 1.0]).unwrap(), cpu.indices(&[0, 1], 2).unwrap());
    /// model.forward_backward(&x, Loss::SoftmaxCrossEntropy, Target::Labels(&y)).unwrap();
    /// let first = model.last_loss().unwrap();
    /// for _ in 0..20 {
    ///     opt.step_model(&mut model).unwrap();
    ///     model.forward_backward(&x, Loss::SoftmaxCrossEntropy, Target::Labels(&y)).unwrap();
    /// }
    /// assert!(model.last_loss().unwrap() < first / 2.0);
    /// ```
    fn step_model(&mut self, model: &mut crate::Model<B>) -> Result<()> {
        crate::train::step::apply_gradients(
            model,
            self,
            &crate::train::StepOptions::default(),
            &mut crate::train::LocalSync,
        )
    }
    /// The coefficient λ of the penalty `λ·½‖w‖²` whose gradient the
    /// weights' group (group 0) adds (coupled `weight_decay`), so that
    /// `loss + λ·Ω(θ)` is what the steps minimise; 0 when there is none, or
    /// when the decay is decoupled (AdamW), which no penalty's gradient is.
    fn l2_coefficient(&self) -> f64 {
        0.0
    }
    /// A copy of this optimizer on the CPU reference backend in f64, with
    /// the same rule, groups, clipping and state (exported and imported):
    /// what [`TrainConfig::verify_every`](crate::train::TrainConfig::verify_every)
    /// replays a step with. `None` for an optimizer that cannot make one.
    fn cpu_reference(&self, backend: &B) -> Result<Option<Box<dyn Optimizer<crate::Cpu<f64>>>>> {
        let _ = backend;
        Ok(None)
    }
    /// The learning rate the next step uses (before group scales).
    fn lr(&self) -> f64;
    /// Sets the learning rate, e.g. from a [`Schedule`](crate::schedule::Schedule).
    fn set_lr(&mut self, lr: f64) -> Result<()>;
    /// Copies the state (step counts and every state tensor) to the host.
    fn export_state(&self, backend: &B) -> Result<OptimState>;
    /// Replaces the state with one exported earlier, so that training resumes
    /// exactly where it left off.
    fn import_state(&mut self, backend: &B, state: &OptimState) -> Result<()>;
}

/// One parameter handed to [`Optimizer::step`]: the tensor, its gradient, a
/// name that keys its state, and the index of its group (0, the default,
/// unless [`Optim::add_group`] made others).
///
/// ```
/// use wgtrain::optim::ParamRef;
/// use wgtrain::{Backend, Cpu};
/// let cpu = Cpu::<f32>::new();
/// let (mut w, mut b) = (cpu.zeros(2, 2).unwrap(), cpu.zeros(1, 2).unwrap());
/// let (gw, gb) = (cpu.zeros(2, 2).unwrap(), cpu.zeros(1, 2).unwrap());
/// let params = ParamRef::<Cpu<f32>>::from_pairs(vec![(&mut w, &gw), (&mut b, &gb)]);
/// assert_eq!(params[1].name, "1");
/// ```
pub struct ParamRef<'a, B: Backend> {
    /// Keys the parameter's state; unique among the parameters of a step.
    pub name: String,
    /// The parameter, updated in place.
    pub param: &'a mut B::Tensor,
    /// Its gradient.
    pub grad: &'a B::Tensor,
    /// Index of its [`GroupOptions`].
    pub group: usize,
}

impl<'a, B: Backend> ParamRef<'a, B> {
    /// A parameter in the default group.
    pub fn new(name: impl Into<String>, param: &'a mut B::Tensor, grad: &'a B::Tensor) -> Self {
        ParamRef {
            name: name.into(),
            param,
            grad,
            group: 0,
        }
    }

    /// The same parameter in group `group`.
    pub fn in_group(self, group: usize) -> Self {
        ParamRef { group, ..self }
    }

    /// `(parameter, gradient)` pairs in the default group, named by position
    /// ("0", "1", …): the order must then be the same at every step.
    pub fn from_pairs(pairs: Vec<(&'a mut B::Tensor, &'a B::Tensor)>) -> Vec<Self> {
        pairs
            .into_iter()
            .enumerate()
            .map(|(i, (param, grad))| ParamRef::new(i.to_string(), param, grad))
            .collect()
    }
}

/// Options of a parameter group, overriding the optimizer's (PyTorch's
/// `param_groups`). The usual one exempts biases and norms from decay.
///
/// ```
/// use wgtrain::optim::GroupOptions;
/// let biases = GroupOptions::no_decay();
/// assert_eq!(biases.weight_decay, Some(0.0));
/// assert_eq!(GroupOptions::default().lr_scale, 1.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupOptions {
    /// Multiplies the optimizer's learning rate (and so the schedule's).
    pub lr_scale: f64,
    /// Replaces the config's `weight_decay`.
    pub weight_decay: Option<f64>,
    /// Replaces the optimizer's L1 coefficient.
    pub l1: Option<f64>,
}

impl Default for GroupOptions {
    fn default() -> Self {
        GroupOptions {
            lr_scale: 1.0,
            weight_decay: None,
            l1: None,
        }
    }
}

impl GroupOptions {
    /// No weight decay and no L1 penalty.
    pub fn no_decay() -> Self {
        GroupOptions {
            weight_decay: Some(0.0),
            l1: Some(0.0),
            ..Default::default()
        }
    }
}

/// The state of one parameter on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamStateHost {
    /// Steps taken (PyTorch's `state['step']`).
    pub step: u64,
    /// Rows of the parameter.
    pub rows: usize,
    /// Columns of the parameter.
    pub cols: usize,
    /// `(state name, values)` in [`UpdateMethod::state_names`] order.
    pub tensors: Vec<(String, Vec<f64>)>,
}

/// An optimizer's whole state on the host, by parameter name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimState {
    /// Parameter name → its state.
    pub params: BTreeMap<String, ParamStateHost>,
}

/// The device-resident state of one parameter.
struct ParamState<B: Backend> {
    step: u64,
    rows: usize,
    cols: usize,
    tensors: Vec<B::Tensor>,
}

/// An optimizer: a config (the rule), the options of each parameter group,
/// and the per-parameter state on the device.
///
/// ```
/// use wgtrain::optim::{Optim, Optimizer, RmsProp};
/// use wgtrain::{Cpu, Error};
/// let opt = Optim::<Cpu<f32>, _>::new(RmsProp::default()).unwrap();
/// assert_eq!(opt.lr(), 1e-2);
/// let bad = Optim::<Cpu<f32>, _>::new(RmsProp { alpha: 1.5, ..RmsProp::default() });
/// assert!(matches!(bad, Err(Error::InvalidParameter { name: "alpha", .. })));
/// ```
pub struct Optim<B: Backend, C> {
    config: C,
    lr: f64,
    l1: f64,
    clip: GradClip,
    groups: Vec<GroupOptions>,
    state: BTreeMap<String, ParamState<B>>,
    /// The state of a flat step ([`Optimizer::step_flat`]): the parameter
    /// names it was made for, in order, and per state slot the flat tensor
    /// whose views `state` holds.
    flat: Option<(Vec<String>, Vec<B::Tensor>)>,
}

impl<B: Backend, C: OptimizerConfig> Optim<B, C> {
    /// Checks the config; the state is created at the first step.
    pub fn new(config: C) -> Result<Self> {
        config.validate()?;
        Ok(Optim {
            lr: config.lr(),
            config,
            l1: 0.0,
            clip: GradClip::None,
            groups: vec![GroupOptions::default()],
            state: BTreeMap::new(),
            flat: None,
        })
    }

    /// Adds `l1·sign(θ)` to every gradient (groups may override it).
    pub fn with_l1(mut self, l1: f64) -> Result<Self> {
        require("l1", l1, l1 >= 0.0 && l1.is_finite(), "finite and ≥ 0")?;
        self.l1 = l1;
        Ok(self)
    }

    /// Clips the raw gradients before every step.
    pub fn with_clip(mut self, clip: GradClip) -> Result<Self> {
        match clip {
            GradClip::None => {}
            GradClip::Value(c) => {
                require("clip_value", c, c > 0.0 && c.is_finite(), "finite and > 0")?
            }
            GradClip::Norm(c) => {
                require("max_norm", c, c > 0.0 && c.is_finite(), "finite and > 0")?
            }
        }
        self.clip = clip;
        Ok(self)
    }

    /// Adds a parameter group and returns its index for [`ParamRef::in_group`].
    pub fn add_group(&mut self, options: GroupOptions) -> Result<usize> {
        let s = options.lr_scale;
        require("lr_scale", s, s >= 0.0 && s.is_finite(), "finite and ≥ 0")?;
        if let Some(wd) = options.weight_decay {
            check_weight_decay(wd)?;
        }
        if let Some(l1) = options.l1 {
            require("l1", l1, l1 >= 0.0 && l1.is_finite(), "finite and ≥ 0")?;
        }
        self.groups.push(options);
        Ok(self.groups.len() - 1)
    }

    /// The config this optimizer was built from.
    pub fn config(&self) -> &C {
        &self.config
    }

    /// Makes the state of `params` views of one flat tensor per slot, laid
    /// out as the model's [`FlatParams`], keeping the values of any state
    /// they had. False (and nothing changed) when their steps differ, or
    /// the backend makes no views.
    fn make_flat_state(&mut self, backend: &B, params: &[ParamRef<'_, B>]) -> Result<bool> {
        let known: Vec<Option<&ParamState<B>>> =
            params.iter().map(|p| self.state.get(&p.name)).collect();
        let step = known[0].map_or(0, |s| s.step);
        if known.iter().any(|s| s.map_or(0, |s| s.step) != step) {
            return Ok(false);
        }
        let shapes: Vec<(usize, usize)> = params
            .iter()
            .map(|p| (p.param.rows(), p.param.cols()))
            .collect();
        let inits = self.config.method().state_init();
        let mut slots = Vec::new();
        let mut wholes = Vec::new();
        for (slot, init) in inits.iter().enumerate() {
            let FlatTensors {
                mut views,
                whole: Some(mut whole),
                ..
            } = backend.zeros_flat(&shapes)?
            else {
                return Ok(false);
            };
            if *init != 0.0 {
                backend.fill(&mut whole, *init)?;
            }
            for (view, state) in views.iter_mut().zip(&known) {
                if let Some(s) = state {
                    backend.copy(&s.tensors[slot], view)?;
                }
            }
            slots.push(views.into_iter());
            wholes.push(whole);
        }
        for p in params {
            let tensors = slots
                .iter_mut()
                .map(|s| s.next().expect("one view per parameter"))
                .collect();
            let (rows, cols) = (p.param.rows(), p.param.cols());
            self.state.insert(
                p.name.clone(),
                ParamState {
                    step,
                    rows,
                    cols,
                    tensors,
                },
            );
        }
        self.flat = Some((params.iter().map(|p| p.name.clone()).collect(), wholes));
        Ok(true)
    }

    /// One dispatch per tensor, on parameters [`Optim::check_params`] passed.
    fn step_each(&mut self, backend: &B, params: &mut [ParamRef<'_, B>]) -> Result<()> {
        let sq_norm = match self.clip {
            GradClip::Norm(_) => {
                let mut acc = backend.zeros(1, 1)?;
                for p in params.iter() {
                    backend.accumulate_sum_squares(p.grad, &mut acc)?;
                }
                Some(acc)
            }
            _ => None,
        };
        let method = self.config.method();
        for p in params.iter_mut() {
            let rule = self.rule(&self.groups[p.group]);
            let state = match self.state.entry(p.name.clone()) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let mut tensors = Vec::new();
                    for init in method.state_init() {
                        let mut t = backend.zeros(p.param.rows(), p.param.cols())?;
                        if init != 0.0 {
                            backend.fill(&mut t, init)?;
                        }
                        tensors.push(t);
                    }
                    e.insert(ParamState {
                        step: 0,
                        rows: p.param.rows(),
                        cols: p.param.cols(),
                        tensors,
                    })
                }
            };
            backend.optimizer_update(
                &rule,
                state.step + 1,
                p.param,
                p.grad,
                &mut state.tensors,
                sq_norm.as_ref(),
            )?;
            state.step += 1;
        }
        Ok(())
    }

    /// Checks that names are unique and groups exist.
    fn check_params(&self, params: &[ParamRef<'_, B>]) -> Result<()> {
        let mut seen = HashSet::new();
        for p in params.iter() {
            if !seen.insert(p.name.as_str()) {
                return Err(Error::Model(format!(
                    "parameter name {:?} given twice to one optimizer step",
                    p.name
                )));
            }
            if p.group >= self.groups.len() {
                return Err(Error::InvalidParameter {
                    name: "group",
                    value: p.group as f64,
                    allowed: "the index of a group made by Optim::add_group (0 is the default)",
                });
            }
        }
        Ok(())
    }

    /// The rule one parameter of `group` follows at this step.
    fn rule(&self, group: &GroupOptions) -> UpdateRule {
        UpdateRule {
            method: self.config.method(),
            lr: self.lr * group.lr_scale,
            weight_decay: group.weight_decay.unwrap_or(self.config.weight_decay()),
            decoupled_weight_decay: self.config.decoupled_weight_decay(),
            l1: group.l1.unwrap_or(self.l1),
            clip: self.clip,
        }
    }
}

impl<B: Backend, C: OptimizerConfig> Optimizer<B> for Optim<B, C> {
    /// One dispatch for the whole model when every parameter is in one
    /// group (one rule) and their states share a step count; else as
    /// [`Optimizer::step`]. Each element is updated by the same arithmetic
    /// either way; only the global norm of [`GradClip::Norm`] is summed in
    /// another order.
    fn step_flat(
        &mut self,
        backend: &B,
        params: &mut [ParamRef<'_, B>],
        flat: Option<&mut FlatParams<B>>,
    ) -> Result<()> {
        self.check_params(params)?;
        let (Some(flat), Some(first)) = (flat, params.first()) else {
            return self.step_each(backend, params);
        };
        let group = first.group;
        if params.iter().any(|p| p.group != group) {
            return self.step_each(backend, params);
        }
        let same_names = self.flat.as_ref().is_some_and(|(names, _)| {
            names.len() == params.len()
                && names.iter().zip(params.iter()).all(|(n, p)| *n == p.name)
        });
        if !same_names && !self.make_flat_state(backend, params)? {
            return self.step_each(backend, params);
        }
        let step = self.state[&first.name].step + 1;
        // A per-tensor step on some of them since would have split the counts.
        if params.iter().any(|p| self.state[&p.name].step + 1 != step) {
            return self.step_each(backend, params);
        }
        let sq_norm = match self.clip {
            GradClip::Norm(_) => {
                let mut acc = backend.zeros(1, 1)?;
                backend.accumulate_sum_squares(&flat.grads, &mut acc)?;
                Some(acc)
            }
            _ => None,
        };
        let rule = self.rule(&self.groups[group]);
        let (_, wholes) = self.flat.as_mut().expect("made above");
        backend.optimizer_update(
            &rule,
            step,
            &mut flat.params,
            &flat.grads,
            wholes,
            sq_norm.as_ref(),
        )?;
        for p in params.iter() {
            self.state.get_mut(&p.name).expect("made above").step = step;
        }
        Ok(())
    }

    fn step(&mut self, backend: &B, params: &mut [ParamRef<'_, B>]) -> Result<()> {
        self.check_params(params)?;
        self.step_each(backend, params)
    }

    fn cpu_reference(&self, backend: &B) -> Result<Option<Box<dyn Optimizer<crate::Cpu<f64>>>>> {
        let rule = self.rule(&self.groups[0]);
        let mut twin = Optim::<crate::Cpu<f64>, RuleCopy> {
            config: RuleCopy {
                method: rule.method,
                lr: self.config.lr(),
                weight_decay: self.config.weight_decay(),
                decoupled: rule.decoupled_weight_decay,
            },
            lr: self.lr,
            l1: self.l1,
            clip: self.clip,
            groups: self.groups.clone(),
            state: BTreeMap::new(),
            flat: None,
        };
        twin.import_state(&crate::Cpu::new(), &self.export_state(backend)?)?;
        Ok(Some(Box::new(twin)))
    }

    fn l2_coefficient(&self) -> f64 {
        let rule = self.rule(&self.groups[0]);
        if rule.decoupled_weight_decay {
            0.0
        } else {
            rule.weight_decay
        }
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) -> Result<()> {
        check_lr(lr)?;
        self.lr = lr;
        Ok(())
    }

    fn export_state(&self, backend: &B) -> Result<OptimState> {
        let names = self.config.method().state_names();
        let mut params = BTreeMap::new();
        for (name, s) in &self.state {
            let mut tensors = Vec::new();
            for (t, n) in s.tensors.iter().zip(&names) {
                tensors.push((n.to_string(), backend.download(t)?));
            }
            params.insert(
                name.clone(),
                ParamStateHost {
                    step: s.step,
                    rows: s.rows,
                    cols: s.cols,
                    tensors,
                },
            );
        }
        Ok(OptimState { params })
    }

    fn import_state(&mut self, backend: &B, state: &OptimState) -> Result<()> {
        let names = self.config.method().state_names();
        let mut imported = BTreeMap::new();
        for (pname, host) in &state.params {
            // Matched by name, so a file that stores states in another order loads.
            let mut given: Vec<&str> = host.tensors.iter().map(|(n, _)| n.as_str()).collect();
            given.sort_unstable();
            let mut wanted = names.to_vec();
            wanted.sort_unstable();
            if given != wanted {
                return Err(Error::Model(format!(
                    "optimizer state of {pname:?} holds {given:?} but {:?} keeps {names:?}",
                    self.config.method()
                )));
            }
            let mut tensors = Vec::new();
            for name in names.iter() {
                let (_, values) = host
                    .tensors
                    .iter()
                    .find(|(n, _)| n == name)
                    .expect("checked above");
                tensors.push(backend.upload_f64(host.rows, host.cols, values)?);
            }
            imported.insert(
                pname.clone(),
                ParamState {
                    step: host.step,
                    rows: host.rows,
                    cols: host.cols,
                    tensors,
                },
            );
        }
        self.state = imported;
        // The imported tensors are separate: the next flat step lays them
        // out flat again.
        self.flat = None;
        Ok(())
    }
}

/// `Ok` when `ok`, else [`Error::InvalidParameter`] naming the parameter.
/// Another optimizer's rule, for its [`Optimizer::cpu_reference`] twin.
#[derive(Clone, Copy, Debug)]
struct RuleCopy {
    method: UpdateMethod,
    lr: f64,
    weight_decay: f64,
    decoupled: bool,
}

impl OptimizerConfig for RuleCopy {
    /// Checked when the original was made.
    fn validate(&self) -> Result<()> {
        Ok(())
    }
    fn method(&self) -> UpdateMethod {
        self.method
    }
    fn lr(&self) -> f64 {
        self.lr
    }
    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }
    fn decoupled_weight_decay(&self) -> bool {
        self.decoupled
    }
}

pub(crate) fn require(
    name: &'static str,
    value: f64,
    ok: bool,
    allowed: &'static str,
) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name,
            value,
            allowed,
        })
    }
}

pub(crate) fn check_lr(lr: f64) -> Result<()> {
    require("lr", lr, lr >= 0.0 && lr.is_finite(), "finite and ≥ 0")
}

fn check_weight_decay(wd: f64) -> Result<()> {
    require(
        "weight_decay",
        wd,
        wd >= 0.0 && wd.is_finite(),
        "finite and ≥ 0",
    )
}

fn check_eps(eps: f64) -> Result<()> {
    require("eps", eps, eps > 0.0 && eps.is_finite(), "finite and > 0")
}

/// A decay factor β of an exponential average.
fn check_beta(name: &'static str, beta: f64) -> Result<()> {
    require(name, beta, (0.0..1.0).contains(&beta), "in [0, 1)")
}
