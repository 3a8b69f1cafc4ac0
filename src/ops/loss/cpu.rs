//! The CPU reference of the losses, row by row.

use super::Loss;
use crate::backend::cpu::cast;
use crate::backend::{Activation, Cpu, CpuTensor, Target};
use crate::Result;
use num_traits::Float;

pub(crate) fn loss<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    kind: Loss,
    pred: &CpuTensor<T>,
    target: Target<'_, Cpu<T>>,
    grad: &mut CpuTensor<T>,
    loss: &mut CpuTensor<T>,
) -> Result<()> {
    let inv_n: T = cast(1.0 / pred.rows as f64);
    let total = row_losses(kind, pred, target, grad)
        .into_iter()
        .fold(T::zero(), |s, l| s + l);
    loss.data[0] = total * inv_n;
    Ok(())
}

/// Each row's loss (summed over its columns, not averaged): what the
/// loss-weighted sampler remembers per sample.
pub(crate) fn loss_per_row<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    kind: Loss,
    pred: &CpuTensor<T>,
    target: Target<'_, Cpu<T>>,
    out: &mut CpuTensor<T>,
) -> Result<()> {
    let mut grad = CpuTensor {
        rows: pred.rows,
        cols: pred.cols,
        data: vec![T::zero(); pred.data.len()],
    };
    out.data = row_losses(kind, pred, target, &mut grad);
    Ok(())
}

/// Writes the gradient of the mean loss into `grad` and returns each row's loss.
fn row_losses<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    kind: Loss,
    pred: &CpuTensor<T>,
    target: Target<'_, Cpu<T>>,
    grad: &mut CpuTensor<T>,
) -> Vec<T> {
    let (rows, cols) = (pred.rows, pred.cols);
    let inv_n: T = cast(1.0 / rows as f64);
    // Label smoothing: t ↦ (1 − ε)·t + ε/C (ε = 0 leaves t exactly as is).
    let keep: T = cast(1.0 - kind.smoothing());
    let uniform: T = cast(kind.smoothing() / cols as f64);
    let mut losses = Vec::with_capacity(rows);
    for i in 0..rows {
        let z = &pred.data[i * cols..(i + 1) * cols];
        let g = &mut grad.data[i * cols..(i + 1) * cols];
        let (row_loss, label) = match target {
            Target::Labels(l) => (T::zero(), Some(l.data[i] as usize)),
            Target::Dense(_) => (T::zero(), None),
        };
        // t(j): the target of column j, a one-hot when given a label.
        let dense = match target {
            Target::Dense(t) => Some(&t.data[i * cols..(i + 1) * cols]),
            Target::Labels(_) => None,
        };
        let t_at = |j: usize| {
            let t = match (label, dense) {
                (Some(y), _) => {
                    if j == y {
                        T::one()
                    } else {
                        T::zero()
                    }
                }
                (None, Some(d)) => d[j],
                (None, None) => unreachable!("a target is either labels or dense"),
            };
            keep * t + uniform
        };
        let mut row_loss = row_loss;
        match kind {
            Loss::SoftmaxCrossEntropy | Loss::SmoothedCrossEntropy { .. } => {
                // loss = logsumexp(z)·Σt − Σ t·z; grad = softmax(z)·Σt − t.
                let max = z.iter().fold(T::neg_infinity(), |m, &v| m.max(v));
                let sum_exp = z.iter().fold(T::zero(), |s, &v| s + (v - max).exp());
                let lse = max + sum_exp.ln();
                let t_sum = (0..cols).fold(T::zero(), |s, j| s + t_at(j));
                row_loss = lse * t_sum - (0..cols).fold(T::zero(), |s, j| s + t_at(j) * z[j]);
                for j in 0..cols {
                    g[j] = ((z[j] - lse).exp() * t_sum - t_at(j)) * inv_n;
                }
            }
            Loss::SquaredError => {
                for j in 0..cols {
                    let d = z[j] - t_at(j);
                    row_loss = row_loss + cast::<T>(0.5) * d * d;
                    g[j] = d * inv_n;
                }
            }
            Loss::L1 => {
                for j in 0..cols {
                    let d = z[j] - t_at(j);
                    row_loss = row_loss + d.abs();
                    let s = if d > T::zero() {
                        T::one()
                    } else if d < T::zero() {
                        -T::one()
                    } else {
                        T::zero()
                    };
                    g[j] = s * inv_n;
                }
            }
            Loss::Hinge | Loss::SquaredHinge => {
                let y = label.expect("checked: hinge losses take labels");
                let squared = kind == Loss::SquaredHinge;
                let mut g_y = T::zero();
                for j in 0..cols {
                    g[j] = T::zero();
                    if j == y {
                        continue;
                    }
                    let margin = z[j] - z[y] + T::one();
                    if margin > T::zero() {
                        let (l, d) = if squared {
                            (margin * margin, cast::<T>(2.0) * margin)
                        } else {
                            (margin, T::one())
                        };
                        row_loss = row_loss + l;
                        g[j] = d * inv_n;
                        g_y = g_y - d * inv_n;
                    }
                }
                g[y] = g_y;
            }
            Loss::RbfEuclidean { beta } => {
                let beta: T = cast(beta);
                for j in 0..cols {
                    let d = z[j] - t_at(j);
                    let e = (-beta * d * d).exp();
                    // 1 − e without the cancellation near the target.
                    row_loss = row_loss - (-beta * d * d).exp_m1();
                    g[j] = cast::<T>(2.0) * beta * d * e * inv_n;
                }
            }
            Loss::BinaryCrossEntropy => {
                // max(z,0) − z·t + ln(1 + e^(−|z|)); grad σ(z) − t.
                for j in 0..cols {
                    let (zj, tj) = (z[j], t_at(j));
                    row_loss = row_loss + zj.max(T::zero()) - zj * tj + (-zj.abs()).exp().ln_1p();
                    g[j] = (Activation::Sigmoid.apply(zj) - tj) * inv_n;
                }
            }
        }
        losses.push(row_loss);
    }
    losses
}
