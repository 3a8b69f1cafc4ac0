//! The cost model of seed 003 (formulas 13–15), generalised to any stack of
//! dense layers, so examples can print achieved GFLOP/s beside measured time.

use crate::nn::Sequential;

/// Operation and memory counts of one training step at a batch size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cost {
    /// Batch size N.
    pub batch: usize,
    /// Floating-point operations of one step (forward, loss, backward; a
    /// multiply-add counts 2), the count GFLOP/s figures are computed from.
    pub flops: u64,
    /// Of which in matrix products.
    pub matmul_flops: u64,
    /// Parameters (weights and biases), formula 14 generalised.
    pub parameters: u64,
    /// Floats held during backpropagation: parameters, their gradients, and
    /// the activations kept for the backward pass (formula 15 generalised).
    pub backprop_floats: u64,
}

impl Cost {
    /// Achieved GFLOP/s for a step that took `seconds`.
    pub fn gflops(&self, seconds: f64) -> f64 {
        self.flops as f64 / seconds / 1e9
    }
}

/// The seed's formulas for a network of `hidden_layers` (L) hidden layers of
/// width `hidden` (d_H), input `d` and `k` classes, at batch `n`:
/// `(ops (13), parameters (14), backprop memory (15))`, verbatim. The seed
/// counts roughly one operation per multiply-add and omits the first layer's
/// bias; [`cost`] is the exact count for any stack.
///
/// ```
/// // 784-512-512-10 at batch 256: about 0.44 G seed-ops (≈ 0.82 GFLOP exact).
/// let (ops, params, mem) = wgtrain::cost::seed003(256, 2, 784, 512, 10);
/// assert_eq!(ops, 256 * (1 * (3 * 512 * 512 + 512) + 512 * (2 * 512 + 784 + 3 * 10 + 1) + 2 * 10));
/// assert_eq!(params, 1 * (512 * 512 + 512) + 512 * (784 + 10) + 10);
/// assert_eq!(mem, params + 2 * 256 * 512);
/// ```
pub fn seed003(n: u64, hidden_layers: u64, d: u64, hidden: u64, k: u64) -> (u64, u64, u64) {
    let l = hidden_layers;
    let ops = n
        * ((l - 1) * (3 * hidden * hidden + hidden)
            + hidden * (2 * hidden + d + 3 * k + 1)
            + 2 * k);
    let params = (l - 1) * (hidden * hidden + hidden) + hidden * (d + k) + k;
    (ops, params, params + 2 * n * hidden)
}

/// The exact cost of one training step of `spec` at batch `n`: per dense
/// layer `in→out`, the forward product, the weight gradient and (except for
/// the first layer, whose input needs no gradient) the input gradient, each
/// `2·n·in·out` FLOPs; bias add and bias gradient `n·out` each; per
/// activation of width w, `σ` and `σ'` about `2·n·w`; a residual add `n·w`
/// each way; the loss about `4·n·classes`.
///
/// ```
/// use wgtrain::{Sequential, Init};
/// let spec = Sequential::new(784).dense(512, Init::HeNormal).relu()
///     .dense(512, Init::HeNormal).relu().dense(10, Init::HeNormal);
/// let c = wgtrain::cost::cost(&spec, 256);
/// assert_eq!(c.matmul_flops, 2 * 256 * (784 * 512 * 2 + 512 * 512 * 3 + 512 * 10 * 3));
/// assert_eq!(c.parameters, 784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10);
/// ```
pub fn cost(spec: &Sequential, n: usize) -> Cost {
    let mut c = Cost {
        batch: n,
        flops: 0,
        matmul_flops: 0,
        parameters: 0,
        backprop_floats: 0,
    };
    let n64 = n as u64;
    let mut activations = n64 * spec.input_width() as u64;
    crate::nn::chain_cost(
        spec.layers(),
        spec.input_shape(),
        true,
        n64,
        &mut c,
        &mut activations,
    );
    c.flops += 4 * n64 * spec.output_width() as u64;
    c.backprop_floats = 2 * c.parameters + activations;
    c
}
