//! The worked example of seed 004: a 2-2-2 sigmoid network, one sample, one
//! step of gradient descent at learning rate 0.5, on every backend.
//!
//! `cargo run --release --example worked_example`

use wgtrain::{Backend, Cpu, Gpu, Init, Loss, Mode, Sequential, Target};

/// What the seed prints: forward values, the loss, one gradient and every
/// updated weight.
#[derive(Debug)]
#[allow(dead_code)] // read by tests/network.rs through #[path]
pub struct WorkedExample {
    pub out_h: [f64; 2],
    pub out_o: [f64; 2],
    pub e_total: f64,
    pub de_dw5: f64,
    /// w1⁺ … w8⁺.
    pub updated: [f64; 8],
}

/// Runs the seed's example on `backend`.
pub fn run<B: Backend>(backend: &B) -> wgtrain::Result<WorkedExample> {
    // Parameters are set by hand below, so the initialiser does not matter.
    let spec = Sequential::new(2)
        .dense(2, Init::Zeros)
        .sigmoid()
        .dense(2, Init::Zeros)
        .sigmoid();
    let mut model = spec.build(backend, 0)?;
    // PyTorch layout [out, in]: h1 = σ(w1·i1 + w2·i2 + b1), h2 = σ(w3·i1 + w4·i2 + b1).
    model.set_parameter("0.weight", &[0.15, 0.20, 0.25, 0.30])?;
    model.set_parameter("0.bias", &[0.35, 0.35])?;
    model.set_parameter("2.weight", &[0.40, 0.45, 0.50, 0.55])?;
    model.set_parameter("2.bias", &[0.60, 0.60])?;

    let x = backend.upload_f64(1, 2, &[0.05, 0.10])?;
    let target = backend.upload_f64(1, 2, &[0.01, 0.99])?;
    let out_o = backend.download(model.forward(&x, Mode::Train)?)?;
    // E_total = Σ ½(target − out)²: the squared-error loss on a batch of one.
    model.forward_backward(&x, Loss::SquaredError, Target::Dense(&target))?;
    let e_total = model.loss_value(1)?;
    let de_dw5 = model.gradient("2.weight")?[0];

    // The hidden outputs: the forward pass of the first two layers alone.
    let hidden = Sequential::new(2).dense(2, Init::Zeros).sigmoid();
    let mut first = hidden.build(backend, 0)?;
    first.set_parameter("0.weight", &[0.15, 0.20, 0.25, 0.30])?;
    first.set_parameter("0.bias", &[0.35, 0.35])?;
    let out_h = backend.download(first.forward(&x, Mode::Eval)?)?;

    model.sgd_step(0.5)?;
    let w_hidden = model.parameter("0.weight")?.2;
    let w_out = model.parameter("2.weight")?.2;
    let mut updated = [0.0; 8];
    updated[..4].copy_from_slice(&w_hidden);
    updated[4..].copy_from_slice(&w_out);
    Ok(WorkedExample {
        out_h: [out_h[0], out_h[1]],
        out_o: [out_o[0], out_o[1]],
        e_total,
        de_dw5,
        updated,
    })
}

fn print(name: &str, r: &WorkedExample) {
    println!("== {name}");
    println!("out_h1 = {:.9}  out_h2 = {:.9}", r.out_h[0], r.out_h[1]);
    println!("out_o1 = {:.9}  out_o2 = {:.9}", r.out_o[0], r.out_o[1]);
    println!("E_total = {:.9}", r.e_total);
    println!("dE/dw5 = {:.9}", r.de_dw5);
    let names = ["w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8"];
    for (n, w) in names.iter().zip(r.updated) {
        print!("{n}+ = {w:.9}  ");
    }
    println!();
}

/// What seed 004 prints, with the decimals it prints them to.
const SEED: [(&str, f64, u32); 10] = [
    ("out_h1", 0.593269992, 9),
    ("out_h2", 0.596884378, 9),
    ("out_o1", 0.75136507, 8),
    ("out_o2", 0.772928465, 9),
    ("E_total", 0.298371109, 9),
    ("dE/dw5", 0.082167041, 9),
    ("w5+", 0.35891648, 8),
    ("w6+", 0.408666186, 9),
    ("w7+", 0.511301270, 9),
    ("w8+", 0.561370121, 9),
];

/// Ours in [`SEED`]'s order.
fn values(r: &WorkedExample) -> [f64; 10] {
    [
        r.out_h[0],
        r.out_h[1],
        r.out_o[0],
        r.out_o[1],
        r.e_total,
        r.de_dw5,
        r.updated[4],
        r.updated[5],
        r.updated[6],
        r.updated[7],
    ]
}

/// Whether each printed value is ours rounded to its decimals, and the
/// largest difference from the seed's.
fn verdict(r: &WorkedExample) -> String {
    let ours = values(r);
    let mut same = 0;
    let mut worst = (0.0f64, "");
    for ((name, seed, decimals), v) in SEED.iter().zip(ours) {
        let scale = 10f64.powi(*decimals as i32);
        if (v * scale).round() == (seed * scale).round() {
            same += 1;
        }
        if (v - seed).abs() > worst.0 {
            worst = ((v - seed).abs(), name);
        }
    }
    if same == SEED.len() {
        format!("verdict: all {same} of the seed's printed values reproduced to every digit (largest difference {:.1e})", worst.0)
    } else {
        format!(
            "verdict: {same} of the seed's {} printed values reproduced to every digit; the largest difference is {:.1e} (in {}), f32 rounding (2^-24 = 6e-8 of a value)",
            SEED.len(),
            worst.0,
            worst.1
        )
    }
}

#[allow(dead_code)] // tests include this file as a module
fn main() -> wgtrain::Result<()> {
    let printed: Vec<String> = SEED
        .iter()
        .map(|(n, v, d)| format!("{n} = {v:.*}", *d as usize))
        .collect();
    println!("seed 004 prints: {}", printed.join(", "));
    for (name, r) in [
        ("CPU f64", run(&Cpu::<f64>::new())?),
        ("CPU f32", run(&Cpu::<f32>::new())?),
    ] {
        print(name, &r);
        println!("{}", verdict(&r));
    }
    match Gpu::new() {
        Ok(gpu) => {
            let kind = if gpu.is_software() {
                " (a software adapter: a CPU runs its kernels)"
            } else {
                ""
            };
            let r = run(&gpu)?;
            print(&format!("GPU f32: {}{kind}", gpu.describe()), &r);
            println!("{}", verdict(&r));
        }
        Err(e) => println!("== GPU skipped: {e}"),
    }
    Ok(())
}
