//! A stack's architecture as JSON, and back: what a shipped model records
//! beside its weights (`checkpoint::save_shipped`) so that it can be
//! rebuilt without the code that made it.
//!
//! ```text
//! {"input": [784], "layers": [{"dense": {"outputs": 512, "bias": true}}, {"batch_norm": {"momentum": 0.1, "eps": 1e-5}},
//!   {"activation": "relu"}, {"dropout": {"p": 0.4}}, {"residual": [...]}, {"dense": {"outputs": 10, "bias": true}}]}
//! {"input": [1, 28, 28], "layers": [{"conv2d": {"out_channels": 6, "kernel": [5, 5], "stride": [1, 1],
//!   "padding": [2, 2], "dilation": [1, 1], "groups": 1, "bias": true}},
//!   {"max_pool2d": {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0], "dilation": [1, 1]}},
//!   {"flatten": {}}, ...]}
//! ```
//!
//! Initialisers are not recorded: a rebuilt stack gets its weights from
//! the file. Activations with a parameter are objects:
//! `{"leaky_relu": {"slope": 0.01}}`, `{"tanh_plus_linear": {"beta": 0.1}}`.

use super::{Conv2d, Layer, Pool2d, Sequential, Shape};
use crate::backend::Pool;
use crate::{Activation, Error, Init, Result};
use serde_json::{json, Value};

impl Sequential {
    /// The architecture as JSON (see the module docs).
    ///
    /// ```
    /// use wgtrain::{Init, Sequential};
    /// let spec = Sequential::new(4).dense(3, Init::HeNormal).relu().dense(2, Init::XavierUniform);
    /// let again = Sequential::from_description(&spec.describe()).unwrap();
    /// assert_eq!(again.describe(), spec.describe());
    /// ```
    pub fn describe(&self) -> Value {
        json!({
            "input": self.input_shape().dims(),
            "layers": describe_layers(self.layers()),
        })
    }

    /// Rebuilds a stack from [`Sequential::describe`]'s JSON, with zero
    /// initialisers (the weights come from a file); anything it does not
    /// know is an [`Error::Format`] naming the part.
    pub fn from_description(description: &Value) -> Result<Sequential> {
        let bad = |detail: String| Error::Format {
            path: "architecture".into(),
            detail,
        };
        let input: Vec<usize> = description["input"]
            .as_array()
            .and_then(|dims| {
                dims.iter()
                    .map(|d| d.as_u64().map(|d| d as usize))
                    .collect()
            })
            .ok_or_else(|| bad(format!("no input shape in {description}")))?;
        let layers = description["layers"]
            .as_array()
            .ok_or_else(|| bad(format!("no layer list in {description}")))?;
        let spec = stack(Sequential::with_input_shape(Shape::new(&input)), layers)?;
        spec.validate()?;
        Ok(spec)
    }
}

fn describe_layers(layers: &[Layer]) -> Vec<Value> {
    layers
        .iter()
        .map(|layer| match layer {
            Layer::Dense(d) => json!({"dense": {"outputs": d.outputs, "bias": d.bias}}),
            Layer::Activation(a) => json!({"activation": activation_name(*a)}),
            Layer::Residual(inner) => json!({"residual": describe_layers(inner)}),
            Layer::Dropout(d) => json!({"dropout": {"p": d.p}}),
            Layer::BatchNorm(bn) => json!({"batch_norm": {"momentum": bn.momentum, "eps": bn.eps}}),
            Layer::Conv2d(c) => json!({"conv2d": {
                "out_channels": c.out_channels, "kernel": c.kernel, "stride": c.stride,
                "padding": c.padding, "dilation": c.dilation, "groups": c.groups, "bias": c.bias,
            }}),
            Layer::Pool2d(p) => json!({p.kind_name(): {
                "kernel": p.kernel, "stride": p.stride, "padding": p.padding, "dilation": p.dilation,
            }}),
            Layer::Flatten(_) => json!({"flatten": {}}),
            Layer::GaussianNoise(n) => json!({"gaussian_noise": {"std": n.std}}),
            Layer::Maxout(m) => json!({"maxout": {"pieces": m.pieces}}),
            Layer::Rbf(r) => json!({"rbf": {"units": r.units, "beta": r.beta}}),
        })
        .collect()
}

fn activation_name(a: Activation) -> Value {
    match a {
        Activation::TanhPlusLinear { beta } => json!({"tanh_plus_linear": {"beta": beta}}),
        Activation::LeakyRelu { slope } => json!({"leaky_relu": {"slope": slope}}),
        plain => json!(plain.name()),
    }
}

fn activation(v: &Value) -> Option<Activation> {
    let param = |kind: &str, name: &str| v[kind][name].as_f64().map(|x| x as f32);
    match v.as_str() {
        Some(name) => Activation::from_name(name).filter(|a| {
            !matches!(
                a,
                Activation::LeakyRelu { .. } | Activation::TanhPlusLinear { .. }
            )
        }),
        None if v.get("leaky_relu").is_some() => Some(Activation::LeakyRelu {
            slope: param("leaky_relu", "slope")?,
        }),
        None => Some(Activation::TanhPlusLinear {
            beta: param("tanh_plus_linear", "beta")?,
        }),
    }
}

/// A `[a, b]` setting of a layer.
fn pair(body: &Value, name: &str) -> Option<[usize; 2]> {
    match body[name].as_array()?.as_slice() {
        [a, b] => Some([a.as_u64()? as usize, b.as_u64()? as usize]),
        _ => None,
    }
}

/// Appends `layers` to `spec`, in order.
fn stack(mut spec: Sequential, layers: &[Value]) -> Result<Sequential> {
    let bad = |layer: &Value| Error::Format {
        path: "architecture".into(),
        detail: format!("unknown or incomplete layer {layer}"),
    };
    for layer in layers {
        let (kind, body) = layer
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.iter().next())
            .ok_or_else(|| bad(layer))?;
        let number = |name: &str| body[name].as_f64().ok_or_else(|| bad(layer));
        spec = match kind.as_str() {
            "dense" => {
                let outputs = body["outputs"].as_u64().ok_or_else(|| bad(layer))? as usize;
                // Descriptions written before bias-free layers have no "bias".
                match body.get("bias").map(Value::as_bool) {
                    None | Some(Some(true)) => spec.dense_with(outputs, Init::Zeros, Init::Zeros),
                    Some(Some(false)) => spec.dense_no_bias(outputs, Init::Zeros),
                    Some(None) => return Err(bad(layer)),
                }
            }
            "activation" => spec.act(activation(body).ok_or_else(|| bad(layer))?),
            "dropout" => spec.dropout(number("p")?),
            "batch_norm" => spec.batch_norm_with(number("momentum")?, number("eps")?),
            "conv2d" => {
                let conv = Conv2d {
                    in_channels: 0,
                    out_channels: body["out_channels"].as_u64().ok_or_else(|| bad(layer))? as usize,
                    kernel: pair(body, "kernel").ok_or_else(|| bad(layer))?,
                    stride: pair(body, "stride").ok_or_else(|| bad(layer))?,
                    padding: pair(body, "padding").ok_or_else(|| bad(layer))?,
                    dilation: pair(body, "dilation").ok_or_else(|| bad(layer))?,
                    groups: body["groups"].as_u64().ok_or_else(|| bad(layer))? as usize,
                    bias: body["bias"].as_bool().ok_or_else(|| bad(layer))?,
                    weight_init: Init::Zeros,
                    bias_init: Init::Zeros,
                };
                spec.conv2d(conv)
            }
            "max_pool2d" | "avg_pool2d" => {
                let pool = Pool2d {
                    kind: if kind == "max_pool2d" {
                        Pool::Max
                    } else {
                        Pool::Average
                    },
                    kernel: pair(body, "kernel").ok_or_else(|| bad(layer))?,
                    stride: pair(body, "stride").ok_or_else(|| bad(layer))?,
                    padding: pair(body, "padding").ok_or_else(|| bad(layer))?,
                    dilation: pair(body, "dilation").ok_or_else(|| bad(layer))?,
                };
                spec.pool2d(pool)
            }
            "flatten" => spec.flatten(),
            "gaussian_noise" => spec.gaussian_noise(number("std")?),
            "maxout" => spec.maxout_pieces(number("pieces")? as usize),
            "rbf" => spec.rbf(number("units")? as usize, number("beta")?),
            "residual" => {
                let inner = body.as_array().ok_or_else(|| bad(layer))?;
                let block = stack(
                    Sequential::with_input_shape(spec.output_shape().clone()),
                    inner,
                )?;
                spec.push(Layer::Residual(block.layers().to_vec()))
            }
            _ => return Err(bad(layer)),
        };
    }
    Ok(spec)
}
