//! Networks: a [`Sequential`] description, built into a [`Model`] on a backend.
//!
//! ```
//! use wgtrain::{Activation, Cpu, Init, Sequential};
//! let spec = Sequential::new(784)
//!     .dense(512, Init::HeNormal).relu()
//!     .residual(|b| b.dense(512, Init::HeNormal).relu())
//!     .dense(10, Init::XavierUniform);
//! let model = spec.build(&Cpu::<f32>::new(), 42).unwrap();
//! assert_eq!(model.parameter_names()[0], "0.weight");
//! ```

mod model;

pub use model::{Buffer, FlatParams, Mode, Model, Parameter};

use crate::{Activation, Error, Init, Result};

/// One layer of a [`Sequential`] description.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// `Z = X·Wᵀ + b`, with `W` of shape `[outputs, inputs]` as in PyTorch.
    Dense {
        /// Input width.
        inputs: usize,
        /// Output width.
        outputs: usize,
        /// How W is drawn.
        weight_init: Init,
        /// How b is drawn (zeros by default).
        bias_init: Init,
    },
    /// An elementwise activation.
    Activation(Activation),
    /// `y = x + f(x)` with `f` a sub-stack that keeps the width.
    Residual(Vec<Layer>),
    /// Inverted dropout with drop probability `p` (identity in evaluation).
    ///
    /// Training scales kept units by 1/(1−p), so evaluation needs no change;
    /// this equals the seeds' form (no scaling in training, multiply by 1−p
    /// at test time) up to a constant factor on every later activation.
    Dropout {
        /// Drop probability in [0, 1).
        p: f64,
    },
    /// BatchNorm1d over the features of a dense activation.
    BatchNorm {
        /// Running-statistics momentum (PyTorch's default 0.1).
        momentum: f64,
        /// Added to the variance (PyTorch's default 1e-5).
        eps: f64,
    },
}

/// A description of a feed-forward network, independent of any backend.
#[derive(Clone, Debug, PartialEq)]
pub struct Sequential {
    input: usize,
    width: usize,
    layers: Vec<Layer>,
}

impl Sequential {
    /// An empty stack taking `input` features.
    pub fn new(input: usize) -> Self {
        Sequential {
            input,
            width: input,
            layers: Vec::new(),
        }
    }

    /// Appends a dense layer with zero biases.
    pub fn dense(self, outputs: usize, weight_init: Init) -> Self {
        self.dense_with(outputs, weight_init, Init::Zeros)
    }

    /// Appends a dense layer with explicit weight and bias initialisers.
    pub fn dense_with(mut self, outputs: usize, weight_init: Init, bias_init: Init) -> Self {
        self.layers.push(Layer::Dense {
            inputs: self.width,
            outputs,
            weight_init,
            bias_init,
        });
        self.width = outputs;
        self
    }

    /// Appends an activation.
    pub fn act(mut self, act: Activation) -> Self {
        self.layers.push(Layer::Activation(act));
        self
    }

    /// Appends a ReLU.
    pub fn relu(self) -> Self {
        self.act(Activation::Relu)
    }

    /// Appends a sigmoid.
    pub fn sigmoid(self) -> Self {
        self.act(Activation::Sigmoid)
    }

    /// Appends a tanh.
    pub fn tanh(self) -> Self {
        self.act(Activation::Tanh)
    }

    /// Appends inverted dropout with drop probability `p` ∈ [0, 1).
    pub fn dropout(mut self, p: f64) -> Self {
        self.layers.push(Layer::Dropout { p });
        self
    }

    /// Appends batch normalisation with PyTorch's defaults (momentum 0.1, eps 1e-5).
    pub fn batch_norm(self) -> Self {
        self.batch_norm_with(0.1, 1e-5)
    }

    /// Appends batch normalisation with explicit momentum and epsilon.
    pub fn batch_norm_with(mut self, momentum: f64, eps: f64) -> Self {
        self.layers.push(Layer::BatchNorm { momentum, eps });
        self
    }

    /// Appends `y = x + f(x)`, with `f` built by `block` from the current width.
    pub fn residual(mut self, block: impl FnOnce(Sequential) -> Sequential) -> Self {
        let inner = block(Sequential::new(self.width));
        self.layers.push(Layer::Residual(inner.layers));
        // A block that changes the width is reported by `validate`, not here,
        // so that building stays infallible until `build`.
        self.width = inner.width;
        self
    }

    /// Input width.
    pub fn input_width(&self) -> usize {
        self.input
    }

    /// Output width.
    pub fn output_width(&self) -> usize {
        self.width
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Checks that the stack can run: not empty, widths positive, residual
    /// blocks keeping their width.
    pub fn validate(&self) -> Result<()> {
        if self.input == 0 {
            return Err(Error::Model("the input width is 0".into()));
        }
        if !self
            .layers
            .iter()
            .any(|l| matches!(l, Layer::Dense { .. } | Layer::Residual(_)))
        {
            return Err(Error::Model(
                "the model has no layer with parameters".into(),
            ));
        }
        validate_chain(&self.layers, self.input, "").map(|_| ())
    }

    /// Builds the model on `backend`, drawing parameters from `seed`.
    pub fn build<B: crate::Backend>(&self, backend: &B, seed: u64) -> Result<Model<B>> {
        self.validate()?;
        Model::new(backend, self, seed)
    }
}

fn validate_chain(layers: &[Layer], mut width: usize, prefix: &str) -> Result<usize> {
    for (i, layer) in layers.iter().enumerate() {
        match layer {
            Layer::Dense {
                inputs, outputs, ..
            } => {
                if *inputs != width || *outputs == 0 {
                    return Err(Error::Model(format!(
                        "layer {prefix}{i}: dense {inputs}->{outputs} after width {width}"
                    )));
                }
                width = *outputs;
            }
            Layer::Activation(_) => {}
            Layer::Dropout { p } => {
                if !(0.0..1.0).contains(p) {
                    return Err(Error::InvalidParameter {
                        name: "dropout p",
                        value: *p,
                        allowed: "in [0, 1)",
                    });
                }
            }
            Layer::BatchNorm { momentum, eps } => {
                if !(0.0..=1.0).contains(momentum) {
                    return Err(Error::InvalidParameter {
                        name: "batch norm momentum",
                        value: *momentum,
                        allowed: "in [0, 1]",
                    });
                }
                if eps.is_nan() || *eps <= 0.0 {
                    return Err(Error::InvalidParameter {
                        name: "batch norm eps",
                        value: *eps,
                        allowed: "> 0",
                    });
                }
            }
            Layer::Residual(inner) => {
                if inner.is_empty() {
                    return Err(Error::Model(format!(
                        "layer {prefix}{i}: empty residual block"
                    )));
                }
                let out = validate_chain(inner, width, &format!("{prefix}{i}."))?;
                if out != width {
                    return Err(Error::Model(format!(
                        "layer {prefix}{i}: residual block maps width {width} to {out}; y = x + f(x) needs equal widths"
                    )));
                }
            }
        }
    }
    Ok(width)
}
