//! The data layer: in-memory data sets, loaders (IDX, CSV, MNIST) and
//! preprocessing fitted on a training split. Everything here runs on the
//! host; the trainer uploads [`Dataset::features`] and the targets itself.
//!
//! ```
//! use wgtrain::data::{Dataset, Preprocessor, SplitSpec};
//!
//! let x: Vec<f32> = (0..40).map(|i| i as f32).collect();
//! let y: Vec<u32> = (0..20).map(|i| i % 2).collect();
//! let data = Dataset::classification(x, 2, y, 2)?;
//! let mut parts = data.split(SplitSpec::Counts { validation: 5, test: 0 }, Some(7))?;
//! let fitted = Preprocessor::Standardize.fit(&parts.train)?;
//! fitted.apply(&mut parts.train)?;
//! if let Some(v) = parts.validation.as_mut() {
//!     fitted.apply(v)?;
//! }
//! assert_eq!(parts.train.len(), 15);
//! # Ok::<(), wgtrain::Error>(())
//! ```

mod csv;
mod idx;
pub mod mnist;
mod preprocess;
pub mod pypi;

pub use csv::{load_csv, Column, MAX_CSV_LINE};
pub use idx::{
    load_idx, parse_idx, parse_idx_images, parse_idx_labels, read_idx_images, read_idx_labels,
    write_idx_images, write_idx_labels, IdxImages, MAX_IDX_BYTES,
};
pub use preprocess::{Preprocessor, Transform};

use crate::error::{Error, Result};
use std::ops::Range;

/// What each row of a [`Dataset`] should be predicted as.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// One class index per row, each below `classes`.
    Labels {
        /// The class of each row.
        labels: Vec<u32>,
        /// Number of classes (labels are in `0..classes`).
        classes: usize,
    },
    /// A dense target row of `width` values per row (regression, soft labels).
    Dense {
        /// `n × width`, row-major.
        values: Vec<f32>,
        /// Values per row.
        width: usize,
    },
}

/// An in-memory data set: `n × d` row-major `f32` features and their targets.
///
/// Construction validates everything the trainer relies on (non-empty, lengths
/// that agree, labels in range, finite numbers), so a `Dataset` that exists
/// is always usable.
///
/// ```
/// use wgtrain::data::Dataset;
///
/// let d = Dataset::classification(vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 3, vec![1, 0], 2)?;
/// assert_eq!((d.len(), d.dim(), d.classes()), (2, 3, Some(2)));
/// assert_eq!(d.row(1), &[3.0, 4.0, 5.0]);
/// assert!(Dataset::classification(vec![0.0, 1.0], 1, vec![0, 2], 2).is_err());
/// # Ok::<(), wgtrain::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    features: Vec<f32>,
    dim: usize,
    targets: Targets,
}

/// How [`Dataset::split`] sizes the validation and test parts; the training
/// part gets the rest and must not end up empty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SplitSpec {
    /// Fractions of the rows, each in `[0, 1)`, rounded to the nearest row.
    Fractions {
        /// Share of rows for validation.
        validation: f64,
        /// Share of rows for test.
        test: f64,
    },
    /// Exact row counts.
    Counts {
        /// Rows for validation.
        validation: usize,
        /// Rows for test.
        test: usize,
    },
}

/// The parts [`Dataset::split`] returns; a part asked to hold zero rows is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Splits {
    /// The rows to fit on.
    pub train: Dataset,
    /// Rows held out for model selection.
    pub validation: Option<Dataset>,
    /// Rows held out for the final report.
    pub test: Option<Dataset>,
}

impl Dataset {
    /// A data set with arbitrary targets; see [`Dataset::classification`] and
    /// [`Dataset::regression`] for the common cases.
    ///
    /// ```
    /// use wgtrain::data::{Dataset, Targets};
    ///
    /// let t = Targets::Dense { values: vec![0.5, 1.5], width: 1 };
    /// assert_eq!(Dataset::new(vec![1.0, 2.0], 1, t)?.len(), 2);
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn new(features: Vec<f32>, dim: usize, targets: Targets) -> Result<Self> {
        const OP: &str = "Dataset";
        if dim == 0 || features.is_empty() {
            return Err(Error::Empty {
                op: OP,
                rows: features.len().checked_div(dim).unwrap_or(0),
                cols: dim,
            });
        }
        if !features.len().is_multiple_of(dim) {
            return Err(Error::Shape {
                op: OP,
                detail: format!(
                    "{} feature values do not divide into rows of {dim}",
                    features.len()
                ),
            });
        }
        let n = features.len() / dim;
        if let Some(index) = features.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "dataset features".into(),
                index,
                value: features[index] as f64,
            });
        }
        match &targets {
            Targets::Labels { labels, classes } => {
                if labels.len() != n {
                    return Err(Error::Length {
                        op: OP,
                        expected: n,
                        got: labels.len(),
                    });
                }
                if *classes == 0 {
                    return Err(Error::InvalidParameter {
                        name: "classes",
                        value: 0.0,
                        allowed: "at least 1",
                    });
                }
                if let Some(row) = labels.iter().position(|&l| l as usize >= *classes) {
                    return Err(Error::LabelRange {
                        label: labels[row].into(),
                        row,
                        classes: *classes,
                    });
                }
            }
            Targets::Dense { values, width } => {
                if *width == 0 {
                    return Err(Error::Empty {
                        op: OP,
                        rows: n,
                        cols: 0,
                    });
                }
                if values.len() != n * width {
                    return Err(Error::Length {
                        op: OP,
                        expected: n * width,
                        got: values.len(),
                    });
                }
                if let Some(index) = values.iter().position(|v| !v.is_finite()) {
                    return Err(Error::NonFinite {
                        what: "dataset targets".into(),
                        index,
                        value: values[index] as f64,
                    });
                }
            }
        }
        Ok(Self {
            features,
            dim,
            targets,
        })
    }

    /// A classification data set: one label in `0..classes` per row.
    ///
    /// ```
    /// use wgtrain::data::Dataset;
    ///
    /// assert_eq!(Dataset::classification(vec![0.0; 4], 2, vec![0, 1], 2)?.labels(), Some(&[0, 1][..]));
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn classification(
        features: Vec<f32>,
        dim: usize,
        labels: Vec<u32>,
        classes: usize,
    ) -> Result<Self> {
        Self::new(features, dim, Targets::Labels { labels, classes })
    }

    /// As [`Dataset::classification`], with labels as PyTorch keeps them
    /// (`torch.int64`, e.g. read by [`checkpoint::read`](crate::checkpoint::read)).
    ///
    /// ```
    /// use wgtrain::data::Dataset;
    /// use wgtrain::Error;
    ///
    /// assert_eq!(Dataset::classification_i64(vec![0.0; 2], 1, &[1, 0], 2)?.labels(), Some(&[1, 0][..]));
    /// let bad = Dataset::classification_i64(vec![0.0; 2], 1, &[1, -1], 2);
    /// assert!(matches!(bad, Err(Error::LabelRange { label: -1, row: 1, classes: 2 })));
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn classification_i64(
        features: Vec<f32>,
        dim: usize,
        labels: &[i64],
        classes: usize,
    ) -> Result<Self> {
        let labels = labels
            .iter()
            .enumerate()
            .map(|(row, &label)| match u32::try_from(label) {
                Ok(l) if (l as usize) < classes => Ok(l),
                _ => Err(Error::LabelRange {
                    label,
                    row,
                    classes,
                }),
            })
            .collect::<Result<Vec<u32>>>()?;
        Self::classification(features, dim, labels, classes)
    }

    /// A data set with a dense target row of `width` values per feature row.
    ///
    /// ```
    /// use wgtrain::data::Dataset;
    ///
    /// let d = Dataset::regression(vec![0.0, 1.0, 2.0], 1, vec![0.0, 2.0, 4.0], 1)?;
    /// assert_eq!(d.dense_targets(), Some(&[0.0, 2.0, 4.0][..]));
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn regression(
        features: Vec<f32>,
        dim: usize,
        targets: Vec<f32>,
        width: usize,
    ) -> Result<Self> {
        Self::new(
            features,
            dim,
            Targets::Dense {
                values: targets,
                width,
            },
        )
    }

    /// Number of rows (never zero).
    ///
    /// ```
    /// # use wgtrain::data::Dataset;
    /// assert_eq!(Dataset::classification(vec![0.0; 6], 2, vec![0; 3], 1)?.len(), 3);
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        self.features.len() / self.dim
    }

    /// Always `false`: construction refuses empty data. Present because a
    /// `len` without `is_empty` surprises generic code.
    ///
    /// ```
    /// # use wgtrain::data::Dataset;
    /// assert!(!Dataset::classification(vec![0.0], 1, vec![0], 1)?.is_empty());
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// Features per row.
    ///
    /// ```
    /// # use wgtrain::data::Dataset;
    /// assert_eq!(Dataset::classification(vec![0.0; 6], 2, vec![0; 3], 1)?.dim(), 2);
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// All features, `len() × dim()` row-major.
    ///
    /// ```
    /// # use wgtrain::data::Dataset;
    /// let d = Dataset::classification(vec![1.0, 2.0], 1, vec![0, 0], 1)?;
    /// assert_eq!(d.features(), &[1.0, 2.0]);
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// The features of row `i`.
    ///
    /// # Panics
    /// If `i >= len()`, like slice indexing.
    ///
    /// ```
    /// # use wgtrain::data::Dataset;
    /// let d = Dataset::classification(vec![1.0, 2.0, 3.0, 4.0], 2, vec![0, 0], 1)?;
    /// assert_eq!(d.row(1), &[3.0, 4.0]);
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn row(&self, i: usize) -> &[f32] {
        &self.features[i * self.dim..(i + 1) * self.dim]
    }

    /// The targets, whichever kind they are.
    ///
    /// ```
    /// # use wgtrain::data::{Dataset, Targets};
    /// let d = Dataset::classification(vec![1.0], 1, vec![0], 3)?;
    /// assert!(matches!(d.targets(), Targets::Labels { classes: 3, .. }));
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// The class labels, or `None` for dense targets.
    ///
    /// ```
    /// # use wgtrain::data::Dataset;
    /// assert_eq!(Dataset::classification(vec![1.0], 1, vec![2], 3)?.labels(), Some(&[2][..]));
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn labels(&self) -> Option<&[u32]> {
        match &self.targets {
            Targets::Labels { labels, .. } => Some(labels),
            Targets::Dense { .. } => None,
        }
    }

    /// The number of classes, or `None` for dense targets.
    ///
    /// ```
    /// # use wgtrain::data::Dataset;
    /// assert_eq!(Dataset::classification(vec![1.0], 1, vec![2], 3)?.classes(), Some(3));
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn classes(&self) -> Option<usize> {
        match &self.targets {
            Targets::Labels { classes, .. } => Some(*classes),
            Targets::Dense { .. } => None,
        }
    }

    /// The dense targets (`len() × target_width()`), or `None` for labels.
    ///
    /// ```
    /// # use wgtrain::data::Dataset;
    /// assert_eq!(Dataset::regression(vec![1.0], 1, vec![5.0], 1)?.dense_targets(), Some(&[5.0][..]));
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn dense_targets(&self) -> Option<&[f32]> {
        match &self.targets {
            Targets::Dense { values, .. } => Some(values),
            Targets::Labels { .. } => None,
        }
    }

    /// Columns a prediction must have: the number of classes for labels, the
    /// row width for dense targets.
    ///
    /// ```
    /// # use wgtrain::data::Dataset;
    /// assert_eq!(Dataset::classification(vec![1.0], 1, vec![0], 10)?.target_width(), 10);
    /// assert_eq!(Dataset::regression(vec![1.0], 1, vec![5.0, 6.0], 2)?.target_width(), 2);
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn target_width(&self) -> usize {
        match &self.targets {
            Targets::Labels { classes, .. } => *classes,
            Targets::Dense { width, .. } => *width,
        }
    }

    /// A new data set of the given rows, in the given order (repeats allowed).
    ///
    /// ```
    /// # use wgtrain::data::Dataset;
    /// let d = Dataset::classification(vec![0.0, 1.0, 2.0], 1, vec![0, 1, 0], 2)?;
    /// let s = d.select(&[2, 0])?;
    /// assert_eq!((s.features(), s.labels()), (&[2.0, 0.0][..], Some(&[0, 0][..])));
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn select(&self, rows: &[usize]) -> Result<Self> {
        let n = self.len();
        if rows.is_empty() {
            return Err(Error::Empty {
                op: "Dataset::select",
                rows: 0,
                cols: self.dim,
            });
        }
        if let Some(position) = rows.iter().position(|&r| r >= n) {
            return Err(Error::IndexRange {
                op: "Dataset::select",
                index: u32::try_from(rows[position]).unwrap_or(u32::MAX),
                position,
                bound: n,
            });
        }
        let gather = |src: &[f32], w: usize| -> Vec<f32> {
            rows.iter()
                .flat_map(|&r| &src[r * w..(r + 1) * w])
                .copied()
                .collect()
        };
        let targets = match &self.targets {
            Targets::Labels { labels, classes } => Targets::Labels {
                labels: rows.iter().map(|&r| labels[r]).collect(),
                classes: *classes,
            },
            Targets::Dense { values, width } => Targets::Dense {
                values: gather(values, *width),
                width: *width,
            },
        };
        Ok(Self {
            features: gather(&self.features, self.dim),
            dim: self.dim,
            targets,
        })
    }

    /// Rows `range`, in order: the deterministic way to split a data set
    /// whose order already means something (time series, a published split).
    ///
    /// ```
    /// # use wgtrain::data::Dataset;
    /// let d = Dataset::classification(vec![0.0, 1.0, 2.0, 3.0], 1, vec![0; 4], 1)?;
    /// assert_eq!(d.slice(1..3)?.features(), &[1.0, 2.0]);
    /// assert!(d.slice(3..3).is_err());
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn slice(&self, range: Range<usize>) -> Result<Self> {
        if range.end > self.len() || range.start > range.end {
            return Err(Error::Shape {
                op: "Dataset::slice",
                detail: format!("rows {range:?} of a data set with {} rows", self.len()),
            });
        }
        self.select(&range.collect::<Vec<_>>())
    }

    /// The first `n` rows, in order (an error if `n` is 0 or above `len()`).
    ///
    /// ```
    /// # use wgtrain::data::Dataset;
    /// let d = Dataset::classification(vec![0.0, 1.0, 2.0], 1, vec![0; 3], 1)?;
    /// assert_eq!(d.take_first(2)?.len(), 2);
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn take_first(&self, n: usize) -> Result<Self> {
        self.slice(0..n)
    }

    /// Splits into train / validation / test. With `Some(seed)` the rows are
    /// first shuffled by a permutation that depends only on the seed and the
    /// row count (the same split on every platform and crate version); with
    /// `None` the parts are consecutive: train first, then validation, then test.
    ///
    /// An error if the validation and test parts would leave no training rows.
    ///
    /// ```
    /// use wgtrain::data::{Dataset, SplitSpec};
    ///
    /// let d = Dataset::classification((0..10).map(|i| i as f32).collect(), 1, vec![0; 10], 1)?;
    /// let s = d.split(SplitSpec::Fractions { validation: 0.2, test: 0.1 }, Some(42))?;
    /// assert_eq!((s.train.len(), s.validation.unwrap().len(), s.test.unwrap().len()), (7, 2, 1));
    /// assert!(d.split(SplitSpec::Counts { validation: 5, test: 5 }, None).is_err());
    /// # Ok::<(), wgtrain::Error>(())
    /// ```
    pub fn split(&self, spec: SplitSpec, seed: Option<u64>) -> Result<Splits> {
        let n = self.len();
        let (n_val, n_test) = match spec {
            SplitSpec::Fractions { validation, test } => {
                for (name, f) in [("validation fraction", validation), ("test fraction", test)] {
                    if !(0.0..1.0).contains(&f) {
                        return Err(Error::InvalidParameter {
                            name,
                            value: f,
                            allowed: "in [0, 1)",
                        });
                    }
                }
                (
                    (validation * n as f64).round() as usize,
                    (test * n as f64).round() as usize,
                )
            }
            SplitSpec::Counts { validation, test } => (validation, test),
        };
        if n_val.saturating_add(n_test) >= n {
            return Err(Error::InvalidParameter {
                name: "validation + test rows",
                value: n_val.saturating_add(n_test) as f64,
                allowed: "below the number of rows, so that some training data is left",
            });
        }
        let mut order: Vec<usize> = (0..n).collect();
        if let Some(seed) = seed {
            shuffle(&mut order, seed);
        }
        let n_train = n - n_val - n_test;
        let part = |r: Range<usize>| {
            if r.is_empty() {
                Ok(None)
            } else {
                self.select(&order[r]).map(Some)
            }
        };
        Ok(Splits {
            train: self.select(&order[..n_train])?,
            validation: part(n_train..n_train + n_val)?,
            test: part(n_train + n_val..n)?,
        })
    }
}

/// Fisher–Yates driven by SplitMix64. Hand-rolled rather than `rand`'s
/// `StdRng` because `rand` documents that `StdRng` may change between
/// versions, and a published split must not move when dependencies update.
fn shuffle(order: &mut [usize], seed: u64) {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..order.len()).rev() {
        // Multiply-shift maps 64 random bits onto 0..=i; its bias, (i+1)/2⁶⁴, is negligible.
        let j = ((next() as u128 * (i as u128 + 1)) >> 64) as usize;
        order.swap(i, j);
    }
}
