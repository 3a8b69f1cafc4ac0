//! RBF units: the GPU against the CPU backend at awkward sizes, forward
//! and backward (finite differences through the layer: tests/network.rs).

use crate::ops::testing::{assert_parity, gpu, random};
use crate::{Backend, Cpu};

fn rbf<B: Backend>(b: &B, n: usize, k: usize, m: usize) -> Vec<f64> {
    let seed = (n * 1000 + k * 10 + m) as u64;
    let x = b.upload(n, k, &random(seed, n * k)).unwrap();
    let c = b.upload(m, k, &random(seed + 1, m * k)).unwrap();
    // Widths in (0.1, 1.1): every unit responds somewhere in [-1, 1]^k.
    let beta: Vec<f32> = random(seed + 2, m).iter().map(|v| 0.6 + 0.5 * v).collect();
    let beta = b.upload(1, m, &beta).unwrap();
    let (mut h, mut d) = (b.zeros(n, m).unwrap(), b.zeros(n, m).unwrap());
    b.rbf_forward(&x, &c, &beta, &mut h, &mut d).unwrap();
    let g = b.upload(n, m, &random(seed + 3, n * m)).unwrap();
    let (mut gc, mut gb, mut gx) = (
        b.zeros(m, k).unwrap(),
        b.zeros(1, m).unwrap(),
        b.zeros(n, k).unwrap(),
    );
    b.rbf_backward(&x, &c, &beta, &d, &g, &mut gc, &mut gb, Some(&mut gx))
        .unwrap();
    [&h, &d, &gc, &gb, &gx]
        .iter()
        .flat_map(|t| b.download(t).unwrap())
        .collect()
}

#[test]
fn rbf_units_forward_and_backward() {
    let Some(g) = gpu() else { return };
    let cpu = Cpu::<f32>::new();
    for (n, k, m) in [
        (1, 1, 1),
        (7, 3, 5),
        (33, 2, 17),
        (257, 7, 33),
        (64, 784, 10),
    ] {
        // Sums of ≤ 784 squared differences and of ≤ 257 products, in f32: 1e-5.
        assert_parity(
            &format!("rbf {n}x{k}, {m} units"),
            &rbf(&g, n, k, m),
            &rbf(&cpu, n, k, m),
            1e-5,
        );
    }
}

#[test]
fn rbf_shapes_are_checked() {
    let cpu = Cpu::<f32>::new();
    let x = cpu.zeros(3, 2).unwrap();
    let c = cpu.zeros(4, 3).unwrap();
    let beta = cpu.zeros(1, 4).unwrap();
    let (mut h, mut d) = (cpu.zeros(3, 4).unwrap(), cpu.zeros(3, 4).unwrap());
    let e = cpu.rbf_forward(&x, &c, &beta, &mut h, &mut d).unwrap_err();
    assert!(e.to_string().contains("centres 4x3"), "{e}");
}
