//! A built network: parameters and gradients resident on a backend, and the
//! per-batch-size buffers of the forward and backward passes.
//!
//! Forward: `Z = X·Wᵀ + b`, `H = σ(Z)`. Backward (seeds 000/004):
//! `∂ρ/∂W = δᵀ·X`, `∂ρ/∂b = Σᵢ δᵢ`, `δ_in = δ·W`, `δ_Z = δ_H ⊙ σ'(Z)`.
//! Gradients are overwritten by each backward pass (no accumulation).

use super::{Layer, Sequential};
use crate::backend::{Activation, Backend, Loss, MatmulSpec, Shaped, Target};
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

struct Dense<B: Backend> {
    w: B::Tensor,
    b: B::Tensor,
    gw: B::Tensor,
    gb: B::Tensor,
}

struct BatchNorm<B: Backend> {
    gamma: B::Tensor,
    beta: B::Tensor,
    g_gamma: B::Tensor,
    g_beta: B::Tensor,
    running_mean: B::Tensor,
    running_var: B::Tensor,
    /// Training batches seen, as PyTorch's `num_batches_tracked`.
    batches: u64,
    momentum: f64,
    eps: f64,
}

enum Node<B: Backend> {
    Dense(Dense<B>),
    Act(Activation),
    Residual(Vec<Node<B>>),
    /// `stream` makes each dropout layer's mask independent of the others'.
    Dropout {
        p: f64,
        stream: u64,
    },
    BatchNorm(BatchNorm<B>),
}

/// The buffers of one node for one batch size: its output and the gradient
/// with respect to its input (plus the batch statistics of a batch norm).
struct Stage<B: Backend> {
    out: B::Tensor,
    grad_in: B::Tensor,
    saved: Option<B::Tensor>,
    sub: Vec<Stage<B>>,
}

/// What a pass needs besides the tensors: the mode and the dropout counter.
#[derive(Clone, Copy)]
struct Pass {
    mode: Mode,
    seed: u64,
    step: u64,
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
    nodes: Vec<Node<B>>,
    workspaces: HashMap<usize, Workspace<B>>,
    /// Dropout masks are drawn from (seed, step, element).
    dropout_seed: u64,
    /// Training forward passes so far: the `step` of the dropout masks.
    step: u64,
    freeze_masks: bool,
    /// Every parameter, and every gradient, as one tensor whose views the
    /// layers hold (on backends that make such views, see
    /// [`Backend::zeros_flat`]).
    flat: Option<FlatParams<B>>,
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
        let nodes = build_nodes(
            backend,
            spec.layers(),
            spec.input_width(),
            &mut rng,
            &mut streams,
        )?;
        let mut model = Model {
            backend: backend.clone(),
            spec: spec.clone(),
            nodes,
            workspaces: HashMap::new(),
            dropout_seed: seed,
            step: 0,
            freeze_masks: false,
            flat: None,
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
        let (param_views, Some(params)) = b.zeros_flat(&shapes)? else {
            return Ok(());
        };
        let (grad_views, Some(grads)) = b.zeros_flat(&shapes)? else {
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

fn build_nodes<B: Backend>(
    b: &B,
    layers: &[Layer],
    mut width: usize,
    rng: &mut StdRng,
    streams: &mut u64,
) -> Result<Vec<Node<B>>> {
    layers
        .iter()
        .map(|layer| {
            Ok(match layer {
                Layer::Dense {
                    inputs,
                    outputs,
                    weight_init,
                    bias_init,
                } => {
                    width = *outputs;
                    let w = weight_init.sample(rng, *inputs, *outputs, inputs * outputs);
                    let bias = bias_init.sample(rng, *inputs, *outputs, *outputs);
                    Node::Dense(Dense {
                        w: b.upload_f64(*outputs, *inputs, &w)?,
                        b: b.upload_f64(1, *outputs, &bias)?,
                        gw: b.zeros(*outputs, *inputs)?,
                        gb: b.zeros(1, *outputs)?,
                    })
                }
                Layer::Activation(a) => Node::Act(*a),
                Layer::Residual(inner) => {
                    Node::Residual(build_nodes(b, inner, width, rng, streams)?)
                }
                Layer::Dropout { p } => {
                    *streams += 1;
                    Node::Dropout {
                        p: *p,
                        stream: *streams,
                    }
                }
                Layer::BatchNorm { momentum, eps } => Node::BatchNorm(BatchNorm {
                    gamma: b.upload_f64(1, width, &vec![1.0; width])?,
                    beta: b.zeros(1, width)?,
                    g_gamma: b.zeros(1, width)?,
                    g_beta: b.zeros(1, width)?,
                    running_mean: b.zeros(1, width)?,
                    running_var: b.upload_f64(1, width, &vec![1.0; width])?,
                    batches: 0,
                    momentum: *momentum,
                    eps: *eps,
                }),
            })
        })
        .collect()
}

fn build_stages<B: Backend>(
    b: &B,
    nodes: &[Node<B>],
    rows: usize,
    mut width: usize,
) -> Result<Vec<Stage<B>>> {
    let mut stages = Vec::with_capacity(nodes.len());
    for node in nodes {
        let (out_width, sub) = match node {
            Node::Dense(d) => (d.w.rows(), Vec::new()),
            Node::Act(_) | Node::Dropout { .. } | Node::BatchNorm(_) => (width, Vec::new()),
            Node::Residual(inner) => (width, build_stages(b, inner, rows, width)?),
        };
        let saved = match node {
            Node::BatchNorm(_) => Some(b.zeros(2, width)?),
            _ => None,
        };
        stages.push(Stage {
            out: b.zeros(rows, out_width)?,
            grad_in: b.zeros(rows, width)?,
            saved,
            sub,
        });
        width = out_width;
    }
    Ok(stages)
}

fn forward_chain<B: Backend>(
    b: &B,
    nodes: &mut [Node<B>],
    stages: &mut [Stage<B>],
    x: &B::Tensor,
    pass: Pass,
) -> Result<()> {
    let mut i = 0;
    while i < nodes.len() {
        let (done, rest) = stages.split_at_mut(i);
        let input = if i == 0 { x } else { &done[i - 1].out };
        // In inference a dense layer and the activation after it are one
        // kernel: the activation's stage receives the fused result.
        if let (Mode::Eval, Node::Dense(d), Some(Node::Act(act))) =
            (pass.mode, &nodes[i], nodes.get(i + 1))
        {
            let spec = MatmulSpec {
                transpose_b: true,
                bias: Some(&d.b),
                act: *act,
                ..Default::default()
            };
            b.matmul(input, &d.w, &mut rest[1].out, spec)?;
            i += 2;
            continue;
        }
        let stage = &mut rest[0];
        match &mut nodes[i] {
            Node::Dense(d) => {
                let spec = MatmulSpec {
                    transpose_b: true,
                    bias: Some(&d.b),
                    ..Default::default()
                };
                b.matmul(input, &d.w, &mut stage.out, spec)?;
            }
            Node::Act(act) => b.activation(*act, input, &mut stage.out)?,
            Node::Dropout { p, stream } => match pass.mode {
                Mode::Train => b.dropout(
                    input,
                    &mut stage.out,
                    *p,
                    mask_seed(pass.seed, *stream),
                    pass.step,
                )?,
                Mode::Eval => b.copy(input, &mut stage.out)?,
            },
            Node::BatchNorm(bn) => match pass.mode {
                Mode::Train => {
                    let saved = stage
                        .saved
                        .as_mut()
                        .expect("batch-norm stages keep statistics");
                    b.batch_norm_train(
                        input,
                        &bn.gamma,
                        &bn.beta,
                        &mut bn.running_mean,
                        &mut bn.running_var,
                        saved,
                        &mut stage.out,
                        bn.momentum,
                        bn.eps,
                    )?;
                    bn.batches += 1;
                }
                Mode::Eval => b.batch_norm_eval(
                    input,
                    &bn.gamma,
                    &bn.beta,
                    &bn.running_mean,
                    &bn.running_var,
                    &mut stage.out,
                    bn.eps,
                )?,
            },
            Node::Residual(inner) => {
                forward_chain(b, inner, &mut stage.sub, input, pass)?;
                b.copy(
                    &stage
                        .sub
                        .last()
                        .expect("validated: blocks are not empty")
                        .out,
                    &mut stage.out,
                )?;
                b.axpy(1.0, input, &mut stage.out)?;
            }
        }
        i += 1;
    }
    Ok(())
}

/// Backpropagates `grad_out` (the gradient at the chain's output) to every
/// parameter, and to `stages[0].grad_in` when `input_grad`.
fn backward_chain<B: Backend>(
    b: &B,
    nodes: &mut [Node<B>],
    stages: &mut [Stage<B>],
    x: &B::Tensor,
    grad_out: &B::Tensor,
    input_grad: bool,
    pass: Pass,
) -> Result<()> {
    // An activation right before a dense layer: its backward pass is fused
    // into the product that gives the dense layer's input gradient.
    let fused_into_next = |i: usize, nodes: &[Node<B>]| {
        matches!(nodes[i], Node::Act(_)) && matches!(nodes.get(i + 1), Some(Node::Dense(_)))
    };
    for i in (0..nodes.len()).rev() {
        let (before, from_i) = stages.split_at_mut(i);
        let (here, after) = from_i.split_at_mut(1);
        let stage = &mut here[0];
        let g = if i + 1 == nodes.len() {
            grad_out
        } else {
            &after[0].grad_in
        };
        let need_grad_in = i > 0 || input_grad;
        let gate_below = i > 0 && fused_into_next(i - 1, nodes);
        let fused_above = fused_into_next(i, nodes);
        let (nodes_before, nodes_from_i) = nodes.split_at_mut(i);
        let input = if i == 0 { x } else { &before[i - 1].out };
        match &mut nodes_from_i[0] {
            Node::Dense(d) => {
                b.matmul(
                    g,
                    input,
                    &mut d.gw,
                    MatmulSpec {
                        transpose_a: true,
                        ..Default::default()
                    },
                )?;
                b.sum_rows(g, &mut d.gb)?;
                if gate_below {
                    // (g·W) ⊙ act'(z) straight into the activation's stage,
                    // unless nothing below needs it.
                    let Node::Act(act) = nodes_before[i - 1] else {
                        unreachable!("checked by fused_into_next")
                    };
                    if i - 1 > 0 || input_grad {
                        let (earlier, act_stage) = before.split_at_mut(i - 1);
                        let z = if i == 1 { x } else { &earlier[i - 2].out };
                        let spec = MatmulSpec {
                            gate: Some((act, z)),
                            ..MatmulSpec::default()
                        };
                        b.matmul(g, &d.w, &mut act_stage[0].grad_in, spec)?;
                    }
                } else if need_grad_in {
                    b.matmul(g, &d.w, &mut stage.grad_in, MatmulSpec::default())?;
                }
            }
            Node::Act(act) => {
                if need_grad_in && !fused_above {
                    b.activation_backward(*act, input, g, &mut stage.grad_in)?;
                }
            }
            Node::Dropout { p, stream } => {
                if need_grad_in {
                    b.dropout(
                        g,
                        &mut stage.grad_in,
                        *p,
                        mask_seed(pass.seed, *stream),
                        pass.step,
                    )?;
                }
            }
            Node::BatchNorm(bn) => {
                // γ and β need their gradients even when the input does not.
                let saved = stage
                    .saved
                    .as_ref()
                    .expect("batch-norm stages keep statistics");
                b.batch_norm_backward(
                    input,
                    &bn.gamma,
                    saved,
                    g,
                    &mut stage.grad_in,
                    &mut bn.g_gamma,
                    &mut bn.g_beta,
                )?;
            }
            Node::Residual(inner) => {
                // y = x + f(x) ⇒ ∂ρ/∂x = g + J_fᵀ·g.
                backward_chain(b, inner, &mut stage.sub, input, g, true, pass)?;
                b.copy(g, &mut stage.grad_in)?;
                b.axpy(1.0, &stage.sub[0].grad_in, &mut stage.grad_in)?;
            }
        }
    }
    Ok(())
}

/// A dropout layer's own seed: the model's seed mixed with the layer's stream.
fn mask_seed(seed: u64, stream: u64) -> u64 {
    seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A model buffer that is state but not a trained parameter (batch-norm running statistics).
pub struct Buffer<'a, B: Backend> {
    /// `nn.Sequential` name, e.g. `1.running_mean`.
    pub name: String,
    /// The values.
    pub value: &'a mut B::Tensor,
}

fn collect_buffers<'a, B: Backend>(
    nodes: &'a mut [Node<B>],
    prefix: &str,
    out: &mut Vec<Buffer<'a, B>>,
    counts: &mut Vec<(String, &'a mut u64)>,
) {
    for (i, node) in nodes.iter_mut().enumerate() {
        match node {
            Node::BatchNorm(bn) => {
                out.push(Buffer {
                    name: format!("{prefix}{i}.running_mean"),
                    value: &mut bn.running_mean,
                });
                out.push(Buffer {
                    name: format!("{prefix}{i}.running_var"),
                    value: &mut bn.running_var,
                });
                counts.push((format!("{prefix}{i}.num_batches_tracked"), &mut bn.batches));
            }
            Node::Residual(inner) => collect_buffers(inner, &format!("{prefix}{i}."), out, counts),
            _ => {}
        }
    }
}

fn collect_params<'a, B: Backend>(
    nodes: &'a mut [Node<B>],
    prefix: &str,
    out: &mut Vec<Parameter<'a, B>>,
) {
    for (i, node) in nodes.iter_mut().enumerate() {
        // Dense layers and batch norms both hold a `weight` and a `bias`;
        // only a dense weight is decayed.
        let (w, gw, b, gb, is_weight) = match node {
            Node::Dense(d) => (&mut d.w, &mut d.gw, &mut d.b, &mut d.gb, true),
            Node::BatchNorm(bn) => (
                &mut bn.gamma,
                &mut bn.g_gamma,
                &mut bn.beta,
                &mut bn.g_beta,
                false,
            ),
            Node::Residual(inner) => {
                collect_params(inner, &format!("{prefix}{i}."), out);
                continue;
            }
            Node::Act(_) | Node::Dropout { .. } => continue,
        };
        out.push(Parameter {
            name: format!("{prefix}{i}.weight"),
            value: w,
            grad: gw,
            is_weight,
        });
        out.push(Parameter {
            name: format!("{prefix}{i}.bias"),
            value: b,
            grad: gb,
            is_weight: false,
        });
    }
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
            let stages = build_stages(&self.backend, &self.nodes, rows, self.spec.input_width())?;
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
        if mode == Mode::Train && !self.freeze_masks {
            self.step += 1;
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
        collect_buffers(&mut self.nodes, "", &mut out, &mut counts);
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

    fn train_pass(
        &mut self,
        x: &B::Tensor,
        loss: Loss,
        target: Target<'_, B>,
        input_grad: bool,
    ) -> Result<()> {
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
        for p in collect_named(&mut self.nodes) {
            f(p.value)?;
        }
        let (mut buffers, mut counts) = (Vec::new(), Vec::new());
        collect_buffers(&mut self.nodes, "", &mut buffers, &mut counts);
        for b in buffers {
            f(b.value)?;
        }
        Ok(())
    }

    /// The `1×1` loss of the last [`Model::forward_backward`] on a batch of `rows`.
    pub fn loss_tensor(&self, rows: usize) -> Option<&B::Tensor> {
        self.workspaces.get(&rows).map(|ws| &ws.loss)
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
        let mut out = Vec::new();
        collect_params(&mut self.nodes, "", &mut out);
        out
    }

    /// As [`Model::parameters_mut`], with the flat tensors the parameters
    /// and gradients are views of, where the backend made them: an
    /// optimizer or an all-reduce can then work on all of them at once.
    pub fn parameters_and_flat_mut(
        &mut self,
    ) -> (Vec<Parameter<'_, B>>, Option<&mut FlatParams<B>>) {
        let mut out = Vec::new();
        collect_params(&mut self.nodes, "", &mut out);
        (out, self.flat.as_mut())
    }

    /// The parameter names, in `state_dict` order.
    pub fn parameter_names(&self) -> Vec<String> {
        fn walk<B: Backend>(nodes: &[Node<B>], prefix: &str, out: &mut Vec<String>) {
            for (i, node) in nodes.iter().enumerate() {
                match node {
                    Node::Dense(_) | Node::BatchNorm(_) => {
                        out.push(format!("{prefix}{i}.weight"));
                        out.push(format!("{prefix}{i}.bias"));
                    }
                    Node::Residual(inner) => walk(inner, &format!("{prefix}{i}."), out),
                    Node::Act(_) | Node::Dropout { .. } => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.nodes, "", &mut out);
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
        collect_named(&mut self.nodes)
            .into_iter()
            .find(|p| p.name == name)
            .ok_or_else(|| Error::Model(format!("no parameter named {name}")))
    }

    /// Plain gradient descent on every parameter: `θ ← θ − lr·∂ρ/∂θ`.
    pub fn sgd_step(&mut self, lr: f64) -> Result<()> {
        let backend = self.backend.clone();
        for p in collect_named(&mut self.nodes) {
            backend.axpy(-lr, p.grad, p.value)?;
        }
        Ok(())
    }
}

fn collect_named<B: Backend>(nodes: &mut [Node<B>]) -> Vec<Parameter<'_, B>> {
    let mut out = Vec::new();
    collect_params(nodes, "", &mut out);
    out
}
