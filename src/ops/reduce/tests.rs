//! Reductions and top-k counts: the GPU against the CPU backend.

use crate::ops::testing::{assert_parity, gpu, random, random_labels, AWKWARD};
use crate::{Backend, Cpu, Reduce};

fn reductions<B: Backend>(b: &B, rows: usize, cols: usize) -> Vec<f64> {
    let x = b
        .upload(
            rows,
            cols,
            &random(rows as u64 * 31 + cols as u64, rows * cols),
        )
        .unwrap();
    let mut col_sums = b.zeros(1, cols).unwrap();
    b.sum_rows(&x, &mut col_sums).unwrap();
    let mut out = b.download(&col_sums).unwrap();
    let mut row_sums = b.zeros(1, rows).unwrap();
    b.sum_cols(&x, &mut row_sums).unwrap();
    out.extend(b.download(&row_sums).unwrap());
    for op in [
        Reduce::Sum,
        Reduce::Mean,
        Reduce::Max,
        Reduce::AbsMax,
        Reduce::AbsSum,
    ] {
        let mut r = b.zeros(1, 1).unwrap();
        b.reduce(op, &x, &mut r).unwrap();
        out.extend(b.download(&r).unwrap());
    }
    // x·y added to 0.5 (the accumulator keeps what it held).
    let y = b
        .upload(rows, cols, &random(rows as u64 + 977, rows * cols))
        .unwrap();
    let mut acc = b.upload(1, 1, &[0.5]).unwrap();
    b.accumulate_dot(&x, &y, &mut acc).unwrap();
    out.extend(b.download(&acc).unwrap());
    out
}

#[test]
fn norms_and_dot_products_are_their_definitions() {
    let cpu = Cpu::<f64>::new();
    let (xs, ys) = (random(5, 1001), random(6, 1001));
    let x = cpu.upload(1, 1001, &xs).unwrap();
    let y = cpu.upload(1, 1001, &ys).unwrap();
    let read = |op| {
        let mut r = cpu.zeros(1, 1).unwrap();
        cpu.reduce(op, &x, &mut r).unwrap();
        cpu.download(&r).unwrap()[0]
    };
    let abs: Vec<f64> = xs.iter().map(|v| (*v as f64).abs()).collect();
    assert_eq!(
        read(Reduce::AbsMax),
        abs.iter().copied().fold(0.0, f64::max)
    );
    assert!((read(Reduce::AbsSum) - abs.iter().sum::<f64>()).abs() < 1e-12);
    let mut acc = cpu.zeros(1, 1).unwrap();
    cpu.accumulate_dot(&x, &y, &mut acc).unwrap();
    let want: f64 = xs.iter().zip(&ys).map(|(a, b)| *a as f64 * *b as f64).sum();
    assert!((cpu.download(&acc).unwrap()[0] - want).abs() < 1e-12);
    let short = cpu.zeros(1, 3).unwrap();
    assert!(cpu.accumulate_dot(&x, &short, &mut acc).is_err());
    // Row sums of a 3×2 matrix, and a wrongly shaped output named.
    let m = cpu.upload_f64(3, 2, &[1., 2., 3., 4., 5., 6.]).unwrap();
    let mut sums = cpu.zeros(1, 3).unwrap();
    cpu.sum_cols(&m, &mut sums).unwrap();
    assert_eq!(cpu.download(&sums).unwrap(), vec![3., 7., 11.]);
    let mut column = cpu.zeros(3, 1).unwrap();
    let err = cpu.sum_cols(&m, &mut column).unwrap_err();
    assert!(err.to_string().contains("needs output 1x3"), "{err}");
}

#[test]
fn reductions_column_and_row_sums_sum_mean_max() {
    let Some(g) = gpu() else { return };
    let cpu = Cpu::<f32>::new();
    for &rows in &AWKWARD {
        for &cols in &[1, 10, 65, 513] {
            // Sums of up to 513k values in [-1, 1]: f32 summation order error ~1e-4 of max(1,|s|).
            assert_parity(
                &format!("reductions {rows}x{cols}"),
                &reductions(&g, rows, cols),
                &reductions(&cpu, rows, cols),
                1e-4,
            );
        }
    }
    // Max must find the maximum exactly, wherever it sits.
    let mut data = random(3, 70_001);
    data[69_999] = 5.0;
    let x = g.upload(1, data.len(), &data).unwrap();
    let mut r = g.zeros(1, 1).unwrap();
    g.reduce(Reduce::Max, &x, &mut r).unwrap();
    assert_eq!(g.download(&r).unwrap(), vec![5.0]);
}

fn top_k<B: Backend>(b: &B, rows: usize, cols: usize) -> Vec<f64> {
    let pred = b
        .upload(rows, cols, &random(rows as u64, rows * cols))
        .unwrap();
    let labels = b.indices(&random_labels(7, rows, cols), cols).unwrap();
    let mut out = Vec::new();
    for k in [1, 2, 5] {
        let mut correct = b.upload(1, 1, &[0.5]).unwrap();
        b.count_top_k(&pred, &labels, k, &mut correct).unwrap();
        out.extend(b.download(&correct).unwrap());
    }
    out
}

#[test]
fn top_k_counts_match_and_are_right() {
    let cpu = Cpu::<f64>::new();
    // By hand: row 0 has its label (2) on top, row 1 second, row 2 last.
    let pred = cpu
        .upload_f64(3, 3, &[0.1, 0.2, 0.9, 0.5, 0.3, 0.1, 0.7, 0.8, 0.1])
        .unwrap();
    let labels = cpu.indices(&[2, 1, 2], 3).unwrap();
    for (k, want) in [(1, 1.0), (2, 2.0), (3, 3.0)] {
        let mut c = cpu.zeros(1, 1).unwrap();
        cpu.count_top_k(&pred, &labels, k, &mut c).unwrap();
        assert_eq!(cpu.download(&c).unwrap(), vec![want], "k={k}");
    }
    let Some(g) = gpu() else { return };
    for &rows in &AWKWARD {
        // Counts are integers and accumulate onto 0.5: exact.
        assert_parity(
            &format!("top-k {rows}x10"),
            &top_k(&g, rows, 10),
            &top_k(&Cpu::<f32>::new(), rows, 10),
            0.0,
        );
    }
}
