//! A trained model you can ship: one safetensors file with the weights,
//! the architecture and the preprocessing the model was trained with, so
//! that whoever loads it predicts from raw inputs without the code that
//! trained it.
//!
//! The file is a [`checkpoint::save_model`] file plus:
//!
//! - metadata `wgtrain.architecture`: [`Sequential::describe`]'s JSON;
//! - metadata `wgtrain.preprocess`: `none`, `center`, `standardize`,
//!   `global_standardize` or `pca_whiten`;
//! - its statistics as f64 tensors named `preprocess.mean`,
//!   `preprocess.scale`, `preprocess.eigenvalues`, `preprocess.matrix`
//!   (whichever the [`Transform`] has; scalars for the global one);
//! - any metadata the caller adds (the main job records its test accuracy).
//!
//! PyTorch's `load_state_dict(strict=True)` takes the file once the
//! `preprocess.` tensors are set aside; the README shows the lines.
//!
//! ```
//! use wgtrain::data::{Dataset, Preprocessor};
//! use wgtrain::{shipped, Cpu, Init, Sequential};
//! let train = Dataset::classification(vec![0.0, 2.0, 4.0, 6.0], 2, vec![0, 1], 2)?;
//! let standardize = Preprocessor::Standardize.fit(&train)?;
//! let cpu = Cpu::<f32>::new();
//! let mut model = Sequential::new(2).dense(2, Init::XavierUniform).build(&cpu, 0)?;
//! let path = std::env::temp_dir().join("wgtrain-doc-shipped.safetensors");
//! shipped::save(&path, &mut model, Some(&standardize), Default::default())?;
//! let mut loaded = shipped::load(&path, &cpu)?;
//! assert_eq!(loaded.preprocess, Some(standardize));
//! assert_eq!(loaded.predict(&[0.0, 2.0], 1)?, model.predict(&[-1.0, -1.0], 1)?);
//! # Ok::<(), wgtrain::Error>(())
//! ```

use crate::backend::Backend;
use crate::checkpoint::{self, HostData, HostTensor};
use crate::data::Transform;
use crate::{Error, Model, Result, Sequential};
use std::collections::HashMap;
use std::path::Path;

/// Metadata key of the architecture.
pub const ARCHITECTURE_KEY: &str = "wgtrain.architecture";
/// Metadata key of the preprocessing's kind.
pub const PREPROCESS_KEY: &str = "wgtrain.preprocess";
/// Prefix of the preprocessing's tensors.
pub const PREPROCESS_PREFIX: &str = "preprocess.";

/// A shipped model, loaded: the network rebuilt from its architecture with
/// its weights, the preprocessing to apply to raw inputs, and the metadata
/// the file carries.
pub struct Shipped<B: Backend> {
    /// The network, ready to predict (or to train further).
    pub model: Model<B>,
    /// What raw inputs go through before the network.
    pub preprocess: Option<Transform>,
    /// Every metadata entry of the file (the caller's among them).
    pub metadata: HashMap<String, String>,
}

impl<B: Backend> Shipped<B> {
    /// Classes for raw inputs (`n × input width`, as the data was before
    /// preprocessing): the preprocessing, then [`Model::predict`].
    pub fn predict(&mut self, raw: &[f32], batch: usize) -> Result<Vec<u32>> {
        let x = self.prepare(raw)?;
        self.model.predict(&x, batch)
    }

    /// Class probabilities for raw inputs: the preprocessing, then
    /// [`Model::predict_proba`].
    pub fn predict_proba(&mut self, raw: &[f32], batch: usize) -> Result<Vec<f32>> {
        let x = self.prepare(raw)?;
        self.model.predict_proba(&x, batch)
    }

    fn prepare(&self, raw: &[f32]) -> Result<Vec<f32>> {
        let mut x = raw.to_vec();
        if let Some(t) = &self.preprocess {
            t.apply_rows(&mut x)?;
        }
        Ok(x)
    }
}

/// Writes `model` with its architecture, `preprocess` and `extra` metadata
/// to `path`, atomically (see the module docs for the layout).
pub fn save<B: Backend>(
    path: &Path,
    model: &mut Model<B>,
    preprocess: Option<&Transform>,
    extra: HashMap<String, String>,
) -> Result<()> {
    let mut tensors = checkpoint::state_dict(model)?;
    let mut metadata = checkpoint::model_metadata(model);
    metadata.extend(extra);
    metadata.insert(ARCHITECTURE_KEY.into(), model.spec().describe().to_string());
    let (kind, statistics) = preprocess.map_or(("none", Vec::new()), transform_tensors);
    metadata.insert(PREPROCESS_KEY.into(), kind.into());
    tensors.extend(statistics);
    checkpoint::write_atomic(path, &tensors, metadata)
}

/// Reads a file [`save`] wrote and rebuilds its model on `backend`. A plain
/// checkpoint (no architecture) or statistics that do not fit the kind are
/// an [`Error::Format`] naming the file.
pub fn load<B: Backend>(path: &Path, backend: &B) -> Result<Shipped<B>> {
    let bad = |detail: String| Error::Format {
        path: path.to_path_buf(),
        detail,
    };
    let (tensors, metadata) = checkpoint::read(path)?;
    let architecture = metadata.get(ARCHITECTURE_KEY).ok_or_else(|| {
        bad(
            "no architecture in the file: it is a plain checkpoint; load it with \
             checkpoint::load_model into the network that wrote it"
                .into(),
        )
    })?;
    let description = serde_json::from_str(architecture)
        .map_err(|e| bad(format!("the architecture is not JSON: {e}")))?;
    let spec = Sequential::from_description(&description)?;
    let (statistics, weights): (Vec<HostTensor>, Vec<HostTensor>) = tensors
        .into_iter()
        .partition(|t| t.name.starts_with(PREPROCESS_PREFIX));
    let mut model = spec.build(backend, 0)?;
    checkpoint::load_decoded(&mut model, &weights, &metadata, path)?;
    let kind = metadata.get(PREPROCESS_KEY).map_or("none", String::as_str);
    let preprocess = transform_from(kind, &statistics, model.spec().input_width())
        .map_err(|detail| bad(format!("preprocessing {kind:?}: {detail}")))?;
    Ok(Shipped {
        model,
        preprocess,
        metadata,
    })
}

fn tensor(name: &str, shape: Vec<usize>, values: &[f64]) -> HostTensor {
    HostTensor {
        name: format!("{PREPROCESS_PREFIX}{name}"),
        shape,
        data: HostData::F64(values.to_vec()),
    }
}

fn transform_tensors(t: &Transform) -> (&'static str, Vec<HostTensor>) {
    let d = |v: &[f64]| vec![v.len()];
    match t {
        Transform::Center { mean } => ("center", vec![tensor("mean", d(mean), mean)]),
        Transform::Standardize { mean, scale } => (
            "standardize",
            vec![
                tensor("mean", d(mean), mean),
                tensor("scale", d(scale), scale),
            ],
        ),
        Transform::GlobalStandardize { mean, scale } => (
            "global_standardize",
            vec![
                tensor("mean", vec![], &[*mean]),
                tensor("scale", vec![], &[*scale]),
            ],
        ),
        Transform::PcaWhiten {
            mean,
            eigenvalues,
            matrix,
        } => (
            "pca_whiten",
            vec![
                tensor("mean", d(mean), mean),
                tensor("eigenvalues", d(eigenvalues), eigenvalues),
                tensor("matrix", vec![mean.len(), mean.len()], matrix),
            ],
        ),
    }
}

/// The transform of `kind` from its tensors, each checked to hold `width`
/// values (a scalar for the global kind; `width²` for the matrix).
fn transform_from(
    kind: &str,
    tensors: &[HostTensor],
    width: usize,
) -> std::result::Result<Option<Transform>, String> {
    let get = |name: &str, len: usize| -> std::result::Result<Vec<f64>, String> {
        let full = format!("{PREPROCESS_PREFIX}{name}");
        let t = tensors
            .iter()
            .find(|t| t.name == full)
            .ok_or_else(|| format!("{full} is missing"))?;
        let values = t.data.to_f64();
        if values.len() != len {
            return Err(format!(
                "{full} holds {} values, the model takes {len}",
                values.len()
            ));
        }
        Ok(values)
    };
    Ok(Some(match kind {
        "none" => return Ok(None),
        "center" => Transform::Center {
            mean: get("mean", width)?,
        },
        "standardize" => Transform::Standardize {
            mean: get("mean", width)?,
            scale: get("scale", width)?,
        },
        "global_standardize" => Transform::GlobalStandardize {
            mean: get("mean", 1)?[0],
            scale: get("scale", 1)?[0],
        },
        "pca_whiten" => Transform::PcaWhiten {
            mean: get("mean", width)?,
            eigenvalues: get("eigenvalues", width)?,
            matrix: get("matrix", width * width)?,
        },
        other => return Err(format!("unknown kind {other:?}")),
    }))
}
