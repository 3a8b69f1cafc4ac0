//! Activations: an elementwise nonlinearity σ and its derivative σ', the
//! op a newcomer adds to first. Everything about one lives here and in
//! `shaders/activation/`:
//!
//! - this file: the variants, the formulas (the CPU reference both backends
//!   are checked against), the WGSL names and the generated dispatch;
//! - `cpu.rs`: the CPU kernels; `gpu.rs`: the GPU dispatch and its
//!   parameter struct; `tests.rs`: parity on awkward sizes;
//! - `shaders/activation/activation.wgsl`: `act_<name>` and `grad_<name>`
//!   per variant; `kernels.wgsl`: the elementwise entry points.
//!
//! The matmul epilogue (bias + σ, and the fused σ' of the backward pass)
//! and the losses use the same formulas.

pub(crate) mod cpu;
pub(crate) mod gpu;
#[cfg(test)]
mod tests;

pub(crate) use cpu::{with_act, Act};

use crate::backend::Shaped;
use crate::Result;
use num_traits::Float;

/// An elementwise nonlinearity σ and its derivative σ'.
///
/// ```
/// use wgtrain::Activation;
/// assert_eq!(Activation::Relu.apply(-2.0_f64), 0.0);
/// assert!((Activation::Sigmoid.derivative(0.0_f64) - 0.25).abs() < 1e-15);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `x`.
    Identity,
    /// `1 / (1 + e^(−x))`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// LeCun's `1.7159 · tanh(2x/3)`.
    ScaledTanh,
    /// `tanh(x) + β·x`, which keeps a gradient of at least β in saturation.
    TanhPlusLinear {
        /// The slope β of the linear term.
        beta: f32,
    },
    /// `max(0, x)`.
    Relu,
    /// `x` for `x > 0`, `slope · x` otherwise (PyTorch's default slope is 0.01).
    LeakyRelu {
        /// The slope for negative inputs.
        slope: f32,
    },
    /// `x · σ(x)` (SiLU, or swish; PyTorch's `nn.SiLU`).
    Silu,
}

/// LeCun's scaled tanh constants.
/// Every activation by name, with its default parameter.
const NAMED: [(&str, Activation); 8] = [
    ("identity", Activation::Identity),
    ("sigmoid", Activation::Sigmoid),
    ("tanh", Activation::Tanh),
    ("scaled_tanh", Activation::ScaledTanh),
    ("tanh_plus_linear", Activation::TanhPlusLinear { beta: 0.1 }),
    ("relu", Activation::Relu),
    ("leaky_relu", Activation::LeakyRelu { slope: 0.01 }),
    ("silu", Activation::Silu),
];

const SCALED_TANH_A: f64 = 1.7159;
const SCALED_TANH_B: f64 = 2.0 / 3.0;

impl Activation {
    /// The names [`Activation::from_name`] takes (PyTorch's, in snake case).
    pub const NAMES: &'static str =
        "identity, sigmoid, tanh, scaled_tanh, tanh_plus_linear, relu, leaky_relu, silu";

    /// The activation called `name`, with PyTorch's default parameter where
    /// it has one (`leaky_relu`: slope 0.01; `tanh_plus_linear`: β = 0.1).
    ///
    /// ```
    /// use wgtrain::Activation;
    /// assert_eq!(Activation::from_name("leaky_relu"), Some(Activation::LeakyRelu { slope: 0.01 }));
    /// assert_eq!(Activation::from_name("swish"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Activation> {
        NAMED.iter().find(|(n, _)| *n == name).map(|&(_, a)| a)
    }

    /// Its name, as [`Activation::from_name`] takes it.
    pub fn name(self) -> &'static str {
        let kind = std::mem::discriminant(&self);
        NAMED
            .iter()
            .find(|(_, a)| std::mem::discriminant(a) == kind)
            .map(|&(n, _)| n)
            .expect("every activation has a name")
    }

    /// The code of this activation in the WGSL kernels (`ACT` override
    /// constant): its place in [`Activation::all`], the order of the cases
    /// of the generated dispatch.
    pub(crate) fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Sigmoid => 1,
            Activation::Tanh => 2,
            Activation::ScaledTanh => 3,
            Activation::TanhPlusLinear { .. } => 4,
            Activation::Relu => 5,
            Activation::LeakyRelu { .. } => 6,
            Activation::Silu => 7,
        }
    }

    /// The name of its WGSL functions, `act_<name>` and `grad_<name>` in
    /// shaders/activation/activation.wgsl.
    pub(crate) fn wgsl_name(self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::ScaledTanh => "scaled_tanh",
            Activation::TanhPlusLinear { .. } => "tanh_plus_linear",
            Activation::Relu => "relu",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Silu => "silu",
        }
    }

    /// The WGSL dispatch `activate(x, code, p)` and `activate_grad(x, code, p)`:
    /// one case per activation, calling its functions. Codes come from
    /// [`Activation::code`] alone, so there is no code without a case; the
    /// last case also takes WGSL's required `default`.
    pub(crate) fn wgsl_dispatch() -> String {
        let all = Activation::all();
        let switch =
            |prefix: &str| {
                let cases: Vec<String> = all
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        let label = if i + 1 == all.len() {
                            format!("case {}u, default", a.code())
                        } else {
                            format!("case {}u", a.code())
                        };
                        format!(
                            "        {label}: {{ return {prefix}_{}(x, p); }}",
                            a.wgsl_name()
                        )
                    })
                    .collect();
                format!(
                "fn {}(x: f32, code: u32, p: f32) -> f32 {{\n    switch code {{\n{}\n    }}\n}}\n",
                if prefix == "act" { "activate" } else { "activate_grad" },
                cases.join("\n")
            )
            };
        format!(
            "// Generated by Activation::wgsl_dispatch.\n{}{}",
            switch("act"),
            switch("grad")
        )
    }

    /// The activation's parameter (β or the slope), 0 for the others.
    pub(crate) fn param(self) -> f32 {
        match self {
            Activation::TanhPlusLinear { beta } => beta,
            Activation::LeakyRelu { slope } => slope,
            _ => 0.0,
        }
    }

    /// σ(x), the reference formula both backends are checked against.
    pub fn apply<T: Float>(self, x: T) -> T {
        let c = |v: f64| T::from(v).unwrap();
        match self {
            Activation::Identity => x,
            // Two branches so that neither exp overflows: the stable sigmoid.
            Activation::Sigmoid => {
                if x >= T::zero() {
                    T::one() / (T::one() + (-x).exp())
                } else {
                    let e = x.exp();
                    e / (T::one() + e)
                }
            }
            Activation::Tanh => x.tanh(),
            Activation::ScaledTanh => c(SCALED_TANH_A) * (c(SCALED_TANH_B) * x).tanh(),
            Activation::TanhPlusLinear { beta } => x.tanh() + c(beta as f64) * x,
            Activation::Relu => x.max(T::zero()),
            Activation::LeakyRelu { slope } => {
                if x > T::zero() {
                    x
                } else {
                    c(slope as f64) * x
                }
            }
            Activation::Silu => x * Activation::Sigmoid.apply(x),
        }
    }

    /// σ'(x) at the activation's input `x`.
    pub fn derivative<T: Float>(self, x: T) -> T {
        let c = |v: f64| T::from(v).unwrap();
        match self {
            Activation::Identity => T::one(),
            Activation::Sigmoid => {
                let s = self.apply(x);
                s * (T::one() - s)
            }
            Activation::Tanh => {
                let t = x.tanh();
                T::one() - t * t
            }
            Activation::ScaledTanh => {
                let t = (c(SCALED_TANH_B) * x).tanh();
                c(SCALED_TANH_A * SCALED_TANH_B) * (T::one() - t * t)
            }
            Activation::TanhPlusLinear { beta } => {
                let t = x.tanh();
                T::one() - t * t + c(beta as f64)
            }
            // The subgradient at 0 is taken as 0, as PyTorch does.
            Activation::Relu => {
                if x > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Activation::LeakyRelu { slope } => {
                if x > T::zero() {
                    T::one()
                } else {
                    c(slope as f64)
                }
            }
            // σ + x·σ(1 − σ) = σ·(1 + x·(1 − σ)).
            Activation::Silu => {
                let s = Activation::Sigmoid.apply(x);
                s * (T::one() + x * (T::one() - s))
            }
        }
    }

    /// Whether `σ'(σ(x)) = σ'(x)` for every `x`, so that the backward pass
    /// can read the activation's output in place of its input: true for
    /// the identity, ReLU and leaky ReLU with a slope ≥ 0 (the output is
    /// positive exactly where the input is). Training then writes only the
    /// output, from the product's epilogue, and never the input.
    ///
    /// ```
    /// use wgtrain::Activation;
    /// assert!(Activation::Relu.derivative_reads_output());
    /// assert!(!Activation::Sigmoid.derivative_reads_output());
    /// let z = -0.5f32;
    /// let relu = Activation::Relu;
    /// assert_eq!(relu.derivative(relu.apply(z)), relu.derivative(z));
    /// ```
    pub fn derivative_reads_output(self) -> bool {
        match self {
            Activation::Identity | Activation::Relu => true,
            Activation::LeakyRelu { slope } => slope >= 0.0,
            _ => false,
        }
    }

    /// All activations with typical parameters, for tests and examples.
    pub fn all() -> [Activation; 8] {
        [
            Activation::Identity,
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::ScaledTanh,
            Activation::TanhPlusLinear { beta: 0.1 },
            Activation::Relu,
            Activation::LeakyRelu { slope: 0.01 },
            Activation::Silu,
        ]
    }
}

/// Checks `activation_backward`: the input, its gradient and the output
/// gradient share one shape.
pub(crate) fn check_backward<T: Shaped>(z: &T, grad_out: &T, grad_in: &T) -> Result<()> {
    use crate::backend::checks::check_same;
    check_same(
        "activation_backward",
        "pre-activation vs gradient",
        z,
        grad_out,
    )?;
    check_same(
        "activation_backward",
        "pre-activation vs input gradient",
        z,
        grad_in,
    )
}
