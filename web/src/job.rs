//! The page's job, the same in the browser and natively: load MNIST,
//! open the GPU, check the first step against the CPU backend, train with
//! live reports, predict a grid of test digits, and write the model out.
//!
//! Events go to an [`Events`] sink as JSON objects, one per call:
//!
//! | `kind` | when | fields |
//! |---|---|---|
//! | `status` | each phase | `text` |
//! | `adapter` | device opened | `name`, `backend`, `device_type`, `driver`, `software`, `limits` |
//! | `parity` | first step on both backends | `error`, `worst`, `loss_gpu`, `loss_cpu` |
//! | `steps` | every `report_every` steps | `epoch`, `step`, `steps`, `steps_done`, `loss`, `accuracy`, `samples_per_sec` |
//! | `epoch` | every epoch | `epoch`, `train_loss`, `train_accuracy`, `test_loss`, `test_accuracy`, `seconds`, `samples_per_sec` |

use serde::{Deserialize, Serialize};
use serde_json::json;
use wgtrain::checkpoint::{self, HostData, HostTensor};
use wgtrain::data::{parse_idx, Dataset};
use wgtrain::optim::{Optim, Sgd};
use wgtrain::train::{
    fit_async, Control, EpochRecord, LocalSync, Report, StepRecord, TrainCallback, TrainConfig,
};
use wgtrain::{Backend, Cpu, Error, Gpu, Init, MatmulKernel, Result, Sequential};

/// Where the job's events go: the page's callback, or standard output.
pub trait Events {
    /// One event (see the module's table).
    fn emit(&self, event: serde_json::Value);
}

/// What the job is asked to do: the page's form and query string, or the
/// native twin's `key=value` arguments, over [`Options::default`].
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// `gpu` (WebGPU in the page, the native adapter natively) or `cpu`:
    /// where the training runs. The first-step check uses both.
    pub backend: String,
    /// The data manifest (`mnist.json`, written by `scripts/web_build.sh`
    /// beside the IDX files it names), relative to the page.
    pub manifest: String,
    /// Width of the one hidden layer.
    pub hidden: usize,
    /// Passes over the training digits.
    pub epochs: usize,
    /// Digits per step.
    pub batch_size: usize,
    /// SGD's learning rate.
    pub lr: f64,
    /// SGD's momentum.
    pub momentum: f64,
    /// Steps between `steps` events (and read-backs of the loss).
    pub report_every: usize,
    /// Seeds the weights, the dropout-free shuffles, everything.
    pub seed: u64,
    /// Training digits used at most (the first of the training file).
    pub train_limit: usize,
    /// Test digits shown with their predictions.
    pub grid: usize,
    /// The matmul kernel family (`registers`, `registers_shared`,
    /// `workgroup`); empty for the library's choice for the adapter.
    pub matmul: String,
    /// Fault injection for the tests: after this many steps on the GPU,
    /// end its device (`Gpu::destroy`), as a driver reset or the browser
    /// would; 0 never does.
    pub lose_device_after_steps: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backend: "gpu".into(),
            manifest: "data/mnist.json".into(),
            hidden: 128,
            epochs: 3,
            batch_size: 64,
            lr: 0.05,
            momentum: 0.9,
            report_every: 10,
            seed: 7,
            train_limit: 10_000,
            grid: 32,
            matmul: String::new(),
            lose_device_after_steps: 0,
        }
    }
}

impl Options {
    /// Parses options given as JSON, naming what is wrong.
    pub fn from_json(text: &str) -> Result<Options> {
        let options: Options = serde_json::from_str(text).map_err(|e| Error::Format {
            path: "options".into(),
            detail: e.to_string(),
        })?;
        if !matches!(options.backend.as_str(), "gpu" | "cpu") {
            return Err(Error::Setting {
                name: "backend",
                value: options.backend,
                allowed: "gpu, cpu",
            });
        }
        Ok(options)
    }

    fn matmul_kernel(&self) -> Result<Option<MatmulKernel>> {
        Ok(Some(match self.matmul.as_str() {
            "" => return Ok(None),
            "registers" => MatmulKernel::Registers,
            "registers_shared" => MatmulKernel::RegistersShared,
            "workgroup" => MatmulKernel::Workgroup,
            other => {
                return Err(Error::Setting {
                    name: "matmul",
                    value: other.into(),
                    allowed: "registers, registers_shared, workgroup",
                })
            }
        }))
    }
}

/// The data manifest: the four IDX files, relative to it, and how they
/// were made.
#[derive(Deserialize)]
pub struct Manifest {
    /// `official 60,000/10,000`, or the npm fallback's split.
    pub source: String,
    /// Training images.
    pub train_images: String,
    /// Training labels.
    pub train_labels: String,
    /// Test images.
    pub test_images: String,
    /// Test labels.
    pub test_labels: String,
}

impl Manifest {
    /// Parses `mnist.json`; `path` is what errors call it.
    pub fn from_json(bytes: &[u8], path: &str) -> Result<Manifest> {
        serde_json::from_slice(bytes).map_err(|e| Error::Format {
            path: path.into(),
            detail: format!("not a data manifest: {e}"),
        })
    }

    /// The four file names, in the order [`Data::parse`] takes their bytes.
    pub fn files(&self) -> [&str; 4] {
        [
            &self.train_images,
            &self.train_labels,
            &self.test_images,
            &self.test_labels,
        ]
    }
}

/// MNIST as the job trains on it.
pub struct Data {
    /// The training digits (at most `train_limit`).
    pub train: Dataset,
    /// The test digits.
    pub test: Dataset,
    /// The manifest's `source`.
    pub source: String,
}

impl Data {
    /// Parses the four files' bytes, in [`Manifest::files`] order.
    pub fn parse(manifest: &Manifest, bytes: &[Vec<u8>; 4], options: &Options) -> Result<Data> {
        let names = manifest.files();
        let set = |i: usize| parse_idx((names[i], &bytes[i]), (names[i + 1], &bytes[i + 1]), 10);
        let train = set(0)?;
        Ok(Data {
            train: train.take_first(options.train_limit.min(train.len()))?,
            test: set(2)?,
            source: manifest.source.clone(),
        })
    }
}

/// One test digit of the grid.
#[derive(Serialize)]
struct Shown {
    label: u32,
    predicted: u32,
}

/// What a finished job hands back.
pub struct Outcome {
    /// The run as JSON: backend, adapter, steps, losses, test accuracy,
    /// parity, speed, and the grid's labels and predictions.
    pub summary: serde_json::Value,
    /// The grid's digits, 784 bytes each, in the summary's `grid` order.
    pub grid_pixels: Vec<u8>,
    /// The trained model as a safetensors file.
    pub model: Vec<u8>,
}

/// The whole job on `gpu` (and on the CPU backend for the first-step
/// check, and for training when `options.backend` is `cpu`).
pub async fn run(
    gpu: &Gpu,
    data: &Data,
    options: &Options,
    events: &dyn Events,
) -> Result<Outcome> {
    events.emit(json!({"kind": "data", "source": data.source, "train": data.train.len(), "test": data.test.len()}));
    if let Some(kernel) = options.matmul_kernel()? {
        gpu.set_matmul_kernel(kernel);
    }
    let info = gpu.adapter_info().clone();
    let limits = gpu.limits();
    events.emit(json!({
        "kind": "adapter",
        "name": info.name,
        "backend": format!("{:?}", info.backend),
        "device_type": format!("{:?}", info.device_type),
        "driver": format!("{} {}", info.driver, info.driver_info).trim(),
        "software": gpu.is_software(),
        "limits": {
            "max_storage_buffer_binding_size": limits.max_storage_buffer_binding_size,
            "max_buffer_size": limits.max_buffer_size,
            "max_compute_invocations_per_workgroup": limits.max_compute_invocations_per_workgroup,
            "max_compute_workgroup_storage_size": limits.max_compute_workgroup_storage_size,
        },
    }));

    events.emit(json!({"kind": "status", "text": "first step on the GPU and on the CPU"}));
    let first = data
        .train
        .take_first(options.batch_size.min(data.train.len()))?;
    let (gpu_state, loss_gpu) = first_step(gpu, &first, options).await?;
    let (cpu_state, loss_cpu) = first_step(&Cpu::<f32>::new(), &first, options).await?;
    let (parity, worst) = parity(&gpu_state, &cpu_state);
    events.emit(json!({"kind": "parity", "error": parity, "worst": worst, "loss_gpu": loss_gpu, "loss_cpu": loss_cpu}));

    events.emit(json!({"kind": "status", "text": format!("training on the {}", options.backend)}));
    let mut outcome = match options.backend.as_str() {
        "gpu" => {
            let lose = (options.lose_device_after_steps > 0).then_some(gpu);
            train_on(gpu, &data.train, &data.test, options, events, lose).await?
        }
        _ => {
            train_on(
                &Cpu::<f32>::new(),
                &data.train,
                &data.test,
                options,
                events,
                None,
            )
            .await?
        }
    };
    let summary = &mut outcome.summary;
    summary["adapter"] = json!(info.name);
    summary["adapter_software"] = json!(gpu.is_software());
    summary["matmul"] = json!(format!("{:?}", gpu.matmul_kernel()));
    summary["parity"] = json!(parity);
    summary["parity_worst"] = json!(worst);
    Ok(outcome)
}

/// The network the page trains: 784 → hidden → 10, ReLU.
pub fn spec(options: &Options) -> Sequential {
    Sequential::new(784)
        .dense(options.hidden, Init::HeNormal)
        .relu()
        .dense(10, Init::XavierUniform)
}

fn optimizer(options: &Options) -> Sgd {
    Sgd {
        lr: options.lr,
        momentum: options.momentum,
        ..Sgd::default()
    }
}

/// One training step from the page's seed on `batch`, on `backend`: the
/// state dict after it, and the step's loss.
async fn first_step<B: Backend>(
    backend: &B,
    batch: &Dataset,
    options: &Options,
) -> Result<(Vec<HostTensor>, f64)> {
    let mut model = spec(options).build(backend, options.seed)?;
    let mut opt = Optim::new(optimizer(options))?;
    let config = TrainConfig {
        epochs: 1,
        batch_size: batch.len(),
        shuffle: false,
        report: Report::Quiet,
        ..TrainConfig::default()
    };
    let history = fit_async(
        &mut model,
        &mut opt,
        batch,
        None,
        &config,
        Vec::new(),
        &mut LocalSync,
    )
    .await?;
    Ok((
        checkpoint::state_dict_async(&mut model).await?,
        history.epochs[0].train_loss,
    ))
}

/// `max |gpu − cpu| / max(1, |cpu|)` over every value of the two state
/// dicts, and the tensor where it is largest (NaN wins: it is never hidden).
fn parity(gpu: &[HostTensor], cpu: &[HostTensor]) -> (f64, String) {
    let larger = |acc: f64, e: f64| if e.is_nan() || e > acc { e } else { acc };
    let mut worst = (0.0f64, String::new());
    for (g, c) in gpu.iter().zip(cpu) {
        let (HostData::F32(gv), HostData::F32(cv)) = (&g.data, &c.data) else {
            continue;
        };
        let e = gv
            .iter()
            .zip(cv)
            .map(|(a, b)| f64::from((a - b).abs()) / f64::from(b.abs()).max(1.0))
            .fold(0.0, larger);
        if worst.1.is_empty() || larger(worst.0, e) != worst.0 {
            worst = (e, c.name.clone());
        }
    }
    worst
}

/// Forwards the loop's reports as `steps` and `epoch` events.
struct LoopEvents<'a> {
    to: &'a dyn Events,
    /// The mean loss of the first report window.
    first_loss: Option<f64>,
    /// The last epoch's record.
    last: Option<EpochRecord>,
    /// Steps done at the last report.
    steps_done: usize,
    /// The device to end after `lose_device_after_steps` (fault injection).
    lose: Option<(&'a Gpu, usize)>,
}

// On `&mut` so that the loop borrows it and the figures stay here after.
impl TrainCallback for &mut LoopEvents<'_> {
    fn on_epoch(&mut self, r: &EpochRecord) -> Control {
        self.to.emit(json!({
            "kind": "epoch",
            "epoch": r.epoch,
            "train_loss": r.train_loss,
            "train_accuracy": r.train_accuracy,
            "test_loss": r.val_loss,
            "test_accuracy": r.val_accuracy,
            "seconds": r.seconds,
            "samples_per_sec": r.samples_per_sec,
        }));
        self.last = Some(r.clone());
        Control::Continue
    }

    fn on_steps(&mut self, r: &StepRecord) {
        self.first_loss.get_or_insert(r.train_loss);
        self.steps_done = r.steps_done;
        if let Some((gpu, after)) = self.lose {
            if r.steps_done >= after {
                gpu.destroy();
            }
        }
        self.to.emit(json!({
            "kind": "steps",
            "epoch": r.epoch,
            "step": r.step,
            "steps": r.steps,
            "steps_done": r.steps_done,
            "loss": r.train_loss,
            "accuracy": r.train_accuracy,
            "samples_per_sec": r.samples_per_sec,
        }));
    }

    fn wants_steps(&self) -> bool {
        true
    }
}

/// Trains the page's network on `backend` with the test set as the
/// per-epoch curve (it chooses nothing: no early stopping, no best epoch),
/// then predicts the grid's digits and writes the model out as bytes.
async fn train_on<B: Backend>(
    backend: &B,
    train: &Dataset,
    test: &Dataset,
    options: &Options,
    events: &dyn Events,
    lose: Option<&Gpu>,
) -> Result<Outcome> {
    let mut model = spec(options).build(backend, options.seed)?;
    let mut opt = Optim::new(optimizer(options))?;
    let config = TrainConfig {
        epochs: options.epochs,
        batch_size: options.batch_size,
        report: Report::Quiet,
        report_every: options.report_every,
        seed: options.seed,
        ..TrainConfig::default()
    };
    let mut seen = LoopEvents {
        to: events,
        first_loss: None,
        last: None,
        steps_done: 0,
        lose: lose.map(|gpu| (gpu, options.lose_device_after_steps)),
    };
    fit_async(
        &mut model,
        &mut opt,
        train,
        Some(test),
        &config,
        vec![Box::new(&mut seen)],
        &mut LocalSync,
    )
    .await?;
    let last = seen.last.clone().expect("at least one epoch ran");

    events.emit(json!({"kind": "status", "text": "predicting the test digits"}));
    let shown = options.grid.min(test.len());
    let predicted = model
        .predict_async(&test.features()[..shown * 784], options.grid.max(1))
        .await?;
    let labels = test.labels().expect("MNIST has labels");
    let grid: Vec<Shown> = predicted
        .into_iter()
        .zip(labels)
        .map(|(predicted, &label)| Shown { label, predicted })
        .collect();
    let grid_pixels = test.features()[..shown * 784]
        .iter()
        .map(|&v| (v * 255.0).round() as u8)
        .collect();
    let model_bytes = checkpoint::model_to_bytes(&mut model).await?;
    Ok(Outcome {
        summary: json!({
            "backend": options.backend,
            "steps": seen.steps_done,
            "epochs": last.epoch,
            "loss_first": seen.first_loss,
            "loss_last": last.train_loss,
            "train_accuracy": last.train_accuracy,
            "test_loss": last.val_loss,
            "test_accuracy": last.val_accuracy,
            "test_digits": test.len(),
            "train_digits": train.len(),
            "samples_per_sec": last.samples_per_sec,
            "epoch_seconds": last.seconds,
            "grid": grid,
            "model_bytes": model_bytes.len(),
            "batch_size": options.batch_size,
        }),
        grid_pixels,
        model: model_bytes,
    })
}
