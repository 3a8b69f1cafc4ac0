//! The dense backward pass: the CPU's joint job against the ops in turn
//! (the same bits), against the textbook loops in f64, the GPU (the
//! composite default) against the CPU, and the shape checks.

use super::DenseGrads;
use crate::backend::reference_matmul;
use crate::ops::testing::{assert_parity, gpu, random};
use crate::{Activation, Backend, Cpu, Error, MatmulSpec};

/// (rows, outs, ins): products over 2^20 multiply-adds (cut into pieces)
/// and under, the output layer's (10 wide), and sides of one.
const SHAPES: [(usize, usize, usize); 6] = [
    (96, 160, 144),
    (256, 10, 512),
    (33, 7, 257),
    (64, 520, 33),
    (7, 33, 5),
    (1, 1, 1),
];

/// Which gradients a call asks for: the bias's, the input's, its gate.
const ASKS: [(bool, bool, Option<Activation>); 4] = [
    (true, true, Some(Activation::Relu)),
    (true, true, Some(Activation::Tanh)),
    (false, true, None),
    (true, false, None),
];

/// The gradients `b` writes for a layer of `(rows, outs, ins)`, from host
/// data: weight, then bias, then input gradient (those asked for).
fn gradients<B: Backend>(
    b: &B,
    (rows, outs, ins): (usize, usize, usize),
    (bias, input, gate): (bool, bool, Option<Activation>),
    joint: bool,
) -> Vec<Vec<f64>> {
    let seed = (rows * 7 + outs * 3 + ins) as u64;
    let g = b.upload(rows, outs, &random(seed, rows * outs)).unwrap();
    let x = b.upload(rows, ins, &random(seed + 1, rows * ins)).unwrap();
    let w = b.upload(outs, ins, &random(seed + 2, outs * ins)).unwrap();
    let z = b.upload(rows, ins, &random(seed + 3, rows * ins)).unwrap();
    let mut gw = b.zeros(outs, ins).unwrap();
    let mut gb = b.zeros(1, outs).unwrap();
    let mut gx = b.zeros(rows, ins).unwrap();
    let gate = gate.map(|act| (act, &z));
    if joint {
        let grads = DenseGrads {
            weight: &mut gw,
            bias: bias.then_some(&mut gb),
            input: input.then_some((&mut gx, gate)),
        };
        b.dense_backward(&g, &x, &w, grads).unwrap();
    } else {
        let weight_spec = MatmulSpec {
            transpose_a: true,
            ..MatmulSpec::default()
        };
        b.matmul(&g, &x, &mut gw, weight_spec).unwrap();
        if bias {
            b.sum_rows(&g, &mut gb).unwrap();
        }
        if input {
            let spec = MatmulSpec {
                gate,
                ..MatmulSpec::default()
            };
            b.matmul(&g, &w, &mut gx, spec).unwrap();
        }
    }
    let mut out = vec![b.download(&gw).unwrap()];
    if bias {
        out.push(b.download(&gb).unwrap());
    }
    if input {
        out.push(b.download(&gx).unwrap());
    }
    out
}

#[test]
fn the_cpu_job_gives_the_bits_of_the_ops_in_turn() {
    // What the dense layer computed before the joint job, exactly: a
    // training run's numbers do not depend on it.
    let cpu = Cpu::<f32>::new();
    for shape in SHAPES {
        for ask in ASKS {
            let joint = gradients(&cpu, shape, ask, true);
            let in_turn = gradients(&cpu, shape, ask, false);
            assert_eq!(joint, in_turn, "{shape:?} {ask:?}");
        }
    }
}

#[test]
fn the_gradients_are_their_textbook_definitions() {
    // Against the triple loop and a plain sum in f64: f32 sums of at most
    // 520 products of values in [-1, 1] (the matmul tests' 1e-4).
    let (cpu, wide) = (Cpu::<f32>::new(), Cpu::<f64>::new());
    for shape @ (rows, outs, ins) in SHAPES {
        for ask @ (bias, input, gate) in ASKS {
            let got = gradients(&cpu, shape, ask, true);
            let seed = (rows * 7 + outs * 3 + ins) as u64;
            let up = |r, c, s| wide.upload(r, c, &random(s, r * c)).unwrap();
            let (g, x, w, z) = (
                up(rows, outs, seed),
                up(rows, ins, seed + 1),
                up(outs, ins, seed + 2),
                up(rows, ins, seed + 3),
            );
            let mut want = Vec::new();
            let mut gw = wide.zeros(outs, ins).unwrap();
            let weight_spec = MatmulSpec {
                transpose_a: true,
                ..MatmulSpec::default()
            };
            reference_matmul(&g, &x, &mut gw, weight_spec).unwrap();
            want.push(wide.download(&gw).unwrap());
            if bias {
                let gs = wide.download(&g).unwrap();
                want.push(
                    (0..outs)
                        .map(|j| (0..rows).map(|i| gs[i * outs + j]).sum())
                        .collect(),
                );
            }
            if input {
                let mut gx = wide.zeros(rows, ins).unwrap();
                let spec = MatmulSpec {
                    gate: gate.map(|act| (act, &z)),
                    ..MatmulSpec::default()
                };
                reference_matmul(&g, &w, &mut gx, spec).unwrap();
                want.push(wide.download(&gx).unwrap());
            }
            assert_eq!(got.len(), want.len());
            for (part, (got, want)) in got.iter().zip(&want).enumerate() {
                assert_parity(&format!("{shape:?} {ask:?} part {part}"), got, want, 1e-4);
            }
        }
    }
}

#[test]
fn the_gpu_matches_the_cpu() {
    let Some(gpu) = gpu() else { return };
    let cpu = Cpu::<f32>::new();
    for shape in SHAPES {
        for ask in ASKS {
            let (on_gpu, on_cpu) = (
                gradients(&gpu, shape, ask, true),
                gradients(&cpu, shape, ask, true),
            );
            for (part, (g, c)) in on_gpu.iter().zip(&on_cpu).enumerate() {
                // The matmul tests' bound: f32 sums in two orders.
                assert_parity(&format!("gpu {shape:?} {ask:?} part {part}"), g, c, 1e-4);
            }
        }
    }
}

#[test]
fn every_gradient_is_shape_checked() {
    let cpu = Cpu::<f32>::new();
    let (rows, outs, ins) = (4, 3, 5);
    let g = cpu.zeros(rows, outs).unwrap();
    let x = cpu.zeros(rows, ins).unwrap();
    let w = cpu.zeros(outs, ins).unwrap();
    let z = cpu.zeros(rows, ins + 1).unwrap();
    let run = |gw: (usize, usize), gb: (usize, usize), gx: (usize, usize), gated: bool| {
        let mut gw = cpu.zeros(gw.0, gw.1).unwrap();
        let mut gb = cpu.zeros(gb.0, gb.1).unwrap();
        let mut gx = cpu.zeros(gx.0, gx.1).unwrap();
        let gate = gated.then_some((Activation::Relu, &z));
        let grads = DenseGrads {
            weight: &mut gw,
            bias: Some(&mut gb),
            input: Some((&mut gx, gate)),
        };
        cpu.dense_backward(&g, &x, &w, grads)
    };
    assert!(run((outs, ins), (1, outs), (rows, ins), false).is_ok());
    for wrong in [
        run((ins, outs), (1, outs), (rows, ins), false),
        run((outs, ins), (1, ins), (rows, ins), false),
        run((outs, ins), (1, outs), (rows, outs), false),
        // The gate's input must be shaped like the input gradient.
        run((outs, ins), (1, outs), (rows, ins), true),
    ] {
        assert!(matches!(wrong, Err(Error::Shape { .. })), "{wrong:?}");
    }
}
