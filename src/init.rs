//! Weight initialisers (seed 001): drawn on the host from a seeded generator
//! in f64, then uploaded, so both backends start from identical values.

use rand::rngs::StdRng;
use rand::Rng;
use rand_distr::{Distribution, Normal};

/// How a tensor's initial values are drawn. `fan_in`/`fan_out` are the
/// layer's input and output widths.
///
/// ```
/// use wgtrain::Init;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let w = Init::XavierUniform.sample(&mut rng, 784, 512, 10);
/// let bound = (6.0f64 / (784.0 + 512.0)).sqrt();
/// assert!(w.iter().all(|v| v.abs() <= bound));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All zeros (shows the symmetry failure of seed 001 when used for weights).
    Zeros,
    /// Every value `c`.
    Constant(f64),
    /// Glorot/Xavier uniform: U(±√(6/(fan_in + fan_out))), for tanh.
    XavierUniform,
    /// Four times Xavier uniform: U(±4·√(6/(fan_in + fan_out))), for sigmoid.
    XavierUniformSigmoid,
    /// The seed's "Xavier" normal: N(0, σ² = 1/fan_in). Note PyTorch's
    /// `xavier_normal_` uses σ² = 2/(fan_in + fan_out) instead.
    XavierNormal,
    /// He/Kaiming normal for ReLU: N(0, σ² = 2/fan_in) (`kaiming_normal_`, fan_in mode).
    HeNormal,
    /// LeCun uniform: U(±√(3/fan_in)), variance 1/fan_in.
    LeCunUniform,
    /// PyTorch's default for `nn.Linear` weights and biases: U(±1/√fan_in).
    TorchDefault,
    /// N(0, σ²) with the σ given, whatever the widths (`nn.init.normal_`):
    /// RBF centres in a standardised feature space take σ = 1.
    Normal(f64),
}

impl Init {
    /// `n` values for a tensor of a layer with the given widths.
    pub fn sample(self, rng: &mut StdRng, fan_in: usize, fan_out: usize, n: usize) -> Vec<f64> {
        let (fi, fo) = (fan_in as f64, fan_out as f64);
        let uniform = |rng: &mut StdRng, a: f64| -> Vec<f64> {
            (0..n).map(|_| rng.random_range(-a..=a)).collect()
        };
        let normal = |rng: &mut StdRng, var: f64| -> Vec<f64> {
            let d = Normal::new(0.0, var.sqrt()).expect("a positive variance");
            (0..n).map(|_| d.sample(rng)).collect()
        };
        match self {
            Init::Zeros => vec![0.0; n],
            Init::Constant(c) => vec![c; n],
            Init::XavierUniform => uniform(rng, (6.0 / (fi + fo)).sqrt()),
            Init::XavierUniformSigmoid => uniform(rng, 4.0 * (6.0 / (fi + fo)).sqrt()),
            Init::XavierNormal => normal(rng, 1.0 / fi),
            Init::HeNormal => normal(rng, 2.0 / fi),
            Init::LeCunUniform => uniform(rng, (3.0 / fi).sqrt()),
            Init::TorchDefault => uniform(rng, 1.0 / fi.sqrt()),
            Init::Normal(std) => normal(rng, std * std),
        }
    }
}
