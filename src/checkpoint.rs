//! Checkpoints in safetensors, with PyTorch `nn.Sequential` state-dict names
//! (`0.weight` of shape `[out, in]`, `0.bias`, `1.running_mean`,
//! `1.num_batches_tracked`, …) so that
//! `model.load_state_dict(safetensors.torch.load_file(path))` loads them
//! unchanged. Every file is written to a temporary name and renamed, so a
//! crash never leaves a half-written checkpoint behind.

use crate::backend::{Backend, Shaped};
use crate::{Error, Model, Result};
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A named tensor in host memory, as stored in a checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// State-dict name.
    pub name: String,
    /// Shape as PyTorch sees it (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// The values.
    pub data: HostData,
}

/// The values of a [`HostTensor`].
#[derive(Clone, Debug, PartialEq)]
pub enum HostData {
    /// 32-bit floats (parameters, statistics, optimizer state).
    F32(Vec<f32>),
    /// 64-bit integers (counters such as `num_batches_tracked`).
    I64(Vec<i64>),
    /// 64-bit floats (a shipped model's preprocessing statistics, kept at
    /// the precision they were computed in).
    F64(Vec<f64>),
}

impl HostData {
    fn dtype(&self) -> Dtype {
        match self {
            HostData::F32(_) => Dtype::F32,
            HostData::I64(_) => Dtype::I64,
            HostData::F64(_) => Dtype::F64,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            HostData::F32(v) => bytemuck::cast_slice(v),
            HostData::I64(v) => bytemuck::cast_slice(v),
            HostData::F64(v) => bytemuck::cast_slice(v),
        }
    }

    /// The values as f64 (exact for every variant but i64s past 2⁵³).
    pub fn to_f64(&self) -> Vec<f64> {
        match self {
            HostData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            HostData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            HostData::F64(v) => v.clone(),
        }
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The same safetensors file with its JSON header's keys (tensor names and
/// metadata) in sorted order, so that the same tensors and metadata always
/// give the same bytes (safetensors writes the metadata map in hash order).
/// The data offsets in the header count from the end of the header, so the
/// data section is untouched.
fn canonical_header(bytes: Vec<u8>) -> Vec<u8> {
    use std::collections::BTreeMap;
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let Ok(serde_json::Value::Object(header)) = serde_json::from_slice(&bytes[8..8 + n]) else {
        return bytes; // written by safetensors a line above: always an object
    };
    let sorted: BTreeMap<String, serde_json::Value> = header
        .into_iter()
        .map(|(k, v)| match v {
            serde_json::Value::Object(m) => {
                let m: BTreeMap<String, serde_json::Value> = m.into_iter().collect();
                (k, serde_json::json!(m))
            }
            other => (k, other),
        })
        .collect();
    let mut text = serde_json::to_string(&sorted).expect("JSON values serialize");
    // The data section starts 8-byte aligned, as safetensors pads it.
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - 8 - n);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

/// The first non-finite value of a tensor as an error naming it: nothing
/// non-finite is written to disk, or read from it.
fn check_finite(t: &HostTensor, path: &Path) -> Result<()> {
    let values = match &t.data {
        HostData::I64(_) => return Ok(()),
        floats => floats.to_f64(),
    };
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFinite {
            what: format!("{} in {}", t.name, path.display()),
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}

/// The metadata key of the file's checksum.
const CRC_KEY: &str = "wgtrain.crc32";
/// Marks a file as written by [`write_atomic`], so that one whose checksum
/// key was damaged is not taken for a foreign (PyTorch) file without one.
const FORMAT_KEY: &str = "wgtrain.format";

/// CRC-32 over the metadata (but the checksum itself) and every tensor's
/// name, dtype, shape and bytes, in name order: what [`read`] recomputes to
/// catch a file changed after it was written.
fn file_crc(tensors: &[HostTensor], metadata: &HashMap<String, String>) -> String {
    let mut crc = flate2::Crc::new();
    let mut keys: Vec<&String> = metadata.keys().filter(|k| *k != CRC_KEY).collect();
    keys.sort();
    for k in keys {
        crc.update(format!("{k}={}\n", metadata[k]).as_bytes());
    }
    let mut sorted: Vec<&HostTensor> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for t in sorted {
        crc.update(t.name.as_bytes());
        crc.update(format!("{:?}{:?}", t.data.dtype(), t.shape).as_bytes());
        crc.update(t.data.bytes());
    }
    format!("{:08x}", crc.sum())
}

/// The bytes of the safetensors file [`write_atomic`] writes, for a place
/// with no file system (a page offers them as a download): the same
/// checks, the same checksum. `name` is what errors call it.
///
/// ```
/// use wgtrain::checkpoint::{decode, encode, HostData, HostTensor};
/// let t = HostTensor { name: "w".into(), shape: vec![2], data: HostData::F32(vec![1.0, 2.0]) };
/// let bytes = encode(&[t.clone()], Default::default(), "w.safetensors".as_ref()).unwrap();
/// assert_eq!(decode(&bytes, "w.safetensors".as_ref()).unwrap().0, [t]);
/// ```
pub fn encode(
    tensors: &[HostTensor],
    metadata: HashMap<String, String>,
    path: &Path,
) -> Result<Vec<u8>> {
    for t in tensors {
        check_finite(t, path)?;
    }
    let mut metadata = metadata;
    metadata.insert(FORMAT_KEY.into(), "1".into());
    let crc = file_crc(tensors, &metadata);
    metadata.insert(CRC_KEY.into(), crc);
    let views = tensors
        .iter()
        .map(|t| {
            safetensors::tensor::TensorView::new(t.data.dtype(), t.shape.clone(), t.data.bytes())
                .map(|v| (t.name.clone(), v))
                .map_err(|e| Error::Format {
                    path: path.to_path_buf(),
                    detail: format!("{}: {e}", t.name),
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let bytes = safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    Ok(canonical_header(bytes))
}

/// Writes `tensors` and string `metadata` to `path` atomically: a temporary
/// file in the same folder, flushed to disk, then renamed over `path`; the
/// same tensors and metadata always give the same bytes. A tensor holding
/// NaN or infinity is refused ([`Error::NonFinite`]) before anything is
/// written. A checksum of the tensors goes into the metadata
/// (`wgtrain.crc32`), which [`read`] verifies.
pub fn write_atomic(
    path: &Path,
    tensors: &[HostTensor],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let bytes = encode(tensors, metadata, path)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Io {
            path: tmp,
            source: e,
        });
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::Io {
            path: path.to_path_buf(),
            source: e,
        }
    })
}

/// Reads every tensor and the metadata of a safetensors file: F32, F64
/// and I64 tensors as they are, F16 and BF16 ones (a `model.half()` state
/// dict) widened to F32, exactly. A tensor holding NaN or infinity is an [`Error::NonFinite`] naming it, and a file
/// whose tensors do not match the checksum [`write_atomic`] recorded is an
/// [`Error::Format`].
pub fn read(path: &Path) -> Result<(Vec<HostTensor>, HashMap<String, String>)> {
    decode(&std::fs::read(path).map_err(io_err(path))?, path)
}

/// As [`read`], from a file's bytes already in memory; `path` is what
/// errors call it.
pub fn decode(bytes: &[u8], path: &Path) -> Result<(Vec<HostTensor>, HashMap<String, String>)> {
    let corrupt = |e: safetensors::SafeTensorError| Error::Format {
        path: path.to_path_buf(),
        detail: e.to_string(),
    };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(corrupt)?;
    let st = SafeTensors::deserialize(bytes).map_err(corrupt)?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        let data = match view.dtype() {
            Dtype::F32 => HostData::F32(
                view.data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            Dtype::I64 => HostData::I64(
                view.data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
            ),
            Dtype::F64 => HostData::F64(
                view.data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
            ),
            // Half-precision state dicts (`model.half()`, bf16 training)
            // widen exactly to f32.
            Dtype::F16 => HostData::F32(
                view.data()
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            Dtype::BF16 => HostData::F32(
                view.data()
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
            ),
            other => {
                return Err(Error::Format {
                    path: path.to_path_buf(),
                    detail: format!(
                        "{name} has dtype {other:?}; expected F32, F64, F16, BF16 or I64"
                    ),
                })
            }
        };
        let tensor = HostTensor {
            name,
            shape: view.shape().to_vec(),
            data,
        };
        check_finite(&tensor, path)?;
        out.push(tensor);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    let mut metadata = meta.metadata().clone().unwrap_or_default();
    // Files written elsewhere (PyTorch) carry no checksum; ours always do.
    let ours = metadata.keys().any(|k| k.starts_with("wgtrain."));
    let expected = metadata.get(CRC_KEY).cloned();
    if ours || expected.is_some() {
        let found = file_crc(&out, &metadata);
        if expected.as_ref() != Some(&found) {
            return Err(Error::Format {
                path: path.to_path_buf(),
                detail: format!(
                    "the file's checksum is {found}, it recorded {}: \
                     the file was changed or damaged after it was written",
                    expected.as_deref().unwrap_or("none")
                ),
            });
        }
    }
    metadata.remove(CRC_KEY);
    metadata.remove(FORMAT_KEY);
    Ok((out, metadata))
}

/// The model's state dict: parameters, batch-norm statistics and counters,
/// with PyTorch names and shapes (vectors as `[n]`, counters as scalars).
/// This is the native edge: it blocks on [`state_dict_async`].
pub fn state_dict<B: Backend>(model: &mut Model<B>) -> Result<Vec<HostTensor>> {
    pollster::block_on(state_dict_async(model))
}

/// As [`state_dict`], as a future: what a page awaits, as the read-backs
/// it makes resolve only when the browser's event loop runs.
///
/// ```
/// use wgtrain::{checkpoint, Cpu, Init, Sequential};
/// let cpu = Cpu::<f32>::new();
/// let mut model = Sequential::new(3).dense(2, Init::XavierUniform).build(&cpu, 1).unwrap();
/// let tensors = pollster::block_on(checkpoint::state_dict_async(&mut model)).unwrap();
/// assert_eq!(tensors[0].name, "0.weight");
/// assert_eq!(tensors[0].shape, [2, 3]);
/// ```
pub async fn state_dict_async<B: Backend>(model: &mut Model<B>) -> Result<Vec<HostTensor>> {
    let backend = model.backend().clone();
    let mut out = Vec::new();
    for p in model.parameters_mut() {
        out.push(HostTensor {
            data: HostData::F32(f32s(backend.download_async(p.value).await?)),
            shape: p.shape,
            name: p.name,
        });
    }
    let (buffers, counts) = model.buffers_mut();
    for b in buffers {
        out.push(HostTensor {
            shape: torch_shape(b.value),
            data: HostData::F32(f32s(backend.download_async(b.value).await?)),
            name: b.name,
        });
    }
    for (name, count) in counts {
        out.push(HostTensor {
            name,
            shape: vec![],
            data: HostData::I64(vec![*count as i64]),
        });
    }
    Ok(out)
}

/// The name, PyTorch shape and dtype of every entry of the model's state
/// dict, in [`state_dict`] order, read from the model alone.
fn layout<B: Backend>(model: &mut Model<B>) -> Vec<(String, Vec<usize>, Dtype)> {
    let mut out: Vec<_> = model
        .parameters_mut()
        .into_iter()
        .map(|p| (p.name, p.shape, Dtype::F32))
        .collect();
    let (buffers, counts) = model.buffers_mut();
    out.extend(
        buffers
            .into_iter()
            .map(|b| (b.name, torch_shape(b.value), Dtype::F32)),
    );
    out.extend(
        counts
            .into_iter()
            .map(|(name, _)| (name, vec![], Dtype::I64)),
    );
    out
}

/// A tensor's shape as PyTorch stores it: a single row is a vector.
fn torch_shape<T: Shaped>(t: &T) -> Vec<usize> {
    if t.rows() == 1 {
        vec![t.cols()]
    } else {
        vec![t.rows(), t.cols()]
    }
}

fn f32s(values: Vec<f64>) -> Vec<f32> {
    values.into_iter().map(|v| v as f32).collect()
}

/// Loads a state dict into the model, after checking that its names and
/// shapes are exactly the model's and its dtypes fit (a float where the
/// model has a float: f64 values are rounded to the backend's precision;
/// an integer counter where it has one); otherwise nothing is changed and
/// the error lists every difference.
pub fn load_state_dict<B: Backend>(
    model: &mut Model<B>,
    tensors: &[HostTensor],
    path: &Path,
) -> Result<()> {
    let expected = layout(model);
    let by_name: HashMap<&str, &HostTensor> =
        tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut problems = Vec::new();
    for (name, shape, dtype) in &expected {
        match by_name.get(name.as_str()) {
            None => problems.push(format!("missing {name}")),
            Some(t) if &t.shape != shape => problems.push(format!(
                "{name} has shape {:?} in the file but {shape:?} in the model",
                t.shape
            )),
            Some(t) if (t.data.dtype() == Dtype::I64) != (*dtype == Dtype::I64) => problems.push(
                format!("{name} has dtype {:?}, expected {dtype:?}", t.data.dtype()),
            ),
            Some(_) => {}
        }
    }
    let known: std::collections::HashSet<&str> =
        expected.iter().map(|(name, ..)| name.as_str()).collect();
    problems.extend(
        tensors
            .iter()
            .filter(|t| !known.contains(t.name.as_str()))
            .map(|t| format!("unexpected {}", t.name)),
    );
    if !problems.is_empty() {
        return Err(Error::Format {
            path: path.to_path_buf(),
            detail: format!(
                "checkpoint does not match the model: {}",
                problems.join("; ")
            ),
        });
    }
    let values = |name: &str| by_name[name].data.to_f64();
    let backend = model.backend().clone();
    for p in model.parameters_mut() {
        backend.write(p.value, &values(&p.name))?;
    }
    let (buffers, counts) = model.buffers_mut();
    for b in buffers {
        backend.write(b.value, &values(&b.name))?;
    }
    for (name, count) in counts {
        *count = values(&name)[0] as u64;
    }
    Ok(())
}

/// Metadata keys of the dropout generator's state: the training-pass
/// counter and the seed, so a resumed run draws the same masks.
const STEP_KEY: &str = "wgtrain.step";
const SEED_KEY: &str = "wgtrain.dropout_seed";

/// Saves the model's state dict to `path` (atomically).
///
/// ```
/// use wgtrain::{Cpu, Init, Sequential, checkpoint};
/// let cpu = Cpu::<f32>::new();
/// let spec = Sequential::new(3).dense(2, Init::XavierUniform).batch_norm();
/// let mut a = spec.build(&cpu, 1).unwrap();
/// let path = std::env::temp_dir().join("wgtrain-doc-example.safetensors");
/// checkpoint::save_model(&path, &mut a).unwrap();
/// let mut b = spec.build(&cpu, 2).unwrap();
/// checkpoint::load_model(&path, &mut b).unwrap();
/// assert_eq!(a.parameter("0.weight").unwrap(), b.parameter("0.weight").unwrap());
/// ```
pub fn save_model<B: Backend>(path: &Path, model: &mut Model<B>) -> Result<()> {
    let tensors = state_dict(model)?;
    write_atomic(path, &tensors, model_metadata(model))
}

/// The bytes of the file [`save_model`] writes, as a future (a page awaits
/// it and offers the bytes as a download): a safetensors file that
/// [`load_model`] and PyTorch's `safetensors.torch.load_file` read.
///
/// ```
/// use wgtrain::{checkpoint, Cpu, Init, Sequential};
/// let cpu = Cpu::<f32>::new();
/// let spec = Sequential::new(3).dense(2, Init::XavierUniform);
/// let mut a = spec.build(&cpu, 1).unwrap();
/// let bytes = pollster::block_on(checkpoint::model_to_bytes(&mut a)).unwrap();
/// let mut b = spec.build(&cpu, 2).unwrap();
/// checkpoint::load_model_bytes(&bytes, "a.safetensors".as_ref(), &mut b).unwrap();
/// assert_eq!(a.parameter("0.weight").unwrap(), b.parameter("0.weight").unwrap());
/// ```
pub async fn model_to_bytes<B: Backend>(model: &mut Model<B>) -> Result<Vec<u8>> {
    let tensors = state_dict_async(model).await?;
    encode(
        &tensors,
        model_metadata(model),
        Path::new("model.safetensors"),
    )
}

/// What [`save_model`] records beside the tensors: the dropout generator's
/// state, and the `format` key PyTorch's safetensors loader looks for.
pub(crate) fn model_metadata<B: Backend>(model: &Model<B>) -> HashMap<String, String> {
    HashMap::from([
        (STEP_KEY.to_string(), model.step().to_string()),
        (SEED_KEY.to_string(), model.dropout_seed().to_string()),
        ("format".to_string(), "pt".to_string()),
    ])
}

/// Loads a checkpoint written by [`save_model`] (or by PyTorch's
/// `safetensors.torch.save_file(model.state_dict(), path)`) into `model`.
pub fn load_model<B: Backend>(path: &Path, model: &mut Model<B>) -> Result<()> {
    load_model_bytes(&std::fs::read(path).map_err(io_err(path))?, path, model)
}

/// As [`load_model`], from the file's bytes already in memory; `name` is
/// what errors call the file.
pub fn load_model_bytes<B: Backend>(bytes: &[u8], name: &Path, model: &mut Model<B>) -> Result<()> {
    let (tensors, metadata) = decode(bytes, name)?;
    load_decoded(model, &tensors, &metadata, name)
}

/// Loads what [`decode`] gave: the state dict, and the dropout generator's
/// state from the metadata.
pub(crate) fn load_decoded<B: Backend>(
    model: &mut Model<B>,
    tensors: &[HostTensor],
    metadata: &HashMap<String, String>,
    name: &Path,
) -> Result<()> {
    load_state_dict(model, tensors, name)?;
    if let Some(step) = metadata.get(STEP_KEY).and_then(|s| s.parse().ok()) {
        model.set_step(step);
    }
    if let Some(seed) = metadata.get(SEED_KEY).and_then(|s| s.parse().ok()) {
        model.set_dropout_seed(seed);
    }
    Ok(())
}

/// Saves an optimizer's state (from [`Optimizer::export_state`](crate::Optimizer::export_state))
/// with `extra` metadata, atomically. Each state tensor is stored as
/// `<parameter>/<state>` (e.g. `0.weight/exp_avg`), its step count in the
/// metadata as `step:<parameter>`.
pub fn save_optimizer(
    path: &Path,
    state: &crate::optim::OptimState,
    extra: HashMap<String, String>,
) -> Result<()> {
    let mut tensors = Vec::new();
    let mut metadata = extra;
    for (name, p) in &state.params {
        metadata.insert(format!("step:{name}"), p.step.to_string());
        for (state_name, values) in &p.tensors {
            tensors.push(HostTensor {
                name: format!("{name}/{state_name}"),
                shape: vec![p.rows, p.cols],
                data: HostData::F32(values.iter().map(|&v| v as f32).collect()),
            });
        }
    }
    write_atomic(path, &tensors, metadata)
}

/// Reads what [`save_optimizer`] wrote: the state and the metadata.
pub fn load_optimizer(path: &Path) -> Result<(crate::optim::OptimState, HashMap<String, String>)> {
    let (tensors, metadata) = read(path)?;
    let mut state = crate::optim::OptimState::default();
    let bad = |detail: String| Error::Format {
        path: path.to_path_buf(),
        detail,
    };
    for (key, value) in &metadata {
        if let Some(name) = key.strip_prefix("step:") {
            let step = value
                .parse()
                .map_err(|_| bad(format!("{key} = {value} is not a step count")))?;
            state.params.insert(
                name.to_string(),
                crate::optim::ParamStateHost {
                    step,
                    rows: 0,
                    cols: 0,
                    tensors: Vec::new(),
                },
            );
        }
    }
    // `read` sorts by name; keep the file's order of states within a
    // parameter by the optimizer's own names, which import_state checks.
    for t in tensors {
        let (param, state_name) = t
            .name
            .split_once('/')
            .ok_or_else(|| bad(format!("{} is not <parameter>/<state>", t.name)))?;
        let entry = state
            .params
            .get_mut(param)
            .ok_or_else(|| bad(format!("{} has no step count", t.name)))?;
        let [rows, cols] = t.shape[..] else {
            return Err(bad(format!(
                "{} has shape {:?}, expected [rows, cols]",
                t.name, t.shape
            )));
        };
        let HostData::F32(values) = t.data else {
            return Err(bad(format!("{} is not F32", t.name)));
        };
        entry.rows = rows;
        entry.cols = cols;
        entry.tensors.push((
            state_name.to_string(),
            values.iter().map(|&v| v as f64).collect(),
        ));
    }
    Ok((state, metadata))
}
