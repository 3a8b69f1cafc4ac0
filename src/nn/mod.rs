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

mod describe;
pub mod layers;
mod model;
mod predict;

pub use layers::batch_norm::BatchNorm;
pub use layers::conv::Conv2d;
pub use layers::dense::Dense;
pub use layers::dropout::Dropout;
pub use layers::flatten::Flatten;
pub use layers::maxout::Maxout;
pub use layers::noise::GaussianNoise;
pub use layers::pool::Pool2d;
pub use layers::rbf::Rbf;
pub use layers::Shape;
pub use model::{Buffer, FlatParams, Mode, Model, Parameter};

use crate::cost::Cost;
use crate::{Activation, Backend, Error, Init, Result};
use layers::{BuildCtx, Chain, LayerUnit, Module};

/// One layer of a [`Sequential`] description. Each variant's behaviour
/// lives in its own file under `src/nn/layers/`; this enum only names them.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    /// `Z = X·Wᵀ + b`, with `W` of shape `[outputs, inputs]` as in PyTorch.
    Dense(Dense),
    /// An elementwise activation.
    Activation(Activation),
    /// `y = x + f(x)` with `f` a sub-stack that keeps the shape.
    Residual(Vec<Layer>),
    /// Inverted dropout (identity in evaluation).
    Dropout(Dropout),
    /// BatchNorm1d over flat features, BatchNorm2d over image channels.
    BatchNorm(BatchNorm),
    /// A 2-D convolution over NCHW images (`nn.Conv2d`).
    Conv2d(Conv2d),
    /// Max or average pooling over NCHW images.
    Pool2d(Pool2d),
    /// Any sample shape as flat features (`nn.Flatten`).
    Flatten(Flatten),
    /// `x + σ·N(0, 1)` in training, the identity in evaluation.
    GaussianNoise(GaussianNoise),
    /// The maximum of each group of `pieces` consecutive features.
    Maxout(Maxout),
    /// Radial-basis-function units `exp(−βⱼ‖x − cⱼ‖²)`.
    Rbf(Rbf),
}

impl Layer {
    /// The description's own answers: checks, output shape, cost.
    fn unit(&self) -> &dyn LayerUnit {
        match self {
            Layer::Dense(d) => d,
            Layer::Activation(a) => a,
            Layer::Residual(inner) => inner,
            Layer::Dropout(d) => d,
            Layer::BatchNorm(bn) => bn,
            Layer::Conv2d(c) => c,
            Layer::Pool2d(p) => p,
            Layer::Flatten(f) => f,
            Layer::GaussianNoise(n) => n,
            Layer::Maxout(m) => m,
            Layer::Rbf(r) => r,
        }
    }

    /// The layer built on `b` for inputs of shape `input`.
    fn build<B: Backend>(
        &self,
        b: &B,
        input: &Shape,
        ctx: &mut BuildCtx<'_>,
    ) -> Result<Box<dyn Module<B>>> {
        let width = input.len();
        Ok(match self {
            Layer::Dense(d) => Box::new(d.build(b, ctx)?),
            Layer::Activation(act) => {
                Box::new(layers::activation::ActivationModule { act: *act, width })
            }
            Layer::Residual(inner) => Box::new(layers::residual::build(inner, b, input, ctx)?),
            Layer::Dropout(d) => Box::new(d.build(width, ctx)),
            Layer::BatchNorm(bn) => Box::new(bn.build(b, input)?),
            Layer::Conv2d(c) => Box::new(c.build(b, input, ctx)?),
            Layer::Pool2d(p) => Box::new(p.build(input)),
            Layer::Flatten(_) => Box::new(layers::flatten::FlattenModule { width }),
            Layer::GaussianNoise(n) => Box::new(n.build(width, ctx)),
            Layer::Maxout(m) => Box::new(m.build(input)),
            Layer::Rbf(r) => Box::new(r.build(b, ctx)?),
        })
    }
}

/// The output shape of `layers` on `input`, checking each; `prefix` names
/// the layers in errors (`"2."` inside block 2).
fn chain_shape(layers: &[Layer], input: &Shape, prefix: &str) -> Result<Shape> {
    let mut shape = input.clone();
    for (i, layer) in layers.iter().enumerate() {
        shape = layer.unit().output_shape(&shape, &format!("{prefix}{i}"))?;
    }
    Ok(shape)
}

/// Adds the cost of `layers` on `input` at batch `n` to `c`.
pub(crate) fn chain_cost(
    layers: &[Layer],
    input: &Shape,
    mut first: bool,
    n: u64,
    c: &mut Cost,
    kept: &mut u64,
) {
    let mut shape = input.clone();
    for layer in layers {
        layer.unit().cost(&shape, n, first, c, kept);
        shape = layer
            .unit()
            .output_shape(&shape, "")
            .expect("costed specs are validated");
        first = false;
    }
}

/// Builds `layers` on `b`, drawing parameters in order.
pub(crate) fn build_chain<B: Backend>(
    layers: &[Layer],
    b: &B,
    input: &Shape,
    ctx: &mut BuildCtx<'_>,
) -> Result<Chain<B>> {
    let mut shape = input.clone();
    let mut chain = Vec::with_capacity(layers.len());
    for layer in layers {
        chain.push(layer.build(b, &shape, ctx)?);
        shape = layer.unit().output_shape(&shape, "")?;
    }
    Ok(chain)
}

/// A description of a feed-forward network, independent of any backend:
/// an input shape and layers, each taking the shape the one before gives.
#[derive(Clone, Debug, PartialEq)]
pub struct Sequential {
    input: Shape,
    /// The shape after the last layer (as far as the layers allow).
    shape: Shape,
    layers: Vec<Layer>,
}

impl Sequential {
    /// An empty stack taking `input` features.
    pub fn new(input: usize) -> Self {
        Sequential::with_input_shape(Shape::features(input))
    }

    /// An empty stack taking samples of shape `input` (e.g. `[1, 28, 28]`).
    pub fn with_input_shape(input: Shape) -> Self {
        Sequential {
            shape: input.clone(),
            input,
            layers: Vec::new(),
        }
    }

    /// Appends `layer`; its output shape becomes the stack's (a layer that
    /// cannot take the current shape is reported by [`Sequential::validate`]).
    pub fn push(mut self, layer: Layer) -> Self {
        if let Ok(shape) = layer.unit().output_shape(&self.shape, "") {
            self.shape = shape;
        }
        self.layers.push(layer);
        self
    }

    /// Appends a dense layer with zero biases.
    pub fn dense(self, outputs: usize, weight_init: Init) -> Self {
        self.dense_with(outputs, weight_init, Init::Zeros)
    }

    /// Appends a dense layer with explicit weight and bias initialisers.
    pub fn dense_with(self, outputs: usize, weight_init: Init, bias_init: Init) -> Self {
        let inputs = self.shape.len();
        self.push(Layer::Dense(Dense {
            inputs,
            outputs,
            weight_init,
            bias_init,
            bias: true,
        }))
    }

    /// Appends a dense layer without a bias (`nn.Linear(..., bias=False)`),
    /// the usual layer in front of a batch norm, whose shift makes a bias
    /// redundant there.
    ///
    /// ```
    /// use wgtrain::{Cpu, Init, Sequential};
    /// let model = Sequential::new(4)
    ///     .dense_no_bias(3, Init::HeNormal)
    ///     .batch_norm()
    ///     .relu()
    ///     .dense(2, Init::XavierUniform)
    ///     .build(&Cpu::<f32>::new(), 0)
    ///     .unwrap();
    /// assert_eq!(model.parameter_names()[..3], ["0.weight", "1.weight", "1.bias"]);
    /// ```
    pub fn dense_no_bias(self, outputs: usize, weight_init: Init) -> Self {
        let inputs = self.shape.len();
        self.push(Layer::Dense(Dense {
            inputs,
            outputs,
            weight_init,
            bias_init: Init::Zeros,
            bias: false,
        }))
    }

    /// Appends an activation.
    pub fn act(self, act: Activation) -> Self {
        self.push(Layer::Activation(act))
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

    /// Appends Gaussian noise injection with standard deviation `std`
    /// (training only; see [`GaussianNoise`]).
    pub fn gaussian_noise(self, std: f64) -> Self {
        self.push(Layer::GaussianNoise(GaussianNoise { std }))
    }

    /// Appends `units` maxout units of `pieces` pieces each (Goodfellow et
    /// al. 2013): a dense layer of `units × pieces` outputs, then
    /// [`Maxout`] over each unit's pieces. Goodfellow et al. pair it with
    /// dropout and a max-norm constraint.
    pub fn maxout(self, units: usize, pieces: usize, weight_init: Init) -> Self {
        self.dense(units * pieces, weight_init)
            .maxout_pieces(pieces)
    }

    /// Appends only the maximum over groups of `pieces` consecutive features
    /// (the current width must be a multiple of `pieces`).
    pub fn maxout_pieces(self, pieces: usize) -> Self {
        self.push(Layer::Maxout(Maxout { pieces }))
    }

    /// Appends `units` radial-basis-function units (see [`Rbf`]), centres
    /// drawn from N(0, 1) (for standardised inputs), every width starting
    /// at `beta`.
    pub fn rbf(self, units: usize, beta: f64) -> Self {
        let inputs = self.shape.len();
        self.push(Layer::Rbf(Rbf {
            inputs,
            units,
            centre_init: Init::Normal(1.0),
            beta,
        }))
    }

    /// Appends inverted dropout with drop probability `p` ∈ [0, 1).
    pub fn dropout(self, p: f64) -> Self {
        self.push(Layer::Dropout(Dropout { p }))
    }

    /// Appends batch normalisation with PyTorch's defaults (momentum 0.1, eps 1e-5).
    pub fn batch_norm(self) -> Self {
        self.batch_norm_with(0.1, 1e-5)
    }

    /// Appends batch normalisation with explicit momentum and epsilon.
    pub fn batch_norm_with(self, momentum: f64, eps: f64) -> Self {
        self.push(Layer::BatchNorm(BatchNorm { momentum, eps }))
    }

    /// Appends a 2-D convolution; its input channels are the current
    /// shape's (which must be `[channels, height, width]`, see
    /// [`Sequential::with_input_shape`]).
    ///
    /// ```
    /// use wgtrain::nn::{Conv2d, Shape};
    /// use wgtrain::Sequential;
    /// let spec = Sequential::with_input_shape(Shape::new(&[3, 32, 32]))
    ///     .conv2d(Conv2d::new(16, 3).padding(1).stride(2));
    /// assert_eq!(spec.output_shape(), &Shape::new(&[16, 16, 16]));
    /// ```
    pub fn conv2d(self, conv: Conv2d) -> Self {
        let in_channels = self.shape.image().map_or(0, |[c, _, _]| c);
        self.push(Layer::Conv2d(Conv2d {
            in_channels,
            ..conv
        }))
    }

    /// Appends max or average pooling with explicit settings.
    pub fn pool2d(self, pool: Pool2d) -> Self {
        self.push(Layer::Pool2d(pool))
    }

    /// Appends `kernel × kernel` max pooling with stride `kernel` (`nn.MaxPool2d(kernel)`).
    pub fn max_pool2d(self, kernel: usize) -> Self {
        self.pool2d(Pool2d::max(kernel))
    }

    /// Appends `kernel × kernel` average pooling with stride `kernel` (`nn.AvgPool2d(kernel)`).
    pub fn avg_pool2d(self, kernel: usize) -> Self {
        self.pool2d(Pool2d::average(kernel))
    }

    /// Appends `nn.Flatten()`: what follows sees flat features.
    pub fn flatten(self) -> Self {
        self.push(Layer::Flatten(Flatten))
    }

    /// Appends `y = x + f(x)`, with `f` built by `block` from the current
    /// shape. A block that changes the shape is reported by `validate`, not
    /// here, so that describing stays infallible until `build`.
    pub fn residual(self, block: impl FnOnce(Sequential) -> Sequential) -> Self {
        let inner = block(Sequential::with_input_shape(self.shape.clone()));
        self.push(Layer::Residual(inner.layers))
    }

    /// The shape of one input sample.
    pub fn input_shape(&self) -> &Shape {
        &self.input
    }

    /// The shape of one output sample.
    pub fn output_shape(&self) -> &Shape {
        &self.shape
    }

    /// Values per input sample: the columns of an input batch.
    pub fn input_width(&self) -> usize {
        self.input.len()
    }

    /// Values per output sample: the columns of an output batch.
    pub fn output_width(&self) -> usize {
        self.shape.len()
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Checks that the stack can run: a non-empty input, some layer with
    /// parameters, each layer taking the shape before it and its settings
    /// in range, residual blocks keeping their shape.
    pub fn validate(&self) -> Result<()> {
        if self.input.is_empty() {
            return Err(Error::Model(format!(
                "the input shape {} holds no value",
                self.input
            )));
        }
        if !self.layers.iter().any(|l| {
            matches!(
                l,
                Layer::Dense(_) | Layer::Conv2d(_) | Layer::Residual(_) | Layer::Rbf(_)
            )
        }) {
            return Err(Error::Model(
                "the model has no layer with parameters".into(),
            ));
        }
        chain_shape(&self.layers, &self.input, "").map(|_| ())
    }

    /// Builds the model on `backend`, drawing parameters from `seed`.
    pub fn build<B: crate::Backend>(&self, backend: &B, seed: u64) -> Result<Model<B>> {
        self.validate()?;
        Model::new(backend, self, seed)
    }
}
