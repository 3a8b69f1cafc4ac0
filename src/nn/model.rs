//! A built network: its layers' modules on a backend (each layer type's
//! forward and backward in `src/nn/layers/`), and the per-batch-size
//! buffers of the forward and backward passes. [`Model::forward_backward`]
//! overwrites the gradients; [`Model::accumulate_backward`] adds to them,
//! as PyTorch's `backward()` does, until [`Model::zero_grad`].

use super::layers::{backward_chain, forward_chain, stages, BuildCtx, Chain, Pass, Stage};
use super::Sequential;
use crate::backend::{Backend, FlatTensors, Loss, Shaped, Target};
use crate::{Error, Result};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashMap;

/// Training keeps what backward needs; inference fuses bias and activation
/// into the matmul epilogue and keeps nothing extra.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Keep pre-activations for the backward pass.
    Train,
    /// Fastest forward pass; backward is not possible after it.
    Eval,
}

struct Workspace<B: Backend> {
    stages: Vec<Stage<B>>,
    grad_pred: B::Tensor,
    loss: B::Tensor,
}

/// A parameter tensor and its gradient, with its PyTorch state-dict name.
pub struct Parameter<'a, B: Backend> {
    /// `nn.Sequential` name, e.g. `0.weight`, `2.1.bias` (inside a residual block).
    pub name: String,
    /// The shape PyTorch gives it (`[out, in]`, `[out, in/groups, kh, kw]`,
    /// `[n]`); the tensor itself is `rows × cols` with the same values in
    /// the same order.
    pub shape: Vec<usize>,
    /// The values.
    pub value: &'a mut B::Tensor,
    /// The gradient from the last backward pass (mutable, so that a
    /// [`GradSync`](crate::train::GradSync) can replace it with the sum over replicas).
    pub grad: &'a mut B::Tensor,
    /// True for dense weights; false for biases and batch-norm γ and β,
    /// which are usually exempt from weight decay.
    pub is_weight: bool,
}

/// A network built on backend `B`.
pub struct Model<B: Backend> {
    backend: B,
    spec: Sequential,
    nodes: Chain<B>,
    workspaces: HashMap<usize, Workspace<B>>,
    /// Dropout masks are drawn from (seed, step, element).
    dropout_seed: u64,
    /// Training forward passes so far: the `step` of the dropout masks.
    step: u64,
    /// The global index of the next batch's first row (dropout masks are
    /// drawn by global sample index): a data-parallel replica's shard offset.
    first_row: u64,
    freeze_masks: bool,
    /// Every parameter, and every gradient, as one tensor whose views the
    /// layers hold (on backends that make such views, see
    /// [`Backend::zeros_flat`]).
    flat: Option<FlatParams<B>>,
    /// The rows of the last training batch (whose loss [`Model::last_loss`] reads).
    last_rows: Option<usize>,
    /// Whether the gradients may hold something [`Model::accumulate_backward`]
    /// must add to (false once they are zeroed).
    gradients_held: bool,
    /// The gradients' sum so far, saved while a backward pass overwrites
    /// them: one tensor per gradient, or one for the flat tensor (made at
    /// the first accumulation).
    gradient_sums: Vec<B::Tensor>,
    /// σ of the Gaussian noise on the weights in training passes (0: none).
    weight_noise: f64,
    /// The clean weights while a training pass runs on noisy ones.
    clean_weights: Vec<B::Tensor>,
}

/// See [`Model::whole_tensors`]; a function of the two fields, so that a
/// caller may borrow the model's other fields beside it.
fn whole_tensors<'a, B: Backend>(
    flat: Option<&'a mut FlatParams<B>>,
    nodes: &'a mut Chain<B>,
    grads: bool,
) -> Vec<&'a mut B::Tensor> {
    match flat {
        Some(flat) if grads => vec![&mut flat.grads],
        Some(flat) => vec![&mut flat.params],
        None => {
            let mut params = Vec::new();
            for (i, m) in nodes.iter_mut().enumerate() {
                m.parameters(&format!("{i}."), &mut params);
            }
            params
                .into_iter()
                .map(|p| if grads { p.grad } else { p.value })
                .collect()
        }
    }
}

/// A model's parameters and gradients as two flat tensors.
pub struct FlatParams<B: Backend> {
    /// Every parameter, in `state_dict` order, at the offsets
    /// [`Backend::zeros_flat`] gives their shapes.
    pub params: B::Tensor,
    /// Every gradient, laid out as `params`.
    pub grads: B::Tensor,
}

impl<B: Backend> Model<B> {
    /// Builds the nodes; see [`Sequential::build`].
    pub(super) fn new(backend: &B, spec: &Sequential, seed: u64) -> Result<Self> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut streams = 0;
        let mut ctx = BuildCtx {
            rng: &mut rng,
            streams: &mut streams,
        };
        let nodes = super::build_chain(spec.layers(), backend, spec.input_shape(), &mut ctx)?;
        let mut model = Model {
            backend: backend.clone(),
            spec: spec.clone(),
            nodes,
            workspaces: HashMap::new(),
            dropout_seed: seed,
            step: 0,
            first_row: 0,
            freeze_masks: false,
            flat: None,
            last_rows: None,
            gradients_held: false,
            gradient_sums: Vec::new(),
            weight_noise: 0.0,
            clean_weights: Vec::new(),
        };
        model.flatten()?;
        Ok(model)
    }

    /// Moves every parameter and gradient into views of one flat tensor
    /// each, where the backend makes views.
    fn flatten(&mut self) -> Result<()> {
        let b = self.backend.clone();
        let shapes: Vec<(usize, usize)> = self
            .parameters_mut()
            .iter()
            .map(|p| (p.value.rows(), p.value.cols()))
            .collect();
        let FlatTensors {
            views: param_views,
            whole: Some(params),
            ..
        } = b.zeros_flat(&shapes)?
        else {
            return Ok(());
        };
        let FlatTensors {
            views: grad_views,
            whole: Some(grads),
            ..
        } = b.zeros_flat(&shapes)?
        else {
            return Ok(());
        };
        for ((p, mut value), grad) in self
            .parameters_mut()
            .into_iter()
            .zip(param_views)
            .zip(grad_views)
        {
            b.copy(p.value, &mut value)?;
            *p.value = value;
            *p.grad = grad;
        }
        self.flat = Some(FlatParams { params, grads });
        Ok(())
    }
}

/// A model buffer that is state but not a trained parameter (batch-norm running statistics).
pub struct Buffer<'a, B: Backend> {
    /// `nn.Sequential` name, e.g. `1.running_mean`.
    pub name: String,
    /// The values.
    pub value: &'a mut B::Tensor,
}

impl<B: Backend> Model<B> {
    /// The description the model was built from.
    pub fn spec(&self) -> &Sequential {
        &self.spec
    }

    /// The backend the model lives on.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    fn check_input(&self, x: &B::Tensor) -> Result<()> {
        if x.cols() != self.spec.input_width() {
            return Err(Error::Shape {
                op: "forward",
                detail: format!(
                    "the model takes {} features per row, the batch has {} ({})",
                    self.spec.input_width(),
                    x.cols(),
                    x.shape_str()
                ),
            });
        }
        Ok(())
    }

    fn workspace(&mut self, rows: usize) -> Result<&mut Workspace<B>> {
        if !self.workspaces.contains_key(&rows) {
            let stages = stages(&self.backend, &self.nodes, rows)?;
            let out_width = self.spec.output_width();
            let ws = Workspace {
                stages,
                grad_pred: self.backend.zeros(rows, out_width)?,
                loss: self.backend.zeros(1, 1)?,
            };
            self.workspaces.insert(rows, ws);
        }
        Ok(self.workspaces.get_mut(&rows).expect("inserted above"))
    }

    /// Runs the network on a batch `x` (`rows × input width`) and returns the
    /// output (`rows × output width`), still on the device.
    pub fn forward(&mut self, x: &B::Tensor, mode: Mode) -> Result<&B::Tensor> {
        self.check_input(x)?;
        if mode == Mode::Train {
            self.count_training_pass();
        }
        let rows = x.rows();
        self.workspace(rows)?;
        let pass = self.pass(mode);
        let ws = self.workspaces.get_mut(&rows).expect("made by workspace()");
        forward_chain(&self.backend, &mut self.nodes, &mut ws.stages, x, pass)?;
        Ok(&ws.stages.last().expect("validated: not empty").out)
    }

    fn pass(&self, mode: Mode) -> Pass {
        Pass {
            mode,
            seed: self.dropout_seed,
            step: self.step,
            first_row: self.first_row,
        }
    }

    /// Advances the dropout masks' step, as a training forward pass does
    /// (unless the masks are frozen).
    pub(crate) fn count_training_pass(&mut self) {
        if !self.freeze_masks {
            self.step += 1;
        }
    }

    /// Keeps every dropout mask fixed from now on (for gradient checks),
    /// or lets them change with every training pass again.
    pub fn freeze_dropout_masks(&mut self, freeze: bool) {
        self.freeze_masks = freeze;
    }

    /// Training passes so far (the counter the dropout masks are drawn from).
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Sets the training-pass counter, e.g. when resuming from a checkpoint.
    pub fn set_step(&mut self, step: u64) {
        self.step = step;
    }

    /// Places the next training batches at row `row` of the global
    /// minibatch, so that their dropout masks are the ones one device would
    /// draw for those rows: a data-parallel replica passes the first row of
    /// its shard (0, the default, for one device).
    ///
    /// ```
    /// use wgtrain::{Backend, Cpu, Init, Loss, Sequential, Target};
    /// let cpu = Cpu::<f64>::new();
    /// let spec = Sequential::new(3).dense(8, Init::HeNormal).relu().dropout(0.5).dense(2, Init::XavierUniform);
    /// let x = cpu.upload_f64(4, 3, &[0.5; 12]).unwrap();
    /// let y = cpu.indices(&[0, 1, 0, 1], 2).unwrap();
    /// let mut whole = spec.build(&cpu, 1).unwrap();
    /// whole.forward_backward(&x, Loss::SoftmaxCrossEntropy, Target::Labels(&y)).unwrap();
    /// // Rows 2..4 alone, told where they sit: the same dropped units.
    /// let (x2, y2) = (cpu.upload_f64(2, 3, &[0.5; 6]).unwrap(), cpu.indices(&[0, 1], 2).unwrap());
    /// let mut shard = spec.build(&cpu, 1).unwrap();
    /// shard.set_first_row(2);
    /// shard.forward_backward(&x2, Loss::SoftmaxCrossEntropy, Target::Labels(&y2)).unwrap();
    /// let rows = |m: &wgtrain::Model<Cpu<f64>>, r| cpu.download(m.output(r).unwrap()).unwrap();
    /// assert_eq!(rows(&whole, 4)[4..], rows(&shard, 2)[..]);
    /// ```
    pub fn set_first_row(&mut self, row: u64) {
        self.first_row = row;
    }

    /// The seed the dropout masks are drawn from (the build seed unless set).
    pub fn dropout_seed(&self) -> u64 {
        self.dropout_seed
    }

    /// Sets the dropout seed, e.g. when resuming from a checkpoint.
    pub fn set_dropout_seed(&mut self, seed: u64) {
        self.dropout_seed = seed;
    }

    /// Batch-norm running statistics (`running_mean`, `running_var`) and
    /// `num_batches_tracked` counters, in `state_dict` order.
    pub fn buffers_mut(&mut self) -> (Vec<Buffer<'_, B>>, Vec<(String, &mut u64)>) {
        let (mut out, mut counts) = (Vec::new(), Vec::new());
        for (i, m) in self.nodes.iter_mut().enumerate() {
            m.buffers(&format!("{i}."), &mut out, &mut counts);
        }
        (out, counts)
    }

    /// Forward in training mode, the loss, and the backward pass: afterwards
    /// every parameter's gradient is set and [`Model::loss_tensor`] holds the
    /// mean loss. Nothing is read back to the host.
    pub fn forward_backward(
        &mut self,
        x: &B::Tensor,
        loss: Loss,
        target: Target<'_, B>,
    ) -> Result<()> {
        self.train_pass(x, loss, target, false)
    }

    /// As [`Model::forward_backward`], and also computes the gradient with
    /// respect to the input, returned (the first layer's input gradient is
    /// otherwise skipped as no parameter needs it).
    pub fn forward_backward_input(
        &mut self,
        x: &B::Tensor,
        loss: Loss,
        target: Target<'_, B>,
    ) -> Result<&B::Tensor> {
        self.train_pass(x, loss, target, true)?;
        let ws = &self.workspaces[&x.rows()];
        Ok(&ws.stages[0].grad_in)
    }

    /// As [`Model::forward_backward`], but adds `weight ×` this batch's
    /// gradients to those already held, as PyTorch's
    /// `(weight * loss).backward()` does, until [`Model::zero_grad`]. A
    /// batch too large for the device trains as micro-batches: zero the
    /// gradients, accumulate each micro-batch of `rows_i` rows with weight
    /// `rows_i / rows`, then step the optimizer. Without batch norm that is
    /// the large batch's gradient exactly (up to rounding); with it, each
    /// micro-batch is normalised by its own statistics, as in PyTorch.
    ///
    /// ```
    /// use wgtrain::{Backend, Cpu, Init, Loss, Sequential, Target};
    /// let cpu = Cpu::<f64>::new();
    /// let spec = Sequential::new(2).dense(3, Init::XavierUniform).tanh().dense(2, Init::XavierUniform);
    /// let rows = [[0.5, -1.0], [1.5, 0.25], [-0.75, 2.0]];
    /// let (x, y) = (cpu.upload_f64(3, 2, rows.as_flattened()).unwrap(), cpu.indices(&[0, 1, 1], 2).unwrap());
    /// let mut whole = spec.build(&cpu, 0).unwrap();
    /// whole.forward_backward(&x, Loss::SoftmaxCrossEntropy, Target::Labels(&y)).unwrap();
    /// // The same batch as micro-batches of 2 rows and 1 row.
    /// let mut parts = spec.build(&cpu, 0).unwrap();
    /// parts.zero_grad().unwrap();
    /// for (lo, hi) in [(0, 2), (2, 3)] {
    ///     let xb = cpu.upload_f64(hi - lo, 2, rows[lo..hi].as_flattened()).unwrap();
    ///     let labels = [0, 1, 1];
    ///     let yb = cpu.indices(&labels[lo..hi], 2).unwrap();
    ///     let weight = (hi - lo) as f64 / 3.0;
    ///     parts.accumulate_backward(&xb, Loss::SoftmaxCrossEntropy, Target::Labels(&yb), weight).unwrap();
    /// }
    /// let (a, b) = (whole.gradient("0.weight").unwrap(), parts.gradient("0.weight").unwrap());
    /// assert!(a.iter().zip(&b).all(|(u, v)| (u - v).abs() < 1e-15));
    /// ```
    pub fn accumulate_backward(
        &mut self,
        x: &B::Tensor,
        loss: Loss,
        target: Target<'_, B>,
        weight: f64,
    ) -> Result<()> {
        if !weight.is_finite() {
            return Err(Error::InvalidParameter {
                name: "accumulation weight",
                value: weight,
                allowed: "finite",
            });
        }
        let b = self.backend.clone();
        let keep = self.gradients_held;
        if keep {
            // The backward pass overwrites the gradients: save their sum.
            let (grads, sums) = self.gradients_and_sums();
            if sums.is_empty() {
                for g in &grads {
                    sums.push(b.zeros(g.rows(), g.cols())?);
                }
            }
            for (g, sum) in grads.into_iter().zip(sums.iter_mut()) {
                b.copy(g, sum)?;
            }
        }
        self.train_pass(x, loss, target, false)?;
        let (grads, sums) = self.gradients_and_sums();
        for (i, g) in grads.into_iter().enumerate() {
            if weight != 1.0 {
                b.scale(g, weight)?;
            }
            if keep {
                b.axpy(1.0, &sums[i], g)?;
            }
        }
        Ok(())
    }

    /// Sets every gradient to zero (`optimizer.zero_grad(set_to_none=False)`):
    /// the next [`Model::accumulate_backward`] starts a new sum.
    pub fn zero_grad(&mut self) -> Result<()> {
        let b = self.backend.clone();
        for g in self.gradients_and_sums().0 {
            b.fill(g, 0.0)?;
        }
        self.gradients_held = false;
        Ok(())
    }

    /// Every gradient tensor (the flat one where the backend made it), and
    /// the sums [`Model::accumulate_backward`] keeps beside them.
    fn gradients_and_sums(&mut self) -> (Vec<&mut B::Tensor>, &mut Vec<B::Tensor>) {
        let grads = whole_tensors(self.flat.as_mut(), &mut self.nodes, true);
        (grads, &mut self.gradient_sums)
    }

    /// Every gradient (`grads`) or parameter as few tensors as the backend
    /// allows: the flat one where it made it, else one per parameter in
    /// `state_dict` order. What whole-model vector algebra (L-BFGS,
    /// gradient sums) works on.
    pub(crate) fn whole_tensors(&mut self, grads: bool) -> Vec<&mut B::Tensor> {
        whole_tensors(self.flat.as_mut(), &mut self.nodes, grads)
    }

    /// Trains on noisy weights from now on (seed 002, "adding noise"; Graves
    /// 2011): each training pass ([`Model::forward_backward`],
    /// [`Model::accumulate_backward`]) runs forward and backward with every
    /// weight (dense and conv; not biases or batch-norm parameters) replaced
    /// by `w + σ·z`, `z ~ N(0, 1)` drawn afresh per pass from the model's
    /// seed and step like dropout's masks, then puts the clean weights back:
    /// the optimizer updates the clean weights by the noisy gradient.
    /// `0` turns it off; σ must be finite and ≥ 0.
    ///
    /// ```
    /// use wgtrain::{Backend, Cpu, Init, Loss, Sequential, Target};
    /// let cpu = Cpu::<f64>::new();
    /// let mut model = Sequential::new(2).dense(2, Init::XavierUniform).build(&cpu, 0).unwrap();
    /// let before = model.parameter("0.weight").unwrap().2;
    /// model.set_weight_noise(0.1).unwrap();
    /// let (x, y) = (cpu.upload_f64(1, 2, &[1.0, 2.0]).unwrap(), cpu.indices(&[1], 2).unwrap());
    /// model.forward_backward(&x, Loss::SoftmaxCrossEntropy, Target::Labels(&y)).unwrap();
    /// // The weights are clean again after the pass.
    /// assert_eq!(model.parameter("0.weight").unwrap().2, before);
    /// assert!(model.set_weight_noise(-1.0).is_err());
    /// ```
    pub fn set_weight_noise(&mut self, std: f64) -> Result<()> {
        crate::ops::noise::check_std(std).map_err(|_| Error::InvalidParameter {
            name: "weight_noise",
            value: std,
            allowed: "finite and ≥ 0",
        })?;
        self.weight_noise = std;
        Ok(())
    }

    /// σ of the weight noise (0 when off); see [`Model::set_weight_noise`].
    pub fn weight_noise(&self) -> f64 {
        self.weight_noise
    }

    /// The noise weight `index` (among the weights, in state-dict order)
    /// gets in the training pass at `step`: element `i` is `draw.noise(i)`.
    pub fn weight_noise_draw(&self, index: usize, step: u64) -> crate::ops::noise::NoiseDraw {
        crate::ops::noise::NoiseDraw {
            std: self.weight_noise,
            // Streams counted down from the top, apart from the layers'.
            seed: self.pass(Mode::Train).stream_seed(u64::MAX - index as u64),
            step,
            first: 0,
        }
    }

    /// Replaces each weight by `w + σ·z`, keeping the clean values.
    fn perturb_weights(&mut self) -> Result<()> {
        let b = self.backend.clone();
        let step = self.step;
        let draws: Vec<_> = (0..self.parameters_mut().len())
            .map(|i| self.weight_noise_draw(i, step))
            .collect();
        let mut clean = std::mem::take(&mut self.clean_weights);
        let weights = self.parameters_mut().into_iter().filter(|p| p.is_weight);
        for (i, p) in weights.enumerate() {
            if clean.len() == i {
                clean.push(b.zeros(p.value.rows(), p.value.cols())?);
            }
            b.copy(p.value, &mut clean[i])?;
            b.add_noise(&clean[i], p.value, &draws[i])?;
        }
        self.clean_weights = clean;
        Ok(())
    }

    /// Puts back the weights [`Model::perturb_weights`] kept.
    fn restore_weights(&mut self) -> Result<()> {
        let b = self.backend.clone();
        let clean = std::mem::take(&mut self.clean_weights);
        let weights = self.parameters_mut().into_iter().filter(|p| p.is_weight);
        for (p, w) in weights.zip(&clean) {
            b.copy(w, p.value)?;
        }
        self.clean_weights = clean;
        Ok(())
    }

    fn train_pass(
        &mut self,
        x: &B::Tensor,
        loss: Loss,
        target: Target<'_, B>,
        input_grad: bool,
    ) -> Result<()> {
        if self.weight_noise > 0.0 {
            self.perturb_weights()?;
            let run = self.clean_train_pass(x, loss, target, input_grad);
            // The clean weights go back even when the pass failed.
            self.restore_weights()?;
            return run;
        }
        self.clean_train_pass(x, loss, target, input_grad)
    }

    fn clean_train_pass(
        &mut self,
        x: &B::Tensor,
        loss: Loss,
        target: Target<'_, B>,
        input_grad: bool,
    ) -> Result<()> {
        self.gradients_held = true;
        self.last_rows = Some(x.rows());
        self.forward(x, Mode::Train)?;
        let pass = self.pass(Mode::Train);
        let b = &self.backend;
        let ws = self
            .workspaces
            .get_mut(&x.rows())
            .expect("made by forward()");
        let pred = &ws.stages.last().expect("validated: not empty").out;
        b.loss(loss, pred, target, &mut ws.grad_pred, &mut ws.loss)?;
        backward_chain(
            b,
            &mut self.nodes,
            &mut ws.stages,
            x,
            &ws.grad_pred,
            input_grad,
            pass,
        )
    }

    /// The output of the last forward pass on a batch of `rows`.
    pub fn output(&self, rows: usize) -> Option<&B::Tensor> {
        self.workspaces
            .get(&rows)
            .and_then(|ws| ws.stages.last())
            .map(|s| &s.out)
    }

    /// Evaluates a batch without training: adds `rows × loss` to
    /// `loss_sum`, and when `correct` is given (labels only) the number of
    /// rows whose label is in the top `k` to each `(k, count)`. Everything
    /// stays on the device.
    pub fn evaluate_batch(
        &mut self,
        x: &B::Tensor,
        loss: Loss,
        target: Target<'_, B>,
        loss_sum: &mut B::Tensor,
        correct: &mut [(usize, &mut B::Tensor)],
    ) -> Result<()> {
        self.forward(x, Mode::Eval)?;
        let b = &self.backend;
        let ws = self
            .workspaces
            .get_mut(&x.rows())
            .expect("made by forward()");
        let pred = &ws.stages.last().expect("validated: not empty").out;
        b.loss(loss, pred, target, &mut ws.grad_pred, &mut ws.loss)?;
        b.axpy(x.rows() as f64, &ws.loss, loss_sum)?;
        if let Target::Labels(labels) = target {
            for (k, count) in correct.iter_mut() {
                b.count_top_k(pred, labels, *k, count)?;
            }
        }
        Ok(())
    }

    /// Copies every parameter and buffer into `snapshot` (allocated on first
    /// use), e.g. to keep the best weights seen during training.
    pub fn save_snapshot(&mut self, snapshot: &mut Vec<B::Tensor>) -> Result<()> {
        let b = self.backend.clone();
        let mut i = 0;
        self.for_each_state(|t| {
            if snapshot.len() == i {
                snapshot.push(b.zeros(t.rows(), t.cols())?);
            }
            b.copy(t, &mut snapshot[i])?;
            i += 1;
            Ok(())
        })
    }

    /// Restores every parameter and buffer from a snapshot taken by
    /// [`Model::save_snapshot`] on this model.
    pub fn restore_snapshot(&mut self, snapshot: &[B::Tensor]) -> Result<()> {
        let b = self.backend.clone();
        let mut i = 0;
        self.for_each_state(|t| {
            let s = snapshot
                .get(i)
                .ok_or_else(|| Error::Model("the snapshot is of another model".into()))?;
            b.copy(s, t)?;
            i += 1;
            Ok(())
        })
    }

    /// Visits every parameter, then every batch-norm buffer.
    fn for_each_state(&mut self, mut f: impl FnMut(&mut B::Tensor) -> Result<()>) -> Result<()> {
        for p in self.parameters_mut() {
            f(p.value)?;
        }
        for b in self.buffers_mut().0 {
            f(b.value)?;
        }
        Ok(())
    }

    /// The `1×1` loss of the last [`Model::forward_backward`] on a batch of `rows`.
    pub fn loss_tensor(&self, rows: usize) -> Option<&B::Tensor> {
        self.workspaces.get(&rows).map(|ws| &ws.loss)
    }

    /// Reads back the mean loss of the last training pass
    /// ([`Model::forward_backward`], [`Model::accumulate_backward`]), `loss.item()`.
    pub fn last_loss(&self) -> Result<f64> {
        let rows = self
            .last_rows
            .ok_or_else(|| Error::Model("no training pass has run yet: no loss to read".into()))?;
        self.loss_value(rows)
    }

    /// Reads back the loss of the last [`Model::forward_backward`] on a batch of `rows`.
    pub fn loss_value(&self, rows: usize) -> Result<f64> {
        let t = self.loss_tensor(rows).ok_or_else(|| {
            Error::Model(format!(
                "no forward_backward has run on a batch of {rows} rows"
            ))
        })?;
        Ok(self.backend.download(t)?[0])
    }

    /// Every parameter with its gradient, in `state_dict` order.
    pub fn parameters_mut(&mut self) -> Vec<Parameter<'_, B>> {
        self.parameters_and_flat_mut().0
    }

    /// As [`Model::parameters_mut`], with the flat tensors the parameters
    /// and gradients are views of, where the backend made them: an
    /// optimizer or an all-reduce can then work on all of them at once.
    pub fn parameters_and_flat_mut(
        &mut self,
    ) -> (Vec<Parameter<'_, B>>, Option<&mut FlatParams<B>>) {
        let mut out = Vec::new();
        for (i, m) in self.nodes.iter_mut().enumerate() {
            m.parameters(&format!("{i}."), &mut out);
        }
        (out, self.flat.as_mut())
    }

    /// The parameter names, in `state_dict` order.
    pub fn parameter_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, m) in self.nodes.iter().enumerate() {
            m.parameter_names(&format!("{i}."), &mut out);
        }
        out
    }

    /// Reads a parameter back: `(rows, cols, values)`.
    pub fn parameter(&mut self, name: &str) -> Result<(usize, usize, Vec<f64>)> {
        let backend = self.backend.clone();
        let p = self.find_parameter(name)?;
        Ok((p.value.rows(), p.value.cols(), backend.download(p.value)?))
    }

    /// Reads a parameter's gradient back.
    pub fn gradient(&mut self, name: &str) -> Result<Vec<f64>> {
        let backend = self.backend.clone();
        backend.download(self.find_parameter(name)?.grad)
    }

    /// Overwrites a parameter (its length must match).
    pub fn set_parameter(&mut self, name: &str, values: &[f64]) -> Result<()> {
        let backend = self.backend.clone();
        backend.write(self.find_parameter(name)?.value, values)
    }

    fn find_parameter(&mut self, name: &str) -> Result<Parameter<'_, B>> {
        self.parameters_mut()
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::Model(format!("no parameter named {name}")))
    }

    /// The fraction of each ReLU's units (named by its place in the stack,
    /// `3`, or `2.1` inside block 2) that output 0 for every row of `x` in
    /// evaluation mode: dead units, which no gradient reaches any more.
    /// One column sum per ReLU on the device (a ReLU's outputs are ≥ 0, so
    /// a sum of 0 means all zero), read back as one small vector each.
    ///
    /// ```
    /// use wgtrain::{Backend, Cpu, Init, Sequential};
    /// let cpu = Cpu::<f64>::new();
    /// let mut model = Sequential::new(2).dense(4, Init::HeNormal).relu().dense(2, Init::XavierUniform).build(&cpu, 0).unwrap();
    /// // A bias of -100 kills every unit of the first layer.
    /// model.set_parameter("0.bias", &[-100.0; 4]).unwrap();
    /// let x = cpu.upload_f64(3, 2, &[0.5, -1.0, 1.0, 2.0, -0.5, 0.25]).unwrap();
    /// assert_eq!(model.dead_relu_fractions(&x).unwrap(), vec![("1".to_string(), 1.0)]);
    /// ```
    pub fn dead_relu_fractions(&mut self, x: &B::Tensor) -> Result<Vec<(String, f64)>> {
        self.forward(x, Mode::Eval)?;
        let b = self.backend.clone();
        let ws = &self.workspaces[&x.rows()];
        let mut outputs = Vec::new();
        for (i, (m, stage)) in self.nodes.iter().zip(&ws.stages).enumerate() {
            m.relu_outputs(&i.to_string(), stage, &mut outputs);
        }
        let mut fractions = Vec::with_capacity(outputs.len());
        for (name, out) in outputs {
            let mut sums = b.zeros(1, out.cols())?;
            b.sum_rows(out, &mut sums)?;
            let sums = b.download(&sums)?;
            let dead = sums.iter().filter(|&&s| s == 0.0).count();
            fractions.push((name, dead as f64 / sums.len() as f64));
        }
        Ok(fractions)
    }

    /// Plain gradient descent on every parameter: `θ ← θ − lr·∂ρ/∂θ`.
    pub fn sgd_step(&mut self, lr: f64) -> Result<()> {
        let backend = self.backend.clone();
        for p in self.parameters_mut() {
            backend.axpy(-lr, p.grad, p.value)?;
        }
        Ok(())
    }
}
