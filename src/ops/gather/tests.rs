//! Gathers and the elementwise ops: the GPU against the CPU backend.

use crate::ops::testing::{assert_parity, gpu, random, random_labels, AWKWARD};
use crate::{Backend, Cpu};

fn gather_fill_scale_axpy<B: Backend>(b: &B, rows: usize, cols: usize) -> Vec<f64> {
    let src = b.upload(rows, cols, &random(11, rows * cols)).unwrap();
    let order: Vec<u32> = (0..rows as u32).rev().chain([0, rows as u32 / 2]).collect();
    let idx = b.indices(&order, rows).unwrap();
    let mut out = b.zeros(order.len(), cols).unwrap();
    b.gather_rows(&src, &idx, 0, &mut out).unwrap();
    // A slice of the permutation, as the trainer uses it.
    let mut tail = b.zeros(2, cols).unwrap();
    b.gather_rows(&src, &idx, order.len() - 2, &mut tail)
        .unwrap();
    let labels = b.indices(&random_labels(1, rows, 10), 10).unwrap();
    let mut picked = b.indices(&vec![0; order.len()], 10).unwrap();
    b.gather_indices(&labels, &idx, 0, &mut picked).unwrap();
    let mut y = b.upload(rows, cols, &random(12, rows * cols)).unwrap();
    b.axpy(-0.375, &src, &mut y).unwrap();
    b.scale(&mut y, 1.5).unwrap();
    let mut f = b.zeros(rows, cols).unwrap();
    b.fill(&mut f, 0.25).unwrap();
    let mut v = b.download(&out).unwrap();
    v.extend(b.download(&tail).unwrap());
    v.extend(
        b.download_indices(&picked)
            .unwrap()
            .iter()
            .map(|&i| i as f64),
    );
    v.extend(b.download(&y).unwrap());
    v.extend(b.download(&f).unwrap());
    v
}

#[test]
fn gather_fill_scale_axpy_match() {
    let Some(g) = gpu() else { return };
    let cpu = Cpu::<f32>::new();
    for &rows in &AWKWARD {
        for &cols in &[1, 7, 784] {
            // Gathers and fills are exact; axpy and scale are one rounding each.
            let (gv, cv) = (
                gather_fill_scale_axpy(&g, rows, cols),
                gather_fill_scale_axpy(&cpu, rows, cols),
            );
            assert_parity(
                &format!("gather/fill/scale/axpy {rows}x{cols}"),
                &gv,
                &cv,
                1e-7,
            );
        }
    }
}
