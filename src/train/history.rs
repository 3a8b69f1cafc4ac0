//! What a training run records per epoch, and how it is saved.

use crate::{Error, Result};
use std::path::Path;

/// One epoch's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch's minibatches (as trained: dropout on).
    pub train_loss: f64,
    /// Training accuracy over the epoch (labelled data only).
    pub train_accuracy: Option<f64>,
    /// Validation loss (when a validation set is given).
    pub val_loss: Option<f64>,
    /// Validation accuracy.
    pub val_accuracy: Option<f64>,
    /// Validation top-k accuracy, `k` from the config (when k > 1).
    pub val_top_k: Option<f64>,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Wall time of the epoch's training steps, in seconds.
    pub seconds: f64,
    /// Training samples per second.
    pub samples_per_sec: f64,
    /// `train_loss + λ·Ω(θ)` at the epoch's end, where λ is the weights'
    /// coupled L2 coefficient (`weight_decay` of SGD, Adam, RMSprop…;
    /// see [`l2_penalty`](crate::diagnostics::l2_penalty)): the objective
    /// the run minimises. `None` without coupled weight decay.
    pub objective: Option<f64>,
    /// Per parameter tensor (state-dict name), the root mean square over
    /// the epoch's steps of its gradient's L2 norm, when
    /// [`TrainConfig::layer_stats`](super::TrainConfig::layer_stats) is on:
    /// a gradient that does not reach the first layers shows here.
    pub grad_norms: Vec<(String, f64)>,
    /// Per ReLU (its index in the stack, `3` or `2.1` inside block 2), the
    /// fraction of its units that output 0 for every sample of the epoch's
    /// probe batch (dead units), when `layer_stats` is on.
    pub dead_relu: Vec<(String, f64)>,
}

/// Every epoch of a run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct History {
    /// In order.
    pub epochs: Vec<EpochRecord>,
    /// The epoch whose weights the model holds at the end, when early
    /// stopping restored the best ones.
    pub best_epoch: Option<usize>,
    /// Whether early stopping (or a callback) ended the run.
    pub stopped_early: bool,
    /// What the run warned about, e.g. a train/validation gap past
    /// [`TrainConfig::gap_warning`](super::TrainConfig::gap_warning).
    pub warnings: Vec<String>,
    /// The steps the verification mode replayed on the CPU reference
    /// ([`TrainConfig::verify_every`](super::TrainConfig::verify_every)).
    pub verifications: Vec<super::Verification>,
}

/// `[["name", value], …]` as pairs, in order (empty when absent: histories
/// written before the layer statistics).
fn named_values(v: &serde_json::Value) -> Vec<(String, f64)> {
    v.as_array().map_or(Vec::new(), |pairs| {
        pairs
            .iter()
            .filter_map(|p| Some((p.get(0)?.as_str()?.to_string(), p.get(1)?.as_f64()?)))
            .collect()
    })
}

fn opt(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v}"))
}

impl History {
    /// One header line and one line per epoch.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("epoch,train_loss,train_accuracy,val_loss,val_accuracy,val_top_k,lr,seconds,samples_per_sec,objective\n");
        for e in &self.epochs {
            s += &format!(
                "{},{},{},{},{},{},{},{},{},{}\n",
                e.epoch,
                e.train_loss,
                opt(e.train_accuracy),
                opt(e.val_loss),
                opt(e.val_accuracy),
                opt(e.val_top_k),
                e.lr,
                e.seconds,
                e.samples_per_sec,
                opt(e.objective)
            );
        }
        s
    }

    /// A JSON object with every epoch.
    pub fn to_json(&self) -> String {
        let epochs: Vec<serde_json::Value> = self.epochs.iter().map(EpochRecord::to_json).collect();
        let verifications: Vec<serde_json::Value> = self
            .verifications
            .iter()
            .map(|v| {
                serde_json::json!({
                    "step": v.step, "loss": v.loss, "gradients": v.gradients,
                    "parameters": v.parameters, "seconds": v.seconds,
                })
            })
            .collect();
        serde_json::json!({
            "epochs": epochs, "best_epoch": self.best_epoch, "stopped_early": self.stopped_early,
            "warnings": self.warnings, "verifications": verifications,
        })
        .to_string()
    }

    /// Parses what [`History::to_json`] wrote (used when resuming).
    pub fn from_json(text: &str, path: &Path) -> Result<History> {
        let bad = |detail: String| Error::Format {
            path: path.to_path_buf(),
            detail,
        };
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let num = |e: &serde_json::Value, k: &str| e.get(k).and_then(|x| x.as_f64());
        let epochs = v["epochs"]
            .as_array()
            .ok_or_else(|| bad("no \"epochs\" array".into()))?
            .iter()
            .map(|e| {
                Ok(EpochRecord {
                    epoch: num(e, "epoch").ok_or_else(|| bad("an epoch without a number".into()))?
                        as usize,
                    train_loss: num(e, "train_loss").unwrap_or(f64::NAN),
                    train_accuracy: num(e, "train_accuracy"),
                    val_loss: num(e, "val_loss"),
                    val_accuracy: num(e, "val_accuracy"),
                    val_top_k: num(e, "val_top_k"),
                    lr: num(e, "lr").unwrap_or(f64::NAN),
                    seconds: num(e, "seconds").unwrap_or(0.0),
                    samples_per_sec: num(e, "samples_per_sec").unwrap_or(0.0),
                    objective: num(e, "objective"),
                    grad_norms: named_values(&e["grad_norms"]),
                    dead_relu: named_values(&e["dead_relu"]),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(History {
            epochs,
            best_epoch: v["best_epoch"].as_u64().map(|e| e as usize),
            stopped_early: v["stopped_early"].as_bool().unwrap_or(false),
            warnings: v["warnings"].as_array().map_or(Vec::new(), |w| {
                w.iter()
                    .filter_map(|s| Some(s.as_str()?.to_string()))
                    .collect()
            }),
            verifications: v["verifications"].as_array().map_or(Vec::new(), |list| {
                list.iter()
                    .filter_map(|r| {
                        Some(super::Verification {
                            step: r["step"].as_u64()? as usize,
                            loss: r["loss"].as_f64()?,
                            gradients: r["gradients"].as_f64()?,
                            parameters: r["parameters"].as_f64()?,
                            seconds: r["seconds"].as_f64()?,
                        })
                    })
                    .collect()
            }),
        })
    }

    /// Writes `history.csv` and `history.json` into `dir` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        write_text(&dir.join("history.csv"), &self.to_csv())?;
        write_text(&dir.join("history.json"), &self.to_json())
    }
}

impl EpochRecord {
    /// This epoch as a JSON object (also the JSON-lines output).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "epoch": self.epoch,
            "train_loss": self.train_loss,
            "train_accuracy": self.train_accuracy,
            "val_loss": self.val_loss,
            "val_accuracy": self.val_accuracy,
            "val_top_k": self.val_top_k,
            "lr": self.lr,
            "seconds": self.seconds,
            "samples_per_sec": self.samples_per_sec,
            "objective": self.objective,
            "grad_norms": self.grad_norms,
            "dead_relu": self.dead_relu,
        })
    }
}

/// Writes a text file through a temporary name and a rename.
pub(crate) fn write_text(path: &Path, text: &str) -> Result<()> {
    write_atomic(path, text.as_bytes())
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over
/// `path`, so that a reader never sees a half-written file. The temporary
/// file is removed again when either step fails.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|source| {
        // A write that failed midway (disk full) may have created the file.
        let _ = std::fs::remove_file(&tmp);
        Error::Io {
            path: tmp.clone(),
            source,
        }
    })?;
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}
