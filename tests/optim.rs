//! Optimizers and schedules: GPU-vs-CPU parity over 20 steps for every rule
//! and option, the CPU reference (f64) against the textbook formulas written
//! out here independently, schedules against their closed forms, and bad
//! hyperparameters rejected by name.

mod common;

use common::{assert_parity, gpu, random};
use std::collections::BTreeMap;
use wgtrain::optim::{
    Adagrad, Adam, AdamW, EmaMomentum, GroupOptions, Optim, OptimizerConfig, RmsProp, Sgd,
};
use wgtrain::{Backend, Cpu, Error, GradClip, Optimizer, ParamRef, Schedule};

const STEPS: usize = 20;

/// Shapes of a small model: a weight, its bias (in a no-decay group) and an
/// odd-sized vector past one workgroup.
const SHAPES: [(usize, usize); 3] = [(7, 33), (1, 7), (1, 257)];

/// Runs `STEPS` optimizer steps on fixed random parameters and gradients
/// (a new gradient each step, scaled by 3 so that clipping engages), and
/// returns every parameter followed by every state value.
fn train<B: Backend, C: OptimizerConfig + Clone>(
    b: &B,
    config: &C,
    l1: f64,
    clip: GradClip,
) -> Vec<f64> {
    let mut opt = Optim::<B, C>::new(config.clone())
        .unwrap()
        .with_l1(l1)
        .unwrap()
        .with_clip(clip)
        .unwrap();
    let no_decay = opt
        .add_group(GroupOptions {
            lr_scale: 0.5,
            ..GroupOptions::no_decay()
        })
        .unwrap();
    let mut params: Vec<B::Tensor> = SHAPES
        .iter()
        .enumerate()
        .map(|(i, &(r, c))| b.upload(r, c, &random(100 + i as u64, r * c)).unwrap())
        .collect();
    let mut grads: Vec<B::Tensor> = SHAPES
        .iter()
        .map(|&(r, c)| b.zeros(r, c).unwrap())
        .collect();
    for step in 0..STEPS {
        for (i, (g, &(r, c))) in grads.iter_mut().zip(&SHAPES).enumerate() {
            let v: Vec<f64> = random(1000 * step as u64 + i as u64, r * c)
                .iter()
                .map(|&x| 3.0 * x as f64)
                .collect();
            b.write(g, &v).unwrap();
        }
        let [w, bias, v] = &mut params[..] else {
            unreachable!()
        };
        let mut refs = vec![
            ParamRef::new("w", w, &grads[0]),
            ParamRef::new("b", bias, &grads[1]).in_group(no_decay),
            ParamRef::new("v", v, &grads[2]),
        ];
        opt.step(b, &mut refs).unwrap();
    }
    let mut out: Vec<f64> = params.iter().flat_map(|p| b.download(p).unwrap()).collect();
    let start: Vec<f64> = (0..SHAPES.len())
        .flat_map(|i| random(100 + i as u64, SHAPES[i].0 * SHAPES[i].1))
        .map(f64::from)
        .collect();
    // Parity of parameters that never moved would prove nothing.
    assert!(
        out.iter().zip(&start).all(|(a, b)| a != b),
        "{config:?}: some parameter did not move"
    );
    for s in opt.export_state(b).unwrap().params.values() {
        assert_eq!(s.step, STEPS as u64);
        out.extend(s.tensors.iter().flat_map(|(_, v)| v.iter().copied()));
    }
    out
}

// Twenty steps of f32 arithmetic whose only long sums are the global norm (≤ 500
// terms): the two backends differ by rounding (fma, sqrt, summation order) of a
// few ulps per step, well under 1e-5 of max(1, |value|).
const OPTIM_TOL: f64 = 1e-5;

#[test]
fn gpu_matches_cpu_for_every_optimizer_and_option() {
    let Some(g) = gpu() else { return };
    let cpu = Cpu::<f32>::new();
    let mut worst: BTreeMap<&str, f64> = BTreeMap::new();
    let clips = [GradClip::None, GradClip::Value(0.5), GradClip::Norm(1.0)];
    let mut run = |name: &'static str, what: String, gv: Vec<f64>, cv: Vec<f64>| {
        assert_parity(&format!("{name} {what}"), &gv, &cv, OPTIM_TOL);
        let e = common::parity_error(&gv, &cv);
        let w = worst.entry(name).or_insert(0.0);
        *w = w.max(e);
    };
    macro_rules! case {
        ($name:expr, $config:expr, $l1:expr, $clip:expr) => {{
            let (c, l1, clip) = ($config, $l1, $clip);
            let what = format!("{c:?} l1={l1} clip={clip:?}");
            run(
                $name,
                what,
                train(&g, &c, l1, clip),
                train(&cpu, &c, l1, clip),
            );
        }};
    }
    for (momentum, dampening, nesterov) in [
        (0.0, 0.0, false),
        (0.9, 0.0, false),
        (0.9, 0.5, false),
        (0.9, 0.0, true),
    ] {
        for weight_decay in [0.0, 0.1] {
            case!(
                "Sgd",
                Sgd {
                    lr: 0.05,
                    momentum,
                    dampening,
                    nesterov,
                    weight_decay
                },
                0.0,
                GradClip::None
            );
        }
    }
    for bias_correction in [false, true] {
        case!(
            "EmaMomentum",
            EmaMomentum {
                lr: 0.05,
                bias_correction,
                weight_decay: 0.01,
                ..EmaMomentum::default()
            },
            0.0,
            GradClip::None
        );
    }
    case!("Adagrad", Adagrad::default(), 0.0, GradClip::None);
    case!(
        "Adagrad",
        Adagrad {
            lr_decay: 0.1,
            initial_accumulator_value: 0.1,
            weight_decay: 0.01,
            ..Adagrad::default()
        },
        0.0,
        GradClip::None
    );
    for centered in [false, true] {
        for momentum in [0.0, 0.9] {
            for eps_inside_sqrt in [false, true] {
                case!(
                    "RmsProp",
                    RmsProp {
                        centered,
                        momentum,
                        weight_decay: 0.01,
                        eps_inside_sqrt,
                        ..RmsProp::default()
                    },
                    0.0,
                    GradClip::None
                );
            }
        }
    }
    // β₂ = 0.6 lets the second moment fall between steps, so AMSGrad's maximum matters.
    for (amsgrad, betas) in [
        (false, (0.9, 0.999)),
        (true, (0.9, 0.999)),
        (true, (0.9, 0.6)),
    ] {
        let adam = Adam {
            lr: 0.01,
            betas,
            amsgrad,
            weight_decay: 0.01,
            ..Adam::default()
        };
        case!("Adam", adam, 0.0, GradClip::None);
        case!(
            "AdamW",
            AdamW {
                lr: 0.01,
                betas,
                amsgrad,
                ..AdamW::default()
            },
            0.0,
            GradClip::None
        );
    }
    // L1 and both clippings, on one rule of each kind.
    for clip in clips {
        for l1 in [0.0, 0.01] {
            case!(
                "Sgd",
                Sgd {
                    lr: 0.05,
                    momentum: 0.9,
                    weight_decay: 0.01,
                    ..Sgd::default()
                },
                l1,
                clip
            );
            case!(
                "Adam",
                Adam {
                    lr: 0.01,
                    ..Adam::default()
                },
                l1,
                clip
            );
            case!(
                "RmsProp",
                RmsProp {
                    centered: true,
                    ..RmsProp::default()
                },
                l1,
                clip
            );
        }
    }
    for (name, e) in &worst {
        println!("worst GPU-vs-CPU error after {STEPS} steps, {name}: {e:.3e}");
    }
}

#[test]
fn gpu_sum_squares_accumulates() {
    let Some(g) = gpu() else { return };
    let cpu = Cpu::<f32>::new();
    let run = |b: &dyn Fn(&[f32]) -> f64| b(&random(9, 70_001)) + b(&random(10, 3));
    let on_gpu = |x: &[f32]| {
        let t = g.upload(1, x.len(), x).unwrap();
        let mut acc = g.upload(1, 1, &[0.5]).unwrap();
        g.accumulate_sum_squares(&t, &mut acc).unwrap();
        g.download(&acc).unwrap()[0]
    };
    let on_cpu = |x: &[f32]| {
        let t = cpu.upload(1, x.len(), x).unwrap();
        let mut acc = cpu.upload(1, 1, &[0.5]).unwrap();
        cpu.accumulate_sum_squares(&t, &mut acc).unwrap();
        cpu.download(&acc).unwrap()[0]
    };
    // A sum of 70k squares in f32: summation order changes it by ~1e-4 relative.
    assert_parity("sum of squares", &[run(&on_gpu)], &[run(&on_cpu)], 1e-4);
}

// ---- the CPU reference against hand-written textbook loops -----------------

/// The parameter, and the fixed gradient sequence, of the tiny problems.
const P0: [f64; 3] = [0.5, -1.5, 2.0];

fn grad_at(t: usize) -> [f64; 3] {
    // Varying signs and magnitudes, one element crossing zero.
    let t = t as f64;
    [0.3 - 0.1 * t, (0.7 * t).sin() - 0.2, 2.0 / (1.0 + t)]
}

/// Runs `steps` steps of `config` on `Cpu<f64>` from P0 with grad_at(0..).
fn reference<C: OptimizerConfig>(config: C, l1: f64, clip: GradClip, steps: usize) -> Vec<f64> {
    let cpu = Cpu::<f64>::new();
    let mut opt = Optim::<Cpu<f64>, C>::new(config)
        .unwrap()
        .with_l1(l1)
        .unwrap()
        .with_clip(clip)
        .unwrap();
    let mut p = cpu.upload_f64(1, 3, &P0).unwrap();
    for t in 0..steps {
        let g = cpu.upload_f64(1, 3, &grad_at(t)).unwrap();
        opt.step(&cpu, &mut [ParamRef::new("p", &mut p, &g)])
            .unwrap();
    }
    cpu.download(&p).unwrap()
}

fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{what}[{i}]: got {g}, textbook {w}"
        );
    }
}

const STEPS_REF: usize = 12;

#[test]
fn sgd_matches_textbook() {
    for (mu, tau, nesterov, wd) in [
        (0.0, 0.0, false, 0.0),
        (0.9, 0.0, false, 0.1),
        (0.8, 0.3, false, 0.0),
        (0.9, 0.0, true, 0.05),
    ] {
        let lr = 0.1;
        let mut p = P0;
        let mut buf = [0.0; 3];
        for t in 0..STEPS_REF {
            let g0 = grad_at(t);
            for i in 0..3 {
                let g = g0[i] + wd * p[i];
                let d = if mu == 0.0 {
                    g
                } else {
                    buf[i] = if t == 0 {
                        g
                    } else {
                        mu * buf[i] + (1.0 - tau) * g
                    };
                    if nesterov {
                        g + mu * buf[i]
                    } else {
                        buf[i]
                    }
                };
                p[i] -= lr * d;
            }
        }
        let cfg = Sgd {
            lr,
            momentum: mu,
            dampening: tau,
            nesterov,
            weight_decay: wd,
        };
        assert_close(
            &format!("{cfg:?}"),
            &reference(cfg, 0.0, GradClip::None, STEPS_REF),
            &p,
            1e-12,
        );
    }
    // First step by hand: θ₁ = θ₀ − lr·g₀ whatever the momentum (PyTorch's buffer starts at g).
    let one = reference(
        Sgd {
            lr: 0.1,
            momentum: 0.9,
            ..Sgd::default()
        },
        0.0,
        GradClip::None,
        1,
    );
    assert_close(
        "sgd step 1",
        &one,
        &[0.5 - 0.03, -1.5 + 0.02, 2.0 - 0.2],
        1e-14,
    );
}

#[test]
fn seed_momentum_matches_textbook() {
    for corrected in [false, true] {
        let (lr, beta) = (0.1, 0.9);
        let mut p = P0;
        let mut v = [0.0; 3];
        for t in 0..STEPS_REF {
            let g = grad_at(t);
            for i in 0..3 {
                v[i] = beta * v[i] + (1.0 - beta) * g[i];
                let vc = if corrected {
                    v[i] / (1.0 - f64::powi(beta, t as i32 + 1))
                } else {
                    v[i]
                };
                p[i] -= lr * vc;
            }
        }
        let cfg = EmaMomentum {
            lr,
            beta,
            bias_correction: corrected,
            weight_decay: 0.0,
        };
        assert_close(
            &format!("{cfg:?}"),
            &reference(cfg, 0.0, GradClip::None, STEPS_REF),
            &p,
            1e-12,
        );
    }
}

#[test]
fn adagrad_matches_textbook() {
    let (lr, lr_decay, init, eps, wd) = (0.1, 0.05, 0.2, 1e-10, 0.01);
    let mut p = P0;
    let mut s = [init; 3];
    for t in 0..STEPS_REF {
        let clr = lr / (1.0 + t as f64 * lr_decay);
        let g0 = grad_at(t);
        for i in 0..3 {
            let g = g0[i] + wd * p[i];
            s[i] += g * g;
            p[i] -= clr * g / (s[i].sqrt() + eps);
        }
    }
    let cfg = Adagrad {
        lr,
        lr_decay,
        weight_decay: wd,
        initial_accumulator_value: init,
        eps,
    };
    assert_close(
        "adagrad",
        &reference(cfg, 0.0, GradClip::None, STEPS_REF),
        &p,
        1e-12,
    );
}

#[test]
fn rmsprop_matches_textbook() {
    let cases = [
        (false, 0.0, false),
        (true, 0.0, false),
        (false, 0.9, false),
        (true, 0.5, false),
        (false, 0.0, true),
        (true, 0.9, true),
    ];
    for (centered, mu, inside) in cases {
        // A large ε, so that where it sits shows.
        let (lr, alpha, eps) = (0.01, 0.9, if inside { 1e-2 } else { 1e-8 });
        let mut p = P0;
        let (mut sq, mut avg_g, mut buf) = ([0.0; 3], [0.0; 3], [0.0; 3]);
        for t in 0..STEPS_REF {
            let g = grad_at(t);
            for i in 0..3 {
                sq[i] = alpha * sq[i] + (1.0 - alpha) * g[i] * g[i];
                avg_g[i] = alpha * avg_g[i] + (1.0 - alpha) * g[i];
                let var = if centered {
                    sq[i] - avg_g[i] * avg_g[i]
                } else {
                    sq[i]
                };
                // Seed 000: g / √(s + ε); PyTorch: g / (√s + ε).
                let step = if inside {
                    g[i] / (var + eps).sqrt()
                } else {
                    g[i] / (var.sqrt() + eps)
                };
                if mu > 0.0 {
                    buf[i] = mu * buf[i] + step;
                    p[i] -= lr * buf[i];
                } else {
                    p[i] -= lr * step;
                }
            }
        }
        let cfg = RmsProp {
            lr,
            alpha,
            eps,
            weight_decay: 0.0,
            momentum: mu,
            centered,
            eps_inside_sqrt: inside,
        };
        assert_close(
            &format!("{cfg:?}"),
            &reference(cfg, 0.0, GradClip::None, STEPS_REF),
            &p,
            1e-12,
        );
    }
}

/// Kingma & Ba's Algorithm 1 with PyTorch's options, written out plainly.
fn adam_textbook(
    lr: f64,
    b1: f64,
    b2: f64,
    eps: f64,
    wd: f64,
    decoupled: bool,
    amsgrad: bool,
) -> [f64; 3] {
    let mut p = P0;
    let (mut m, mut v, mut v_max) = ([0.0f64; 3], [0.0f64; 3], [0.0f64; 3]);
    for t in 1..=STEPS_REF {
        let g0 = grad_at(t - 1);
        for i in 0..3 {
            let g = if decoupled { g0[i] } else { g0[i] + wd * p[i] };
            if decoupled {
                p[i] *= 1.0 - lr * wd;
            }
            m[i] = b1 * m[i] + (1.0 - b1) * g;
            v[i] = b2 * v[i] + (1.0 - b2) * g * g;
            v_max[i] = v_max[i].max(v[i]);
            let m_hat = m[i] / (1.0 - b1.powi(t as i32));
            let v_hat = if amsgrad { v_max[i] } else { v[i] } / (1.0 - b2.powi(t as i32));
            p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
        }
    }
    p
}

#[test]
fn adam_and_adamw_match_textbook() {
    // β₂ = 0.5 lets the second moment fall, so AMSGrad's maximum matters.
    for (amsgrad, b2) in [(false, 0.999), (true, 0.999), (true, 0.5)] {
        let want = adam_textbook(0.01, 0.9, b2, 1e-8, 0.1, false, amsgrad);
        let cfg = Adam {
            lr: 0.01,
            betas: (0.9, b2),
            weight_decay: 0.1,
            amsgrad,
            ..Adam::default()
        };
        let got = reference(cfg, 0.0, GradClip::None, STEPS_REF);
        assert_close(&format!("{cfg:?}"), &got, &want, 1e-12);
        let want = adam_textbook(0.01, 0.8, b2, 1e-8, 0.1, true, amsgrad);
        let cfg = AdamW {
            lr: 0.01,
            betas: (0.8, b2),
            weight_decay: 0.1,
            amsgrad,
            ..AdamW::default()
        };
        let got = reference(cfg, 0.0, GradClip::None, STEPS_REF);
        assert_close(&format!("{cfg:?}"), &got, &want, 1e-12);
    }
    let ams = adam_textbook(0.01, 0.9, 0.5, 1e-8, 0.0, false, true);
    let plain = adam_textbook(0.01, 0.9, 0.5, 1e-8, 0.0, false, false);
    assert_ne!(ams, plain, "the AMSGrad case must exercise the maximum");
}

#[test]
fn adam_constant_gradient_closed_form() {
    // With a constant gradient the bias corrections are exact: m̂ = g, v̂ = g²,
    // so every step moves θ by lr·g/(|g| + eps) — true of torch.optim.Adam too.
    let cpu = Cpu::<f64>::new();
    let g = [0.1, -0.2, 3.0];
    let mut opt = Optim::<Cpu<f64>, _>::new(Adam {
        lr: 0.1,
        ..Adam::default()
    })
    .unwrap();
    let mut p = cpu.upload_f64(1, 3, &P0).unwrap();
    let gt = cpu.upload_f64(1, 3, &g).unwrap();
    for _ in 0..7 {
        opt.step(&cpu, &mut [ParamRef::new("p", &mut p, &gt)])
            .unwrap();
    }
    let want: Vec<f64> = P0
        .iter()
        .zip(g)
        .map(|(p, g)| p - 7.0 * 0.1 * g / (g.abs() + 1e-8))
        .collect();
    assert_close(
        "adam constant gradient",
        &cpu.download(&p).unwrap(),
        &want,
        1e-12,
    );
}

#[test]
fn l1_and_clipping_match_textbook() {
    let (lr, l1, wd) = (0.1, 0.05, 0.02);
    for clip in [GradClip::Value(0.25), GradClip::Norm(0.5)] {
        let mut p = P0;
        for t in 0..STEPS_REF {
            let raw = grad_at(t);
            // torch.nn.utils.clip_grad_norm_ / clip_grad_value_, then the penalties.
            let norm = raw.iter().map(|g| g * g).sum::<f64>().sqrt();
            let coef = match clip {
                GradClip::Norm(max) => (max / (norm + 1e-6)).min(1.0),
                _ => 1.0,
            };
            for i in 0..3 {
                let g = match clip {
                    GradClip::Value(c) => raw[i].clamp(-c, c),
                    _ => raw[i] * coef,
                };
                let sign = if p[i] > 0.0 {
                    1.0
                } else if p[i] < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                p[i] -= lr * (g + l1 * sign + wd * p[i]);
            }
        }
        let cfg = Sgd {
            lr,
            weight_decay: wd,
            ..Sgd::default()
        };
        assert_close(
            &format!("sgd l1 {clip:?}"),
            &reference(cfg, l1, clip, STEPS_REF),
            &p,
            1e-12,
        );
    }
}

#[test]
fn groups_override_decay_and_scale_lr() {
    let cpu = Cpu::<f64>::new();
    let mut opt = Optim::<Cpu<f64>, _>::new(Sgd {
        lr: 0.1,
        weight_decay: 0.5,
        ..Sgd::default()
    })
    .unwrap();
    let bias_group = opt
        .add_group(GroupOptions {
            lr_scale: 2.0,
            ..GroupOptions::no_decay()
        })
        .unwrap();
    let (mut w, mut b) = (
        cpu.upload_f64(1, 1, &[1.0]).unwrap(),
        cpu.upload_f64(1, 1, &[1.0]).unwrap(),
    );
    let g = cpu.upload_f64(1, 1, &[0.0]).unwrap();
    opt.step(
        &cpu,
        &mut [
            ParamRef::new("w", &mut w, &g),
            ParamRef::new("b", &mut b, &g).in_group(bias_group),
        ],
    )
    .unwrap();
    assert_eq!(cpu.download(&w).unwrap(), vec![1.0 - 0.1 * 0.5]);
    assert_eq!(cpu.download(&b).unwrap(), vec![1.0]);
    let err = opt
        .step(&cpu, &mut [ParamRef::new("w", &mut w, &g).in_group(7)])
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidParameter { name: "group", .. }),
        "{err}"
    );
}

/// Export after 10 steps, import into a fresh optimizer, 10 more steps: the
/// result equals 20 uninterrupted steps bit for bit.
fn resume_is_exact<B: Backend>(b: &B, _label: &str) {
    let cfg = Adam {
        lr: 0.01,
        amsgrad: true,
        ..Adam::default()
    };
    let grads: Vec<B::Tensor> = (0..20)
        .map(|t| b.upload(1, 5, &random(t, 5)).unwrap())
        .collect();
    let start = random(77, 5);
    let mut straight = b.upload(1, 5, &start).unwrap();
    let mut opt = Optim::<B, _>::new(cfg).unwrap();
    for g in &grads {
        opt.step(b, &mut [ParamRef::new("p", &mut straight, g)])
            .unwrap();
    }
    let mut resumed = b.upload(1, 5, &start).unwrap();
    let mut first = Optim::<B, _>::new(cfg).unwrap();
    for g in &grads[..10] {
        first
            .step(b, &mut [ParamRef::new("p", &mut resumed, g)])
            .unwrap();
    }
    let saved = first.export_state(b).unwrap();
    assert_eq!(saved.params["p"].step, 10);
    let names: Vec<&str> = saved.params["p"]
        .tensors
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(names, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]);
    let mut second = Optim::<B, _>::new(cfg).unwrap();
    second.import_state(b, &saved).unwrap();
    for g in &grads[10..] {
        second
            .step(b, &mut [ParamRef::new("p", &mut resumed, g)])
            .unwrap();
    }
    assert_eq!(
        b.download(&resumed).unwrap(),
        b.download(&straight).unwrap()
    );
    // A state for another rule is refused.
    let mut sgd = Optim::<B, _>::new(Sgd {
        momentum: 0.9,
        ..Sgd::default()
    })
    .unwrap();
    assert!(matches!(sgd.import_state(b, &saved), Err(Error::Model(_))));
}

backend_tests!(export_import_resumes_exactly: resume_is_exact on cpu_f64, gpu);

// ---- schedules ----------------------------------------------------------------

#[test]
fn schedules_match_closed_forms() {
    let close = |a: f64, b: f64| assert!((a - b).abs() <= 1e-15 * b.abs().max(1.0), "{a} vs {b}");
    let s = Schedule::constant(0.3).unwrap();
    close(s.lr(0), 0.3);
    close(s.lr(1000), 0.3);
    // StepLR(step_size=30, gamma=0.1) from 0.05.
    let s = Schedule::step(0.05, 30, 0.1).unwrap();
    for (t, want) in [
        (0, 0.05),
        (29, 0.05),
        (30, 0.005),
        (59, 0.005),
        (60, 0.0005),
        (95, 0.00005),
    ] {
        close(s.lr(t), want);
    }
    let s = Schedule::inverse(0.1, 0.5).unwrap();
    for (t, want) in [(0, 0.1), (1, 0.1 / 1.5), (4, 0.1 / 3.0), (100, 0.1 / 51.0)] {
        close(s.lr(t), want);
    }
    // η₀·e^(−εt) equals ExponentialLR's η₀·γᵗ with γ = e^(−ε).
    let (eps, lr0) = (0.2, 0.1);
    let s = Schedule::exponential(lr0, eps).unwrap();
    let gamma = f64::exp(-eps);
    for t in [0, 1, 5, 17] {
        close(s.lr(t), lr0 * gamma.powi(t as i32));
    }
    close(s.lr(5), 0.1 * f64::exp(-1.0));
    // CosineAnnealingLR(T_max=10, eta_min=0.01) from 0.1.
    let s = Schedule::cosine(0.1, 10, 0.01).unwrap();
    close(s.lr(0), 0.1);
    close(s.lr(5), 0.055);
    close(s.lr(10), 0.01);
    close(
        s.lr(2),
        0.01 + 0.09 * (1.0 + (std::f64::consts::PI / 5.0).cos()) / 2.0,
    );
    // LinearLR(start_factor=0.25, total_iters=4), then StepLR from its own t = 0.
    let s = Schedule::warmup(4, 0.25, Schedule::step(0.2, 3, 0.5).unwrap()).unwrap();
    for (t, want) in [
        (0, 0.05),
        (1, 0.0875),
        (2, 0.125),
        (3, 0.1625),
        (4, 0.2),
        (6, 0.2),
        (7, 0.1),
        (10, 0.05),
    ] {
        close(s.lr(t), want);
    }
}

#[test]
fn schedule_drives_the_optimizer() {
    let cpu = Cpu::<f64>::new();
    let schedule = Schedule::step(0.1, 2, 0.5).unwrap();
    let mut opt = Optim::<Cpu<f64>, _>::new(Sgd::default()).unwrap();
    let mut w = cpu.upload_f64(1, 1, &[0.0]).unwrap();
    let g = cpu.upload_f64(1, 1, &[1.0]).unwrap();
    for epoch in 0..4 {
        opt.set_lr(schedule.lr(epoch)).unwrap();
        opt.step(&cpu, &mut [ParamRef::new("w", &mut w, &g)])
            .unwrap();
    }
    assert!((cpu.download(&w).unwrap()[0] + (0.1 + 0.1 + 0.05 + 0.05)).abs() < 1e-15);
}

// ---- bad hyperparameters --------------------------------------------------

fn rejects<C: OptimizerConfig>(config: C, name: &str) {
    let what = format!("{config:?}");
    match Optim::<Cpu<f32>, C>::new(config) {
        Err(Error::InvalidParameter { name: n, .. }) => assert_eq!(n, name, "{what}"),
        Err(e) => panic!("{what}: expected InvalidParameter({name}), got {e}"),
        Ok(_) => panic!("{what}: expected InvalidParameter({name}), got Ok"),
    }
}

#[test]
fn bad_hyperparameters_are_named() {
    rejects(
        Sgd {
            lr: -0.1,
            ..Sgd::default()
        },
        "lr",
    );
    rejects(
        Sgd {
            lr: f64::NAN,
            ..Sgd::default()
        },
        "lr",
    );
    rejects(
        Sgd {
            momentum: -0.5,
            ..Sgd::default()
        },
        "momentum",
    );
    rejects(
        Sgd {
            nesterov: true,
            ..Sgd::default()
        },
        "nesterov",
    );
    rejects(
        Sgd {
            nesterov: true,
            momentum: 0.9,
            dampening: 0.1,
            ..Sgd::default()
        },
        "nesterov",
    );
    rejects(
        Sgd {
            dampening: 1.5,
            ..Sgd::default()
        },
        "dampening",
    );
    rejects(
        Sgd {
            weight_decay: -1e-4,
            ..Sgd::default()
        },
        "weight_decay",
    );
    rejects(
        EmaMomentum {
            beta: 1.0,
            ..EmaMomentum::default()
        },
        "beta",
    );
    rejects(
        Adagrad {
            eps: 0.0,
            ..Adagrad::default()
        },
        "eps",
    );
    rejects(
        Adagrad {
            lr_decay: -1.0,
            ..Adagrad::default()
        },
        "lr_decay",
    );
    rejects(
        Adagrad {
            initial_accumulator_value: -0.1,
            ..Adagrad::default()
        },
        "initial_accumulator_value",
    );
    rejects(
        RmsProp {
            alpha: -0.1,
            ..RmsProp::default()
        },
        "alpha",
    );
    rejects(
        RmsProp {
            eps: -1e-8,
            ..RmsProp::default()
        },
        "eps",
    );
    rejects(
        RmsProp {
            momentum: f64::NAN,
            ..RmsProp::default()
        },
        "momentum",
    );
    rejects(
        Adam {
            betas: (1.0, 0.999),
            ..Adam::default()
        },
        "beta1",
    );
    rejects(
        Adam {
            betas: (0.9, -0.1),
            ..Adam::default()
        },
        "beta2",
    );
    rejects(
        Adam {
            betas: (0.9, f64::NAN),
            ..Adam::default()
        },
        "beta2",
    );
    rejects(
        Adam {
            eps: 0.0,
            ..Adam::default()
        },
        "eps",
    );
    rejects(
        AdamW {
            lr: f64::INFINITY,
            ..AdamW::default()
        },
        "lr",
    );
    rejects(
        AdamW {
            weight_decay: f64::NAN,
            ..AdamW::default()
        },
        "weight_decay",
    );

    let opt = || Optim::<Cpu<f32>, _>::new(Adam::default()).unwrap();
    assert!(matches!(
        opt().with_l1(-1.0),
        Err(Error::InvalidParameter { name: "l1", .. })
    ));
    assert!(matches!(
        opt().with_clip(GradClip::Norm(0.0)),
        Err(Error::InvalidParameter {
            name: "max_norm",
            ..
        })
    ));
    assert!(matches!(
        opt().with_clip(GradClip::Value(f64::NAN)),
        Err(Error::InvalidParameter {
            name: "clip_value",
            ..
        })
    ));
    assert!(matches!(
        opt().set_lr(-1.0),
        Err(Error::InvalidParameter { name: "lr", .. })
    ));
    let bad_group = GroupOptions {
        weight_decay: Some(-1.0),
        ..GroupOptions::default()
    };
    assert!(matches!(
        opt().add_group(bad_group),
        Err(Error::InvalidParameter {
            name: "weight_decay",
            ..
        })
    ));

    assert!(matches!(
        Schedule::step(0.1, 0, 0.5),
        Err(Error::InvalidParameter {
            name: "step_size",
            ..
        })
    ));
    assert!(matches!(
        Schedule::step(0.1, 5, 0.0),
        Err(Error::InvalidParameter { name: "gamma", .. })
    ));
    assert!(matches!(
        Schedule::exponential(-0.1, 0.1),
        Err(Error::InvalidParameter { name: "lr", .. })
    ));
    assert!(matches!(
        Schedule::inverse(0.1, f64::NAN),
        Err(Error::InvalidParameter {
            name: "epsilon",
            ..
        })
    ));
    assert!(matches!(
        Schedule::cosine(0.1, 10, 0.5),
        Err(Error::InvalidParameter {
            name: "eta_min",
            ..
        })
    ));
    let inner = Schedule::constant(0.1).unwrap();
    assert!(matches!(
        Schedule::warmup(3, 0.0, inner),
        Err(Error::InvalidParameter {
            name: "start_factor",
            ..
        })
    ));
}

#[test]
fn mismatched_state_and_duplicate_names_are_errors() {
    let cpu = Cpu::<f32>::new();
    let mut opt = Optim::<Cpu<f32>, _>::new(Adam::default()).unwrap();
    let (mut a, mut b) = (cpu.zeros(2, 3).unwrap(), cpu.zeros(2, 3).unwrap());
    let g = cpu.zeros(2, 3).unwrap();
    let err = opt
        .step(
            &cpu,
            &mut [
                ParamRef::new("x", &mut a, &g),
                ParamRef::new("x", &mut b, &g),
            ],
        )
        .unwrap_err();
    assert!(matches!(err, Error::Model(_)), "{err}");
    // The same name with a new shape: the state no longer fits.
    opt.step(&cpu, &mut [ParamRef::new("x", &mut a, &g)])
        .unwrap();
    let (mut c, gc) = (cpu.zeros(3, 2).unwrap(), cpu.zeros(3, 2).unwrap());
    assert!(matches!(
        opt.step(&cpu, &mut [ParamRef::new("x", &mut c, &gc)]),
        Err(Error::Shape { .. })
    ));
    // Straight at the backend: a gradient of the wrong shape.
    let rule = wgtrain::UpdateRule {
        method: wgtrain::UpdateMethod::Sgd {
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
        },
        lr: 0.1,
        weight_decay: 0.0,
        decoupled_weight_decay: false,
        l1: 0.0,
        clip: GradClip::None,
    };
    assert!(matches!(
        cpu.optimizer_update(&rule, 1, &mut a, &gc, &mut [], None),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        cpu.optimizer_update(&rule, 0, &mut a, &g, &mut [], None),
        Err(Error::InvalidParameter { name: "step", .. })
    ));
}

/// `torch.optim.LBFGS` in float64 (scripts/lbfgs_torch.py): every case,
/// step by step: the returned loss, the parameters, and PyTorch's iteration
/// and evaluation counts. In f64 the only difference is the order of the
/// sums in the inner products: 1e-8 on the parameters and 1e-9 on the loss
/// over up to 34 iterations. In f32 and on the GPU the first step takes the
/// same iterations and evaluations, later ones may not once the loss nears
/// zero (rounding decides the stopping rules), and the last loss must be as
/// small as PyTorch's.
fn lbfgs_matches_pytorch<B: Backend>(b: &B, label: &str) {
    use wgtrain::optim::{Lbfgs, LineSearch};
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/lbfgs_torch.json"
    ))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let shape: Vec<usize> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_u64().unwrap() as usize)
        .collect();
    let [rows, inputs, hidden, classes] = shape[..] else {
        panic!("shape")
    };
    let x = b
        .upload_f64(rows, inputs, &common::json_floats(&v["x"]))
        .unwrap();
    let labels: Vec<u32> = common::json_floats(&v["y"])
        .iter()
        .map(|&l| l as u32)
        .collect();
    let y = b.indices(&labels, classes).unwrap();
    let spec = wgtrain::Sequential::new(inputs)
        .dense(hidden, wgtrain::Init::XavierUniform)
        .tanh()
        .dense(classes, wgtrain::Init::XavierUniform);
    let exact = label.ends_with("cpu_f64");
    for case in v["cases"].as_array().unwrap() {
        let s = &case["settings"];
        let num = |k: &str| s.get(k).and_then(|v| v.as_f64());
        let config = Lbfgs {
            lr: num("lr").unwrap_or(1.0),
            max_iter: num("max_iter").map_or(20, |v| v as usize),
            max_eval: num("max_eval").map(|v| v as usize),
            tolerance_grad: num("tolerance_grad").unwrap_or(1e-7),
            tolerance_change: num("tolerance_change").unwrap_or(1e-9),
            history_size: num("history_size").map_or(100, |v| v as usize),
            line_search: s.get("line_search_fn").map(|_| LineSearch::StrongWolfe),
        };
        let mut model = spec.build(b, 0).unwrap();
        for (name, values) in v["initial"].as_object().unwrap() {
            model
                .set_parameter(name, &common::json_floats(values))
                .unwrap();
        }
        let mut lbfgs = config.build().unwrap();
        let steps = case["steps"].as_array().unwrap();
        let mut last_loss = f64::NAN;
        for (i, want) in steps.iter().enumerate() {
            let loss = lbfgs
                .step(&mut model, |m| {
                    m.forward_backward(
                        &x,
                        wgtrain::Loss::SoftmaxCrossEntropy,
                        wgtrain::Target::Labels(&y),
                    )?;
                    m.last_loss()
                })
                .unwrap();
            let params: Vec<f64> = model
                .parameter_names()
                .iter()
                .flat_map(|n| model.parameter(n).unwrap().2)
                .collect();
            let want_params = common::json_floats(&want["params"]);
            let diff = params
                .iter()
                .zip(&want_params)
                .map(|(a, w)| (a - w).abs() / w.abs().max(1.0))
                .fold(0.0, f64::max);
            let want_loss = want["loss"].as_f64().unwrap();
            last_loss = loss;
            if exact {
                assert!(
                    (loss - want_loss).abs() <= 1e-9,
                    "{label} {s}: step {i} loss {loss} vs {want_loss}"
                );
                assert!(
                    diff < 1e-8,
                    "{label} {s}: step {i} parameters off by {diff:e}"
                );
                assert_eq!(
                    (lbfgs.iterations(), lbfgs.evaluations()),
                    (
                        want["n_iter"].as_u64().unwrap() as usize,
                        want["func_evals"].as_u64().unwrap() as usize
                    ),
                    "{label} {s}: step {i} counts"
                );
            } else if i == 0 {
                // The first step takes PyTorch's path; twenty iterations
                // amplify f32 rounding to 2e-2 (to O(1) with the fixed
                // step), thirteen or fewer keep it under 2e-4.
                let counts = (lbfgs.iterations(), lbfgs.evaluations());
                let want_counts = (
                    want["n_iter"].as_u64().unwrap() as usize,
                    want["func_evals"].as_u64().unwrap() as usize,
                );
                assert_eq!(counts, want_counts, "{label} {s}: first step counts");
                if counts.0 <= 13 {
                    assert!(diff < 1e-3, "{label} {s}: first step off by {diff:e}");
                }
            }
        }
        let final_loss = steps.last().unwrap()["loss"].as_f64().unwrap();
        assert!(
            last_loss <= (10.0 * final_loss).max(1e-4),
            "{label} {s}: last loss {last_loss} vs PyTorch's {final_loss}"
        );
    }
}

backend_tests!(lbfgs_against_pytorch: lbfgs_matches_pytorch on cpu_f64, cpu_f32, gpu);
