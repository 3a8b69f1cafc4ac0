//! Layers as units: each layer type is one file here, holding its
//! description (what [`Sequential`](super::Sequential) stores: checks, output
//! shape, cost) and its built form on a backend (forward, backward,
//! parameters, buffers). A new layer type is a new file, a variant of
//! [`Layer`](super::Layer) and its two lines in `Layer::unit` and
//! `Layer::build`; no other layer changes.
//!
//! A built layer ([`Module`]) sees only its own input and output. The chain
//! below runs the modules in order and fuses across two of them where that
//! saves a dispatch: in evaluation a dense layer applies the activation
//! after it in its epilogue, and in training a dense layer's input gradient
//! takes the derivative of the activation before it
//! ([`MatmulSpec::gate`](crate::MatmulSpec)).

pub(crate) mod activation;
pub(crate) mod batch_norm;
pub(crate) mod conv;
pub(crate) mod dense;
pub(crate) mod dropout;
pub(crate) mod flatten;
pub(crate) mod maxout;
pub(crate) mod noise;
pub(crate) mod pool;
pub(crate) mod rbf;
pub(crate) mod residual;

use super::model::{Buffer, Mode, Parameter};
use crate::backend::{Activation, Backend};
use crate::cost::Cost;
use crate::Result;
use rand::rngs::StdRng;

/// The shape of one sample: `[features]` for dense layers, `[channels,
/// height, width]` for images. A batch is a `rows × len()` tensor, each row
/// one sample in row-major order (NCHW for images, as PyTorch).
///
/// ```
/// use wgtrain::nn::Shape;
/// assert_eq!(Shape::features(784).len(), 784);
/// assert_eq!(Shape::new(&[1, 28, 28]).len(), 784);
/// assert_eq!(Shape::new(&[1, 28, 28]).to_string(), "1x28x28");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape(Vec<usize>);

impl Shape {
    /// A shape of these dimensions, outermost first.
    pub fn new(dims: &[usize]) -> Shape {
        Shape(dims.to_vec())
    }

    /// `[n]`: a flat vector of `n` features.
    pub fn features(n: usize) -> Shape {
        Shape(vec![n])
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.0
    }

    /// Values per sample (the product of the dimensions).
    pub fn len(&self) -> usize {
        self.0.iter().product()
    }

    /// True when a sample holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `Some([c, h, w])` for an image.
    pub fn image(&self) -> Option<[usize; 3]> {
        match self.0[..] {
            [c, h, w] => Some([c, h, w]),
            _ => None,
        }
    }

    /// `Some(n)` for a flat `[n]`.
    pub fn flat(&self) -> Option<usize> {
        match self.0[..] {
            [n] => Some(n),
            _ => None,
        }
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let dims: Vec<String> = self.0.iter().map(|d| d.to_string()).collect();
        write!(f, "{}", dims.join("x"))
    }
}

/// What a layer description answers without a backend.
pub(crate) trait LayerUnit {
    /// The output shape for `input`, or an error naming layer `at` when the
    /// layer cannot take that input or its settings are out of range.
    fn output_shape(&self, input: &Shape, at: &str) -> Result<Shape>;
    /// Adds this layer's FLOPs and parameters at batch `n` to `c`, and the
    /// floats it keeps for the backward pass to `kept`; `first`: the layer
    /// sees the network's input (whose gradient is not computed).
    fn cost(&self, input: &Shape, n: u64, first: bool, c: &mut Cost, kept: &mut u64);
}

/// What a built layer needs to draw its parameters and masks.
pub(crate) struct BuildCtx<'a> {
    pub rng: &'a mut StdRng,
    /// Dropout streams handed out so far (each layer's masks independent).
    pub streams: &'a mut u64,
}

/// The buffers of one module for one batch size: its output and the
/// gradient with respect to its input, plus whatever else it keeps.
pub(crate) struct Stage<B: Backend> {
    pub out: B::Tensor,
    pub grad_in: B::Tensor,
    pub kept: Kept<B>,
}

/// What a module keeps between its forward and backward passes besides its
/// output: batch statistics, the stages of a nested chain.
pub(crate) struct Kept<B: Backend> {
    pub saved: Option<B::Tensor>,
    pub sub: Vec<Stage<B>>,
    /// Work buffers for this batch size (a convolution's columns).
    pub scratch: Vec<B::Tensor>,
}

impl<B: Backend> Stage<B> {
    /// Output `rows × outputs`, input gradient `rows × inputs`, nothing else.
    pub fn plain(b: &B, rows: usize, inputs: usize, outputs: usize) -> Result<Self> {
        Ok(Stage {
            out: b.zeros(rows, outputs)?,
            grad_in: b.zeros(rows, inputs)?,
            kept: Kept {
                saved: None,
                sub: Vec::new(),
                scratch: Vec::new(),
            },
        })
    }
}

/// What a pass needs besides the tensors: the mode and the dropout counter.
#[derive(Clone, Copy)]
pub(crate) struct Pass {
    pub mode: Mode,
    pub seed: u64,
    pub step: u64,
    /// The global index of the batch's first row (a replica's shard offset).
    pub first_row: u64,
}

impl Pass {
    /// The seed of a random layer's draws (dropout, noise): the model's
    /// seed mixed with the layer's stream, so layers draw independently.
    pub fn stream_seed(&self, stream: u64) -> u64 {
        self.seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// The global index of the batch's first element, for rows of `width`:
    /// draws keyed by it do not depend on how the batch is sharded.
    pub fn first_element(&self, width: usize) -> u64 {
        self.first_row.wrapping_mul(width as u64)
    }
}

/// Where a module's backward pass writes the gradient with respect to its
/// input: a tensor, whether anything reads it (a module may skip it when
/// not), and, for modules that [take a gate](Module::takes_gate), the
/// activation (and its input) before it whose derivative to apply.
pub(crate) struct GradIn<'a, B: Backend> {
    pub out: &'a mut B::Tensor,
    pub needed: bool,
    pub gate: Option<(Activation, &'a B::Tensor)>,
}

/// A layer built on a backend.
pub(crate) trait Module<B: Backend>: Send {
    /// Buffers for a batch of `rows`.
    fn stage(&self, b: &B, rows: usize) -> Result<Stage<B>>;
    /// `stage.out = f(x)`.
    fn forward(&mut self, b: &B, x: &B::Tensor, stage: &mut Stage<B>, pass: Pass) -> Result<()>;
    /// Parameter gradients from `g` (the gradient at the output), and the
    /// input gradient into `grad_in`; `kept` is what the forward pass left
    /// in this module's stage.
    fn backward(
        &mut self,
        b: &B,
        x: &B::Tensor,
        g: &B::Tensor,
        kept: &mut Kept<B>,
        grad_in: GradIn<'_, B>,
        pass: Pass,
    ) -> Result<()>;
    /// The activation this module is, if it is one.
    fn activation(&self) -> Option<Activation> {
        None
    }
    /// Whether [`Module::backward`] applies a [`GradIn::gate`]: the
    /// activation before it then skips its own backward pass.
    fn takes_gate(&self) -> bool {
        false
    }
    /// In evaluation, `out = act(f(x))` in one pass if the module can fuse
    /// the activation after it; false (nothing done) otherwise.
    fn forward_fused(
        &mut self,
        _b: &B,
        _x: &B::Tensor,
        _act: Activation,
        _out: &mut B::Tensor,
    ) -> Result<bool> {
        Ok(false)
    }
    /// Appends the parameters, named `{prefix}weight` and so on.
    fn parameters<'a>(&'a mut self, _prefix: &str, _out: &mut Vec<Parameter<'a, B>>) {}
    /// Appends the outputs of the ReLUs this module is or holds, named by
    /// their place in the stack (`name` is this module's: `3`, `2.1`), from
    /// `stage`, this module's stage of the last forward pass.
    fn relu_outputs<'a>(
        &self,
        name: &str,
        stage: &'a Stage<B>,
        out: &mut Vec<(String, &'a B::Tensor)>,
    ) {
        if self.activation() == Some(Activation::Relu) {
            out.push((name.to_string(), &stage.out));
        }
    }
    /// Appends the parameter names, as [`Module::parameters`] would.
    fn parameter_names(&self, _prefix: &str, _out: &mut Vec<String>) {}
    /// Appends the buffers (state that is not trained) and counters.
    fn buffers<'a>(
        &'a mut self,
        _prefix: &str,
        _out: &mut Vec<Buffer<'a, B>>,
        _counts: &mut Vec<(String, &'a mut u64)>,
    ) {
    }
}

/// A chain of built modules.
pub(crate) type Chain<B> = Vec<Box<dyn Module<B>>>;

/// The stages of `chain` for a batch of `rows`.
pub(crate) fn stages<B: Backend>(b: &B, chain: &Chain<B>, rows: usize) -> Result<Vec<Stage<B>>> {
    chain.iter().map(|m| m.stage(b, rows)).collect()
}

/// Whether module `i` is an activation right before a module that takes a
/// gate: its backward pass then happens inside that module's.
fn gated<B: Backend>(i: usize, chain: &Chain<B>) -> bool {
    chain[i].activation().is_some() && chain.get(i + 1).is_some_and(|m| m.takes_gate())
}

/// Runs `chain` on `x`; each stage's `out` holds its module's output (but
/// for a module fused with the activation after it, whose output is not
/// written).
pub(crate) fn forward_chain<B: Backend>(
    b: &B,
    chain: &mut Chain<B>,
    stages: &mut [Stage<B>],
    x: &B::Tensor,
    pass: Pass,
) -> Result<()> {
    let mut i = 0;
    while i < chain.len() {
        let (done, rest) = stages.split_at_mut(i);
        let input = if i == 0 { x } else { &done[i - 1].out };
        // A module and the activation after it may be one kernel: the
        // activation's stage receives the fused result, and the module's
        // own output (the activation's input) is never written. Training
        // needs that input for the activation's backward pass, unless the
        // derivative reads the output instead and the module after the
        // activation applies it (see `backward_chain`).
        if let Some(act) = chain.get(i + 1).and_then(|m| m.activation()) {
            let fuse =
                pass.mode == Mode::Eval || (act.derivative_reads_output() && gated(i + 1, chain));
            if fuse && chain[i].forward_fused(b, input, act, &mut rest[1].out)? {
                i += 2;
                continue;
            }
        }
        chain[i].forward(b, input, &mut rest[0], pass)?;
        i += 1;
    }
    Ok(())
}

/// Backpropagates `grad_out` (the gradient at the chain's output) to every
/// parameter, and to `stages[0].grad_in` when `input_grad`.
pub(crate) fn backward_chain<B: Backend>(
    b: &B,
    chain: &mut Chain<B>,
    stages: &mut [Stage<B>],
    x: &B::Tensor,
    grad_out: &B::Tensor,
    input_grad: bool,
    pass: Pass,
) -> Result<()> {
    // Whether stage i's input gradient is used: by an earlier module, or
    // as the chain's input gradient.
    let wanted = |i: usize| i > 0 || input_grad;
    for i in (0..chain.len()).rev() {
        let (before, from_i) = stages.split_at_mut(i);
        let (here, after) = from_i.split_at_mut(1);
        let g = if i + 1 == chain.len() {
            grad_out
        } else {
            &after[0].grad_in
        };
        if gated(i, chain) {
            continue;
        }
        if i > 0 && gated(i - 1, chain) {
            // The input gradient goes past the activation, into its stage.
            let act = chain[i - 1].activation().expect("checked by gated");
            let (earlier, act_stage) = before.split_at_mut(i - 1);
            let Stage { out, grad_in, .. } = &mut act_stage[0];
            // σ' at the activation's output where that is σ' at its input:
            // the forward pass may not have written the input.
            let gate_at = if act.derivative_reads_output() {
                &*out
            } else if i == 1 {
                x
            } else {
                &earlier[i - 2].out
            };
            let grad_in = GradIn {
                out: grad_in,
                needed: wanted(i - 1),
                gate: Some((act, gate_at)),
            };
            chain[i].backward(b, out, g, &mut here[0].kept, grad_in, pass)?;
            continue;
        }
        let input = if i == 0 { x } else { &before[i - 1].out };
        let Stage { grad_in, kept, .. } = &mut here[0];
        let grad_in = GradIn {
            out: grad_in,
            needed: wanted(i),
            gate: None,
        };
        chain[i].backward(b, input, g, kept, grad_in, pass)?;
    }
    Ok(())
}
