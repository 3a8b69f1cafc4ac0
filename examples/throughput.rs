//! Training throughput on the peers' workload (shared/peers/README.md): an
//! MLP 784-w-w-10 with ReLU, softmax cross-entropy (mean) and Adam with
//! PyTorch's defaults, fp32, on one fixed random batch resident on the
//! device. Protocol as the peers': warm-up steps, then timed repeats of
//! `steps` steps, each ending with a loss readback so that GPU work has
//! finished; the median repeat is reported.
//!
//! `cargo run --release --example throughput -- [--backend gpu|cpu|both]
//! [--cases peer|all] [--steps N] [--repeats R] [--warmup W]
//! [--budget S] [--max-step-s S] [--batches 64,256] [--widths 256,1024]
//! [--no-phases]`
//!
//! The last line is `RESULT {json}` for scripts.
//!
//! `--serve BATCHxWIDTH` (with `--backend cpu` or `gpu`) instead trains that
//! case in blocks that another process asks for: a line `K` on standard
//! input runs K steps and a loss readback, and answers `DONE seconds`.
//! `scripts/paired_vs_torch.py` alternates such blocks with PyTorch's, so
//! that both are timed within a second of each other.

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use wgtrain::optim::{Adam, Optim, Optimizer, ParamRef};
use wgtrain::train::{LocalSync, StepOptions};
use wgtrain::{
    Activation, Backend, Cpu, Gpu, Init, Loss, MatmulSpec, Model, Sequential, Shaped, Target,
};

/// The peers' batch, width and step count.
const PEER: (usize, usize) = (256, 512);
const PEER_STEPS: usize = 50;
const INPUT: usize = 784;
const CLASSES: usize = 10;

struct Opts {
    gpu: bool,
    cpu: bool,
    sweep: bool,
    phases: bool,
    /// `None`: the peers' 50, fewer where a repeat would exceed `budget`.
    steps: Option<usize>,
    repeats: usize,
    warmup: usize,
    budget: f64,
    max_step_s: f64,
    batches: Vec<usize>,
    widths: Vec<usize>,
    /// `--serve`: the `(batch, width)` to train in blocks asked for on stdin.
    serve: Option<(usize, usize)>,
}

const USAGE: &str = "usage: throughput [--backend gpu|cpu|both] [--cases peer|all] \
[--steps N] [--repeats R] [--warmup W] [--budget SECONDS] [--max-step-s SECONDS] \
[--batches LIST] [--widths LIST] [--no-phases] [--serve BATCHxWIDTH]
  --steps N        steps per timed repeat (default: the peers' 50, reduced where one
                   repeat would take longer than --budget, default 1.5 s)
  --max-step-s S   skip sweep cases whose step, predicted from the peer case's
                   measured GFLOP/s on that backend, exceeds S (default 1)
  --batches/--widths  sweep sizes (defaults 64,256,1024,4096 at width 512 and
                   256,1024,2048,4096 at batch 256)
  --serve BxW      train batch B, width W on one backend in blocks: each line K read
                   from stdin runs K steps and answers `DONE seconds`";

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        gpu: true,
        cpu: true,
        sweep: true,
        phases: true,
        steps: None,
        repeats: 5,
        warmup: 10,
        budget: 1.5,
        max_step_s: 1.0,
        batches: vec![64, 256, 1024, 4096],
        widths: vec![256, 1024, 2048, 4096],
        serve: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--no-phases" {
            o.phases = false;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(USAGE.into());
        }
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|x| *x > 0.0)
                .ok_or_else(|| format!("{flag} {v}: expected a positive number"))
        };
        let list = |v: &str| -> Result<Vec<usize>, String> {
            v.split(',')
                .map(|s| s.trim().parse::<usize>().ok().filter(|&n| n > 0))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| format!("{flag} {v}: expected positive integers, comma-separated"))
        };
        match flag.as_str() {
            "--backend" => {
                (o.gpu, o.cpu) = match value.as_str() {
                    "gpu" => (true, false),
                    "cpu" => (false, true),
                    "both" => (true, true),
                    _ => return Err(format!("--backend {value}: expected gpu, cpu or both")),
                }
            }
            "--cases" => {
                o.sweep = match value.as_str() {
                    "peer" => false,
                    "all" => true,
                    _ => return Err(format!("--cases {value}: expected peer or all")),
                }
            }
            "--steps" => o.steps = Some(num(&value)? as usize),
            "--repeats" => o.repeats = num(&value)? as usize,
            "--warmup" => o.warmup = num(&value)? as usize,
            "--budget" => o.budget = num(&value)?,
            "--max-step-s" => o.max_step_s = num(&value)?,
            "--batches" => o.batches = list(&value)?,
            "--widths" => o.widths = list(&value)?,
            "--serve" => {
                let case = value.split_once('x').and_then(|(b, w)| {
                    Some((
                        b.parse().ok().filter(|&b| b > 0)?,
                        w.parse().ok().filter(|&w| w > 0)?,
                    ))
                });
                o.serve =
                    Some(case.ok_or_else(|| {
                        format!("--serve {value}: expected BATCHxWIDTH, as 256x512")
                    })?);
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if o.serve.is_some() && o.gpu == o.cpu {
        return Err(format!(
            "--serve needs --backend cpu or --backend gpu\n{USAGE}"
        ));
    }
    Ok(o)
}

fn spec(width: usize) -> Sequential {
    // nn.Linear's initialisation, as the peers use.
    Sequential::new(INPUT)
        .dense_with(width, Init::TorchDefault, Init::TorchDefault)
        .relu()
        .dense_with(width, Init::TorchDefault, Init::TorchDefault)
        .relu()
        .dense_with(CLASSES, Init::TorchDefault, Init::TorchDefault)
}

/// A fixed batch of standard-normal inputs and uniform labels, uploaded once.
fn batch<B: Backend>(b: &B, n: usize) -> wgtrain::Result<(B::Tensor, B::Index)> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let x: Vec<f32> = (0..n * INPUT)
        .map(|_| rng.sample(rand_distr::StandardNormal))
        .collect();
    let y: Vec<u32> = (0..n)
        .map(|_| rng.random_range(0..CLASSES as u32))
        .collect();
    Ok((b.upload(n, INPUT, &x)?, b.indices(&y, CLASSES)?))
}

/// A model, its optimizer, and the batch's inputs and labels.
type Trainee<B> = (
    Model<B>,
    Optim<B, Adam>,
    <B as Backend>::Tensor,
    <B as Backend>::Index,
);

/// The peers' network at `width`, Adam with PyTorch's defaults, and a fixed
/// batch of `n` rows: what every timed case trains.
fn case<B: Backend>(b: &B, n: usize, width: usize) -> wgtrain::Result<Trainee<B>> {
    let (x, y) = batch(b, n)?;
    Ok((spec(width).build(b, 0)?, Optim::new(Adam::default())?, x, y))
}

/// The library's training step, as `fit` runs it.
fn train_step<B: Backend>(
    model: &mut Model<B>,
    opt: &mut Optim<B, Adam>,
    x: &B::Tensor,
    y: &B::Index,
) -> wgtrain::Result<()> {
    let options = StepOptions {
        loss: Loss::SoftmaxCrossEntropy,
        ..StepOptions::default()
    };
    wgtrain::train::train_step(model, opt, x, Target::Labels(y), &options, &mut LocalSync)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// One backend under test: its name and, on the GPU, its work counters.
struct Bench<'a, B: Backend> {
    name: &'static str,
    backend: &'a B,
    counters: &'a dyn Fn() -> Option<(u64, u64)>,
}

struct Case {
    batch: usize,
    width: usize,
    warmup_steps: usize,
    steps: usize,
    /// Samples/s of each timed repeat.
    rates: Vec<f64>,
    /// (dispatches, submissions) per step over the timed repeats.
    per_step: Option<(f64, f64)>,
    /// Host seconds per step spent issuing the steps (before the readback
    /// that waits for the device), median over the repeats: when it is
    /// close to the whole step, the host, not the device, is the limit.
    issue_s: f64,
    loss: f64,
}

impl Case {
    fn sps(&self) -> f64 {
        median(&self.rates)
    }
    /// Slowest and fastest repeat, in samples/s.
    fn range(&self) -> (f64, f64) {
        let lo = self.rates.iter().copied().fold(f64::INFINITY, f64::min);
        (lo, self.rates.iter().copied().fold(0.0, f64::max))
    }
    fn step_s(&self) -> f64 {
        self.batch as f64 / self.sps()
    }
    fn gflops(&self) -> f64 {
        wgtrain::cost::cost(&spec(self.width), self.batch).gflops(self.step_s())
    }
    fn seed003_ops(&self) -> u64 {
        wgtrain::cost::seed003(self.batch as u64, 2, INPUT as u64, self.width as u64, 10).0
    }
    fn json(&self) -> Value {
        let c = wgtrain::cost::cost(&spec(self.width), self.batch);
        json!({
            "batch": self.batch, "width": self.width,
            "warmup_steps": self.warmup_steps, "steps": self.steps, "repeats": self.rates.len(),
            "ms_per_step": self.step_s() * 1e3,
            "samples_per_s": self.sps(),
            "samples_per_s_min": self.range().0,
            "samples_per_s_max": self.range().1,
            "gflop_per_step": c.flops as f64 / 1e9,
            "gflops": self.gflops(),
            "seed003_gop_per_step": self.seed003_ops() as f64 / 1e9,
            "seed003_gops": self.seed003_ops() as f64 / 1e9 / self.step_s(),
            "dispatches_per_step": self.per_step.map(|p| p.0),
            "submissions_per_step": self.per_step.map(|p| p.1),
            "host_issue_ms_per_step": self.issue_s * 1e3,
            "final_loss": self.loss,
        })
    }
}

fn measure<B: Backend>(
    bench: &Bench<'_, B>,
    o: &Opts,
    n: usize,
    width: usize,
) -> wgtrain::Result<Case> {
    let b = bench.backend;
    let (mut model, mut opt, x, y) = case(b, n, width)?;

    // Each warm-up step is read back, so that its time is the step's and the
    // budget check below sees finished work; the first step compiles pipelines.
    let mut warm = Vec::new();
    while warm.len() < o.warmup {
        let t = Instant::now();
        train_step(&mut model, &mut opt, &x, &y)?;
        model.loss_value(n)?;
        warm.push(t.elapsed().as_secs_f64());
        let spent: f64 = warm.iter().sum();
        if o.steps.is_none() && warm.len() >= 2 && spent > o.budget {
            break;
        }
    }
    let typical = median(&warm[warm.len().min(2) - 1..]);
    let steps = o
        .steps
        .unwrap_or(((o.budget / typical) as usize).clamp(1, PEER_STEPS));

    let before = (bench.counters)();
    let mut rates = Vec::new();
    let mut issue = Vec::new();
    let mut loss = f64::NAN;
    for _ in 0..o.repeats {
        let t = Instant::now();
        for _ in 0..steps {
            train_step(&mut model, &mut opt, &x, &y)?;
        }
        issue.push(t.elapsed().as_secs_f64() / steps as f64);
        loss = model.loss_value(n)?;
        rates.push((steps * n) as f64 / t.elapsed().as_secs_f64());
    }
    let per_step = before.zip((bench.counters)()).map(|((d0, s0), (d1, s1))| {
        let total = (steps * o.repeats) as f64;
        ((d1 - d0) as f64 / total, (s1 - s0) as f64 / total)
    });
    Ok(Case {
        batch: n,
        width,
        warmup_steps: warm.len(),
        steps,
        rates,
        per_step,
        issue_s: median(&issue),
        loss,
    })
}

fn header() {
    println!(
        "{:<4} {:>5} {:>5} {:>8} {:>9} {:>10} {:>17} {:>9} {:>8} {:>9} {:>8} {:>7} {:>7} {:>8}",
        "",
        "batch",
        "width",
        "steps",
        "ms/step",
        "samples/s",
        "[min-max]",
        "GFLOP/st",
        "GFLOP/s",
        "seed Gop",
        "Gop/s",
        "disp/st",
        "subm/st",
        "issue ms"
    );
}

fn row(name: &str, c: &Case) {
    let (lo, hi) = c.range();
    let flops = wgtrain::cost::cost(&spec(c.width), c.batch).flops as f64 / 1e9;
    let seed = c.seed003_ops() as f64 / 1e9;
    let (disp, subm) = c.per_step.map_or(("-".into(), "-".into()), |(d, s)| {
        (format!("{d:.1}"), format!("{s:.2}"))
    });
    println!(
        "{:<4} {:>5} {:>5} {:>8} {:>9.2} {:>10.0} {:>17} {:>9.3} {:>8.1} {:>9.3} {:>8.1} {:>7} {:>7} {:>8.2}",
        name,
        c.batch,
        c.width,
        format!("{}x{}", c.rates.len(), c.steps),
        c.step_s() * 1e3,
        c.sps(),
        format!("[{lo:.0}-{hi:.0}]"),
        flops,
        c.gflops(),
        seed,
        seed / c.step_s(),
        disp,
        subm,
        c.issue_s * 1e3
    );
}

/// The peer case, then the sweep, on one backend; returns its JSON record.
fn run_backend<B: Backend>(bench: &Bench<'_, B>, o: &Opts) -> wgtrain::Result<Value> {
    let mut cases: Vec<Case> = Vec::new();
    let mut skipped = Vec::new();
    header();
    let peer = measure(bench, o, PEER.0, PEER.1)?;
    row(bench.name, &peer);
    if let Some((dispatches, _)) = peer.per_step {
        println!("dispatches per step: {dispatches:.0}");
    }
    let peer_gflops = peer.gflops();
    if o.sweep {
        let sizes = o
            .batches
            .iter()
            .map(|&n| (n, PEER.1))
            .chain(o.widths.iter().map(|&w| (PEER.0, w)))
            .filter(|&s| s != PEER);
        for (n, w) in sizes {
            let flops = wgtrain::cost::cost(&spec(w), n).flops as f64;
            let predicted = flops / 1e9 / peer_gflops;
            if o.steps.is_none() && predicted > o.max_step_s {
                println!(
                    "{:<4} {n:>5} {w:>5}  skipped: {predicted:.2} s/step predicted from the peer case's \
                     {peer_gflops:.1} GFLOP/s > --max-step-s {}",
                    bench.name, o.max_step_s
                );
                skipped.push(json!({"batch": n, "width": w, "predicted_s_per_step": predicted}));
                continue;
            }
            let c = measure(bench, o, n, w)?;
            row(bench.name, &c);
            cases.push(c);
        }
    }
    let phases = if o.phases {
        Some(phases(bench, peer.steps)?)
    } else {
        None
    };
    let (copy, elementwise, mib) = memory_bandwidth(bench.backend)?;
    println!(
        "{} memory, {mib} MiB tensor, GB/s read + written: {copy:.1} by Backend::copy, \
         {elementwise:.1} by an elementwise kernel (Backend::scale)",
        bench.name
    );
    if let Some(p) = &phases {
        // What the step's least traffic would take at the copy's rate.
        let (bytes, ms) = (p["bytes_per_step"].as_f64(), p["ms_per_step"].as_f64());
        if let (Some(bytes), Some(ms)) = (bytes, ms) {
            let floor = bytes / (copy * 1e9) * 1e3;
            println!(
                "{} step moves at least {:.1} MB: {floor:.2} ms at Backend::copy's rate, \
                 {:.0}% of the {ms:.2} ms step",
                bench.name,
                bytes / 1e6,
                100.0 * floor / ms
            );
        }
    }
    Ok(json!({
        "backend": bench.name,
        "describe": bench.backend.describe(),
        "copy_gb_per_s_read_plus_written": copy,
        "elementwise_gb_per_s_read_plus_written": elementwise,
        "peer": peer.json(),
        "sweep": cases.iter().map(Case::json).collect::<Vec<_>>(),
        "skipped": skipped,
        "phases": phases,
    }))
}

/// Bytes read plus written per second by [`Backend::copy`] and by an
/// elementwise kernel ([`Backend::scale`] in place) on the largest tensor up
/// to 256 MiB the backend allows, medians of 5 timed runs of 5 operations:
/// the memory ceilings that the elementwise and optimizer kernels run
/// against. Returns (copy, elementwise, MiB).
fn memory_bandwidth<B: Backend>(b: &B) -> wgtrain::Result<(f64, f64, usize)> {
    let cols = 4_096;
    let rows = (b.max_tensor_len() / cols).min(16_384);
    let bytes = (2 * rows * cols * 4) as f64;
    let src = b.upload(rows, cols, &vec![1.5; rows * cols])?;
    let mut dst = b.zeros(rows, cols)?;
    let rate = |op: &mut dyn FnMut() -> wgtrain::Result<()>| -> wgtrain::Result<f64> {
        op()?;
        b.synchronize()?;
        let mut rates = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..5 {
                op()?;
            }
            b.synchronize()?;
            rates.push(5.0 * bytes / t.elapsed().as_secs_f64() / 1e9);
        }
        rates.sort_by(f64::total_cmp);
        Ok(rates[2])
    };
    let copy = rate(&mut || b.copy(&src, &mut dst))?;
    // -1, not 1: a backend may skip scaling by one.
    let scale = rate(&mut || b.scale(&mut dst, -1.0))?;
    Ok((copy, scale, (rows * cols * 4) >> 20))
}

/// Host time per phase and per kernel family, synchronising after every
/// operation so that each one's device time lands on its own label, and
/// the bytes each operation must move at the least: its inputs read once
/// and its outputs written once (a matmul re-reads its operands from cache;
/// those reads are not counted).
struct Clock<'a, B: Backend> {
    backend: &'a B,
    entries: Vec<Entry>,
}

impl<B: Backend> Clock<'_, B> {
    fn time(
        &mut self,
        (phase, family): (&'static str, &'static str),
        floats: usize,
        op: impl FnOnce() -> wgtrain::Result<()>,
    ) -> wgtrain::Result<()> {
        let t = Instant::now();
        op()?;
        self.backend.synchronize()?;
        let d = t.elapsed();
        let bytes = 4 * floats as u64;
        match self
            .entries
            .iter_mut()
            .find(|e| e.phase == phase && e.family == family)
        {
            Some(e) => {
                e.time += d;
                e.bytes += bytes;
            }
            None => self.entries.push(Entry {
                phase,
                family,
                time: d,
                bytes,
            }),
        }
        Ok(())
    }
}

/// What one (phase, kernel family) took over the timed steps.
struct Entry {
    phase: &'static str,
    family: &'static str,
    time: Duration,
    /// Bytes read plus written at the least (see [`Clock`]).
    bytes: u64,
}

/// Total seconds and bytes per key, in first-seen order.
fn group(entries: &[Entry], key: fn(&Entry) -> &'static str) -> Vec<(&'static str, f64, u64)> {
    let mut acc: Vec<(&'static str, f64, u64)> = Vec::new();
    for e in entries {
        let s = e.time.as_secs_f64();
        match acc.iter_mut().find(|a| a.0 == key(e)) {
            Some(a) => {
                a.1 += s;
                a.2 += e.bytes;
            }
            None => acc.push((key(e), s, e.bytes)),
        }
    }
    acc
}

/// Floats in all of `tensors`.
fn floats<T: Shaped>(tensors: &[&T]) -> usize {
    tensors.iter().map(|t| t.len()).sum()
}

/// One dense layer of the phase run, with its buffers for one batch.
struct Layer<B: Backend> {
    w: B::Tensor,
    b: B::Tensor,
    gw: B::Tensor,
    gb: B::Tensor,
    /// Pre-activation (written on the output layer only: a hidden layer's
    /// product writes `h`) and its gradient.
    z: B::Tensor,
    gz: B::Tensor,
    /// Post-activation (absent on the output layer).
    h: Option<B::Tensor>,
}

/// The peer case's step written out operation by operation (the same
/// operations `Model::forward_backward` issues), because the model runs a
/// step as one unit and a phase breakdown needs each operation timed apart.
fn phases<B: Backend>(bench: &Bench<'_, B>, steps: usize) -> wgtrain::Result<Value> {
    let b = bench.backend;
    let (n, width) = PEER;
    let mut model = spec(width).build(b, 0)?;
    let (x, y) = batch(b, n)?;
    let mut layers = Vec::new();
    for (i, (inp, out)) in [(INPUT, width), (width, width), (width, CLASSES)]
        .into_iter()
        .enumerate()
    {
        let (_, _, w) = model.parameter(&format!("{}.weight", 2 * i))?;
        let (_, _, bias) = model.parameter(&format!("{}.bias", 2 * i))?;
        layers.push(Layer::<B> {
            w: b.upload_f64(out, inp, &w)?,
            b: b.upload_f64(1, out, &bias)?,
            gw: b.zeros(out, inp)?,
            gb: b.zeros(1, out)?,
            z: b.zeros(n, out)?,
            gz: b.zeros(n, out)?,
            h: if out == CLASSES {
                None
            } else {
                Some(b.zeros(n, out)?)
            },
        });
    }
    let mut loss = b.zeros(1, 1)?;
    let mut opt = Optim::new(Adam::default())?;
    let mut clock = Clock {
        backend: b,
        entries: Vec::new(),
    };
    // Two untimed steps compile every pipeline and create Adam's state.
    for step in 0..steps + 2 {
        if step == 2 {
            clock.entries.clear();
        }
        phase_step(&mut clock, &mut layers, &x, &y, &mut loss, &mut opt)?;
    }
    let last_loss = b.download(&loss)?[0];
    let total: f64 = clock.entries.iter().map(|e| e.time.as_secs_f64()).sum();
    let bytes: u64 = clock.entries.iter().map(|e| e.bytes).sum();
    let label = if (bench.counters)().is_some() {
        "host-timed, synchronized per phase (after every operation)"
    } else {
        "host-timed per phase"
    };
    println!(
        "\n{} phases, batch {n} width {width}, {steps} steps, {label}: {:.2} ms/step in all",
        bench.name,
        total * 1e3 / steps as f64
    );
    let by_phase = group(&clock.entries, |e| e.phase);
    let by_family = group(&clock.entries, |e| e.family);
    let mut out = serde_json::Map::new();
    for (title, groups) in [("phase", &by_phase), ("kernel family", &by_family)] {
        let cells: Vec<String> = groups
            .iter()
            .map(|(k, s, _)| {
                format!(
                    "{k} {:.2} ms ({:.0}%)",
                    s * 1e3 / steps as f64,
                    100.0 * s / total
                )
            })
            .collect();
        println!("  by {title:<14} {}", cells.join(" | "));
        let record: serde_json::Map<String, Value> = groups
            .iter()
            .map(|(k, s, _)| (k.to_string(), json!(s * 1e3 / steps as f64)))
            .collect();
        out.insert(
            format!("ms_per_step_by_{}", title.replace(' ', "_")),
            record.into(),
        );
    }
    // Each family's least bytes per step, and the rate it moved them at.
    let cells: Vec<String> = by_family
        .iter()
        .map(|(k, s, b)| {
            format!(
                "{k} {:.2} MB at {:.1} GB/s",
                *b as f64 / steps as f64 / 1e6,
                *b as f64 / s / 1e9
            )
        })
        .collect();
    println!("  bytes moved      {}", cells.join(" | "));
    let record: serde_json::Map<String, Value> = by_family
        .iter()
        .map(|(k, _, b)| (k.to_string(), json!(*b as f64 / steps as f64)))
        .collect();
    out.insert("bytes_per_step_by_kernel_family".into(), record.into());
    out.insert("bytes_per_step".into(), json!(bytes as f64 / steps as f64));
    out.insert("timing".into(), json!(label));
    out.insert("steps".into(), json!(steps));
    out.insert("ms_per_step".into(), json!(total * 1e3 / steps as f64));
    out.insert("final_loss".into(), json!(last_loss));
    Ok(out.into())
}

fn phase_step<B: Backend>(
    clock: &mut Clock<'_, B>,
    layers: &mut [Layer<B>],
    x: &B::Tensor,
    y: &B::Index,
    loss: &mut B::Tensor,
    opt: &mut Optim<B, Adam>,
) -> wgtrain::Result<()> {
    let b = clock.backend;
    for i in 0..layers.len() {
        let (done, rest) = layers.split_at_mut(i);
        let input = done.last().map_or(x, |l| l.h.as_ref().expect("hidden"));
        let l = &mut rest[0];
        // A hidden layer's ReLU runs in the product's epilogue, which
        // writes only the activation (its derivative reads the output), as
        // the model's training step does.
        let (act, out) = match &mut l.h {
            Some(h) => (Activation::Relu, h),
            None => (Activation::Identity, &mut l.z),
        };
        let spec = MatmulSpec {
            transpose_b: true,
            bias: Some(&l.b),
            act,
            ..Default::default()
        };
        let moved = floats(&[input, &l.w, &l.b, out]);
        clock.time(("forward", "matmul"), moved, || {
            b.matmul(input, &l.w, out, spec)
        })?;
    }
    let last = layers.last_mut().expect("three layers");
    // The logits read, their gradient written (the labels: one word a row).
    let moved = 2 * last.z.len() + last.z.rows() + 1;
    clock.time(("loss", "loss"), moved, || {
        b.loss(
            Loss::SoftmaxCrossEntropy,
            &last.z,
            Target::Labels(y),
            &mut last.gz,
            loss,
        )
    })?;
    for i in (0..layers.len()).rev() {
        let (before, from) = layers.split_at_mut(i);
        let l = &mut from[0];
        let input = before.last().map_or(x, |p| p.h.as_ref().expect("hidden"));
        let weight_grad = MatmulSpec {
            transpose_a: true,
            ..Default::default()
        };
        let moved = floats(&[&l.gz, input, &l.gw]);
        clock.time(("backward", "matmul"), moved, || {
            b.matmul(&l.gz, input, &mut l.gw, weight_grad)
        })?;
        let moved = floats(&[&l.gz, &l.gb]);
        clock.time(("backward", "bias reduce"), moved, || {
            b.sum_rows(&l.gz, &mut l.gb)
        })?;
        if let Some(p) = before.last_mut() {
            // δ·W ⊙ relu'(h) in one product, into the previous layer's
            // pre-activation gradient.
            let h = p.h.as_ref().expect("hidden");
            let moved = floats(&[&l.gz, &l.w, h, &p.gz]);
            let spec = MatmulSpec {
                gate: Some((Activation::Relu, h)),
                ..Default::default()
            };
            clock.time(("backward", "matmul"), moved, || {
                b.matmul(&l.gz, &l.w, &mut p.gz, spec)
            })?;
        }
    }
    // Adam reads each parameter, its gradient and both moments, and writes
    // the parameter and the moments back: 7 floats per parameter.
    let parameters: usize = layers.iter().map(|l| l.w.len() + l.b.len()).sum();
    clock.time(("optimizer", "optimizer"), 7 * parameters, || {
        let mut params: Vec<ParamRef<'_, B>> = layers
            .iter_mut()
            .enumerate()
            .flat_map(|(i, l)| {
                [
                    ParamRef::new(format!("{}.weight", 2 * i), &mut l.w, &l.gw),
                    ParamRef::new(format!("{}.bias", 2 * i), &mut l.b, &l.gb),
                ]
            })
            .collect();
        opt.step(b, &mut params)
    })
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&o) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// `--serve`: `o.warmup` steps, then a block of steps for each line of
/// standard input, each timed with its loss readback (as a repeat is).
fn serve<B: Backend>(b: &B, o: &Opts, (n, width): (usize, usize)) -> wgtrain::Result<()> {
    use std::io::BufRead;
    let (mut model, mut opt, x, y) = case(b, n, width)?;
    for _ in 0..o.warmup {
        train_step(&mut model, &mut opt, &x, &y)?;
    }
    model.loss_value(n)?;
    println!("READY {}", b.describe());
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|source| wgtrain::Error::Io {
            path: "standard input".into(),
            source,
        })?;
        let Ok(steps) = line.trim().parse::<usize>() else {
            return Err(wgtrain::Error::Setting {
                name: "--serve's step count",
                value: line,
                allowed: "a whole number on each line",
            });
        };
        let t = Instant::now();
        for _ in 0..steps {
            train_step(&mut model, &mut opt, &x, &y)?;
        }
        model.loss_value(n)?;
        println!("DONE {}", t.elapsed().as_secs_f64());
    }
    Ok(())
}

fn run(o: &Opts) -> wgtrain::Result<()> {
    if let Some(case) = o.serve {
        return if o.cpu {
            serve(&Cpu::<f32>::new(), o, case)
        } else {
            serve(&Gpu::new()?, o, case)
        };
    }
    println!(
        "MLP {INPUT}-w-w-{CLASSES}, ReLU, softmax CE (mean), Adam(lr 1e-3, betas 0.9/0.999, eps 1e-8), \
         fp32, fixed random batch on the device; median of {} repeats; GFLOP/st = exact FLOPs per step \
         (wgtrain::cost), seed Gop = seed-003 formula 13",
        o.repeats
    );
    // Other work on the machine slows every figure here; the load says how much there was.
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load_start = loadavg();
    println!(
        "machine: {cpus} CPUs, 1-min load average {} at the start",
        show(load_start)
    );
    let mut results = Vec::new();
    if o.gpu {
        match Gpu::new() {
            Ok(gpu) => {
                println!("\n== {}", gpu.describe());
                if gpu.is_software() {
                    println!("   software adapter: these GPU timings are CPU timings");
                }
                let counters = || Some(gpu.counters());
                let bench = Bench {
                    name: "gpu",
                    backend: &gpu,
                    counters: &counters,
                };
                let mut r = run_backend(&bench, o)?;
                r["software_adapter"] = json!(gpu.is_software());
                if o.phases {
                    r["kernel_timestamps"] = kernel_timestamps(&gpu, PEER.0, PEER.1)?;
                    if o.sweep {
                        let small = *o.batches.iter().min().unwrap_or(&PEER.0);
                        r["kernel_timestamps_smallest_batch"] =
                            kernel_timestamps(&gpu, small, PEER.1)?;
                    }
                }
                results.push(r);
            }
            Err(e) => println!("\n== GPU skipped: {e}"),
        }
    }
    if o.cpu {
        let cpu = Cpu::<f32>::new();
        println!("\n== {}", cpu.describe());
        let bench = Bench {
            name: "cpu",
            backend: &cpu,
            counters: &|| None,
        };
        results.push(run_backend(&bench, o)?);
    }
    let load_end = loadavg();
    println!(
        "\nmachine: 1-min load average {} at the end",
        show(load_end)
    );
    let result = json!({
        "workload": "mlp-784-w-w-10-adam",
        "cpus": cpus,
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "backends": results,
    });
    println!("RESULT {result}");
    Ok(())
}

/// The real training step at batch `n` and `width` (not split into phases),
/// with every dispatch timed by GPU timestamp queries: per dispatch in the
/// order the step records them, and summed per kernel family.
fn kernel_timestamps(gpu: &Gpu, n: usize, width: usize) -> wgtrain::Result<Value> {
    if !gpu.supports_timestamps() {
        println!(
            "gpu kernels: this adapter has no timestamp queries (see the host-timed phases above)"
        );
        return Ok(Value::Null);
    }
    let steps = 10;
    let (mut model, mut opt, x, y) = case(gpu, n, width)?;
    for _ in 0..3 {
        train_step(&mut model, &mut opt, &x, &y)?;
    }
    gpu.synchronize()?;
    gpu.start_profiling(100 * steps)?;
    for _ in 0..steps {
        train_step(&mut model, &mut opt, &x, &y)?;
    }
    let times = gpu.finish_profiling()?;
    let total: f64 = times.iter().map(|t| t.seconds).sum();
    let mut families: Vec<(&str, f64)> = Vec::new();
    for t in &times {
        match families.iter_mut().find(|f| f.0 == t.family()) {
            Some(f) => f.1 += t.seconds,
            None => families.push((t.family(), t.seconds)),
        }
    }
    families.sort_by(|a, b| b.1.total_cmp(&a.1));
    println!(
        "\ngpu kernels, batch {n} width {width}, {steps} steps, GPU timestamp queries: {:.2} ms of kernel time per step, {} dispatches per step",
        total / steps as f64 * 1e3,
        times.len() / steps as usize
    );
    let parts: Vec<String> = families
        .iter()
        .map(|(f, s)| {
            format!(
                "{f} {:.2} ms ({:.0}%)",
                s / steps as f64 * 1e3,
                100.0 * s / total
            )
        })
        .collect();
    println!("  by kernel family  {}", parts.join(" | "));
    // Every step records the same dispatches in the same order: average each position.
    let per_step = times.len() / steps as usize;
    let order: Vec<(String, f64)> = (0..per_step)
        .map(|i| {
            let t = &times[i];
            let total: f64 = (0..steps as usize)
                .map(|s| times[s * per_step + i].seconds)
                .sum();
            let mean = total / steps as f64;
            (format!("{}::{}", t.shader, t.entry), mean * 1e6)
        })
        .collect();
    let shown: Vec<String> = order.iter().map(|(k, us)| format!("{k} {us:.1}")).collect();
    println!("  by dispatch (µs, in step order)  {}", shown.join(" | "));
    Ok(json!({
        "batch": n,
        "width": width,
        "dispatches_us": order.iter().map(|(k, us)| json!([k, us])).collect::<Vec<_>>(),
        "ms_per_step": total / steps as f64 * 1e3,
        "families_ms_per_step": families.iter().map(|(f, s)| (f.to_string(), json!(s / steps as f64 * 1e3))).collect::<serde_json::Map<_, _>>(),
    }))
}

fn show(load: Option<f64>) -> String {
    load.map_or_else(|| "unknown".into(), |l| format!("{l:.2}"))
}

/// The 1-minute load average, where the OS reports one (Linux).
fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
