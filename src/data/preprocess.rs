//! Feature preprocessing: statistics are fitted on the training split only and
//! the same fitted [`Transform`] is applied to every split, so validation and
//! test data never leak into the statistics.
//!
//! Statistics are accumulated in `f64` and use the population convention
//! (divide by `n`, not `n − 1`), so that the fitted split itself comes out with
//! exactly zero mean and unit variance (or identity covariance).

use super::Dataset;
use crate::error::{Error, Result};

/// A preprocessing recipe, to be fitted with [`Preprocessor::fit`].
///
/// ```
/// use wgtrain::data::{Dataset, Preprocessor};
///
/// let mut train = Dataset::classification(vec![1.0, 10.0, 3.0, 30.0], 2, vec![0, 1], 2)?;
/// let fitted = Preprocessor::Standardize.fit(&train)?;
/// fitted.apply(&mut train)?;
/// assert_eq!(train.features(), &[-1.0, -1.0, 1.0, 1.0]);
/// # Ok::<(), wgtrain::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Preprocessor {
    /// Subtract the per-feature mean: enough when all features share a range
    /// (pixels), as the seed's "centering the input" notes.
    Center,
    /// Per feature: subtract the mean, divide by the standard deviation. A
    /// feature that is constant on the training split maps to 0 everywhere
    /// (rather than NaN), since it carries no information to scale.
    Standardize,
    /// One mean and one standard deviation over all features together: for
    /// features with similar ranges, and it keeps their relative scales.
    GlobalStandardize,
    /// PCA whitening: rotate the centred data onto the eigenvectors of the
    /// training covariance (largest variance first), then divide component
    /// `i` by `sqrt(λᵢ + epsilon)`. The training split comes out with a
    /// covariance of `diag(λᵢ / (λᵢ + epsilon))`, i.e. the identity wherever
    /// `λᵢ ≫ epsilon`. `epsilon` (in units of feature variance; must be
    /// positive; [`Preprocessor::WHITEN_EPSILON`] is a good default for data in
    /// `[0, 1]`) keeps directions of (near-)zero variance, such as always-black
    /// MNIST border pixels, from being amplified without bound.
    ///
    /// Cost: `O(n·d²)` for the covariance and `O(d³)` per Jacobi sweep (about
    /// ten sweeps), so a few seconds to a minute for `d = 784`.
    PcaWhiten {
        /// Added to each eigenvalue before the square root.
        epsilon: f64,
    },
}

/// A [`Preprocessor`] fitted to a training split, ready to [`Transform::apply`].
///
/// The fields are public so that a fitted transform can be inspected or saved.
///
/// ```
/// use wgtrain::data::{Dataset, Preprocessor, Transform};
///
/// let train = Dataset::classification(vec![1.0, 3.0], 1, vec![0, 0], 1)?;
/// assert_eq!(Preprocessor::Center.fit(&train)?, Transform::Center { mean: vec![2.0] });
/// # Ok::<(), wgtrain::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    /// `x − mean`.
    Center {
        /// Per-feature mean of the training split.
        mean: Vec<f64>,
    },
    /// `(x − mean) · scale`, with `scale = 1/std`, or 0 for a constant feature.
    Standardize {
        /// Per-feature mean of the training split.
        mean: Vec<f64>,
        /// Per-feature factor applied after centring.
        scale: Vec<f64>,
    },
    /// `(x − mean) · scale` with one mean and one scale for all features.
    GlobalStandardize {
        /// Mean of all feature values of the training split.
        mean: f64,
        /// `1/std` of all feature values, or 0 if they are all equal.
        scale: f64,
    },
    /// `matrix · (x − mean)`.
    PcaWhiten {
        /// Per-feature mean of the training split.
        mean: Vec<f64>,
        /// Covariance eigenvalues, largest first (clamped at 0).
        eigenvalues: Vec<f64>,
        /// `d × d` row-major: row `i` is eigenvector `i` divided by `sqrt(λᵢ + epsilon)`.
        matrix: Vec<f64>,
    },
}

impl Preprocessor {
    /// The whitening epsilon recommended for features scaled to `[0, 1]`.
    pub const WHITEN_EPSILON: f64 = 1e-5;

    /// Computes the statistics of `train`.
    ///
    /// ```
    /// use wgtrain::data::{Dataset, Preprocessor, Transform};
    ///
    /// let train = Dataset::classification(vec![2.0, 2.0, 4.0, 2.0], 2, vec![0, 0], 1)?;
    /// let Transform::Standardize { scale, .. } = Preprocessor::Standardize.fit(&train)? else { unreachable!() };
    /// assert_eq!(scale, vec![1.0, 0.0]); // the second feature is constant
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn fit(&self, train: &Dataset) -> Result<Transform> {
        let (n, d) = (train.len(), train.dim());
        let x = train.features();
        let mut mean = vec![0.0f64; d];
        for row in x.chunks_exact(d) {
            mean.iter_mut()
                .zip(row)
                .for_each(|(m, &v)| *m += f64::from(v));
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        Ok(match *self {
            Preprocessor::Center => Transform::Center { mean },
            Preprocessor::Standardize => {
                let mut var = vec![0.0f64; d];
                let mut constant = vec![true; d];
                for row in x.chunks_exact(d) {
                    for j in 0..d {
                        var[j] += (f64::from(row[j]) - mean[j]).powi(2);
                        constant[j] &= row[j] == x[j];
                    }
                }
                // Constancy is tested exactly: a rounding-sized variance would
                // otherwise turn into a huge scale that amplifies rounding noise.
                let scale = var
                    .iter()
                    .zip(&constant)
                    .map(|(&v, &c)| {
                        if c {
                            0.0
                        } else {
                            (v / n as f64).sqrt().recip()
                        }
                    })
                    .collect();
                Transform::Standardize { mean, scale }
            }
            Preprocessor::GlobalStandardize => {
                let count = x.len() as f64;
                let m = x.iter().map(|&v| f64::from(v)).sum::<f64>() / count;
                let var = x.iter().map(|&v| (f64::from(v) - m).powi(2)).sum::<f64>() / count;
                let constant = x.iter().all(|&v| v == x[0]);
                Transform::GlobalStandardize {
                    mean: m,
                    scale: if constant { 0.0 } else { var.sqrt().recip() },
                }
            }
            Preprocessor::PcaWhiten { epsilon } => {
                if !(epsilon > 0.0 && epsilon.is_finite()) {
                    return Err(Error::InvalidParameter {
                        name: "epsilon",
                        value: epsilon,
                        allowed: "positive and finite",
                    });
                }
                let mut cov = vec![0.0f64; d * d];
                let mut centred = vec![0.0f64; d];
                for row in x.chunks_exact(d) {
                    centred
                        .iter_mut()
                        .zip(row)
                        .zip(&mean)
                        .for_each(|((c, &v), m)| *c = f64::from(v) - m);
                    // Upper triangle only; mirrored below.
                    for i in 0..d {
                        let ci = centred[i];
                        cov[i * d + i..(i + 1) * d]
                            .iter_mut()
                            .zip(&centred[i..])
                            .for_each(|(a, &cj)| *a += ci * cj);
                    }
                }
                for i in 0..d {
                    for j in i..d {
                        cov[i * d + j] /= n as f64;
                        cov[j * d + i] = cov[i * d + j];
                    }
                }
                let (values, vectors) = symmetric_eigen(cov, d);
                let mut order: Vec<usize> = (0..d).collect();
                order.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
                let eigenvalues: Vec<f64> = order.iter().map(|&i| values[i].max(0.0)).collect();
                let mut matrix = Vec::with_capacity(d * d);
                for (&i, &lambda) in order.iter().zip(&eigenvalues) {
                    let s = (lambda + epsilon).sqrt().recip();
                    matrix.extend(vectors[i * d..(i + 1) * d].iter().map(|v| v * s));
                }
                Transform::PcaWhiten {
                    mean,
                    eigenvalues,
                    matrix,
                }
            }
        })
    }
}

impl Transform {
    /// The number of features the transform expects (and produces).
    ///
    /// ```
    /// use wgtrain::data::Transform;
    ///
    /// assert_eq!(Transform::Center { mean: vec![0.0; 3] }.dim(), Some(3));
    /// assert_eq!(Transform::GlobalStandardize { mean: 0.0, scale: 1.0 }.dim(), None);
    /// ```
    pub fn dim(&self) -> Option<usize> {
        match self {
            Transform::Center { mean }
            | Transform::Standardize { mean, .. }
            | Transform::PcaWhiten { mean, .. } => Some(mean.len()),
            Transform::GlobalStandardize { .. } => None,
        }
    }

    /// Transforms every row of `data` in place. An error (and `data`
    /// unchanged) if the widths differ or a result is not a finite `f32`.
    ///
    /// ```
    /// use wgtrain::data::{Dataset, Preprocessor};
    ///
    /// let train = Dataset::classification(vec![0.0, 2.0], 1, vec![0, 0], 1)?;
    /// let mut test = Dataset::classification(vec![3.0], 1, vec![0], 1)?;
    /// Preprocessor::GlobalStandardize.fit(&train)?.apply(&mut test)?;
    /// assert_eq!(test.features(), &[2.0]);
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn apply(&self, data: &mut Dataset) -> Result<()> {
        let mut out = data.features.clone();
        self.apply_rows(&mut out)?;
        data.features = out;
        Ok(())
    }

    /// Transforms raw row-major feature rows in place (for inputs that are not
    /// in a [`Dataset`], such as samples to predict). An error if the length
    /// is not a whole number of rows or a result is not a finite `f32`; on
    /// error `rows` may be partly transformed.
    ///
    /// ```
    /// use wgtrain::data::Transform;
    ///
    /// let mut rows = [1.0, 5.0, 3.0, 5.0];
    /// Transform::Center { mean: vec![2.0, 5.0] }.apply_rows(&mut rows)?;
    /// assert_eq!(rows, [-1.0, 0.0, 1.0, 0.0]);
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn apply_rows(&self, rows: &mut [f32]) -> Result<()> {
        if let Some(d) = self.dim() {
            if !rows.len().is_multiple_of(d) {
                return Err(Error::Shape {
                    op: "Transform::apply",
                    detail: format!("{} values are not whole rows of the {d} features the transform was fitted on", rows.len()),
                });
            }
        }
        match self {
            Transform::Center { mean } => {
                for row in rows.chunks_exact_mut(mean.len()) {
                    row.iter_mut()
                        .zip(mean)
                        .for_each(|(v, m)| *v = (f64::from(*v) - m) as f32);
                }
            }
            Transform::Standardize { mean, scale } => {
                for row in rows.chunks_exact_mut(mean.len()) {
                    row.iter_mut()
                        .zip(mean)
                        .zip(scale)
                        .for_each(|((v, m), s)| *v = ((f64::from(*v) - m) * s) as f32);
                }
            }
            Transform::GlobalStandardize { mean, scale } => {
                rows.iter_mut()
                    .for_each(|v| *v = ((f64::from(*v) - mean) * scale) as f32);
            }
            Transform::PcaWhiten { mean, matrix, .. } => {
                let d = mean.len();
                let mut centred = vec![0.0f64; d];
                for row in rows.chunks_exact_mut(d) {
                    centred
                        .iter_mut()
                        .zip(&*row)
                        .zip(mean)
                        .for_each(|((c, &v), m)| *c = f64::from(v) - m);
                    for (out, w) in row.iter_mut().zip(matrix.chunks_exact(d)) {
                        *out = w.iter().zip(&centred).map(|(a, b)| a * b).sum::<f64>() as f32;
                    }
                }
            }
        }
        match rows.iter().position(|v| !v.is_finite()) {
            Some(index) => Err(Error::NonFinite {
                what: "preprocessed features".into(),
                index,
                value: f64::from(rows[index]),
            }),
            None => Ok(()),
        }
    }
}

/// Eigen-decomposition of the symmetric `n × n` row-major matrix `a` by the
/// cyclic Jacobi method: returns the eigenvalues (unsorted) and the matching
/// unit eigenvectors as the rows of an `n × n` matrix.
///
/// Jacobi rather than a faster tridiagonal QR because it is short, needs no
/// dependency, and is accurate to working precision on the small and
/// near-zero eigenvalues that whitening divides by.
fn symmetric_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0f64; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    let total: f64 = a.iter().map(|x| x * x).sum();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|p| (p + 1..n).map(move |q| (p, q)))
            .map(|(p, q)| a[p * n + q].powi(2))
            .sum();
        // Quadratic convergence makes the last sweeps cheap; stop once the
        // off-diagonal mass is at the rounding level of the whole matrix.
        if off <= total * 1e-30 || off == 0.0 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                let (app, aqq) = (a[p * n + p], a[q * n + q]);
                let theta = (aqq - app) / (2.0 * apq);
                // The smaller of the two rotation angles, for stability.
                let t = theta.signum() / (theta.abs() + theta.hypot(1.0));
                let c = (t * t + 1.0).sqrt().recip();
                let s = t * c;
                for k in 0..n {
                    if k != p && k != q {
                        let (akp, akq) = (a[k * n + p], a[k * n + q]);
                        let (np, nq) = (c * akp - s * akq, s * akp + c * akq);
                        a[k * n + p] = np;
                        a[p * n + k] = np;
                        a[k * n + q] = nq;
                        a[q * n + k] = nq;
                    }
                }
                a[p * n + p] = app - t * apq;
                a[q * n + q] = aqq + t * apq;
                a[p * n + q] = 0.0;
                a[q * n + p] = 0.0;
                // Eigenvectors are kept as rows so that the update touches contiguous memory.
                for k in 0..n {
                    let (vp, vq) = (v[p * n + k], v[q * n + k]);
                    v[p * n + k] = c * vp - s * vq;
                    v[q * n + k] = s * vp + c * vq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::symmetric_eigen;

    #[test]
    fn jacobi_reconstructs_a_symmetric_matrix() {
        let n = 5;
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] =
                    ((i * j) as f64).sin() + if i == j { 3.0 } else { (i + j) as f64 * 0.1 };
            }
        }
        let (values, vectors) = symmetric_eigen(a.clone(), n);
        for i in 0..n {
            for j in 0..n {
                let rebuilt: f64 = (0..n)
                    .map(|k| vectors[k * n + i] * values[k] * vectors[k * n + j])
                    .sum();
                assert!(
                    (rebuilt - a[i * n + j]).abs() < 1e-12,
                    "({i},{j}): {rebuilt} vs {}",
                    a[i * n + j]
                );
            }
        }
    }
}
