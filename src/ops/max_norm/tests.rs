//! The max-norm constraint: PyTorch's `torch.renorm` on every backend, and
//! the GPU against the CPU at awkward shapes.

use crate::ops::testing::{assert_parity, gpu, json_floats, random};
use crate::{Backend, Cpu};

fn against_pytorch<B: Backend>(b: &B, tolerance: f64) {
    let data: serde_json::Value =
        serde_json::from_str(include_str!("../../../tests/data/max_norm_torch.json")).unwrap();
    let (rows, cols) = (
        data["rows"].as_u64().unwrap() as usize,
        data["cols"].as_u64().unwrap() as usize,
    );
    for case in data["cases"].as_array().unwrap() {
        let c = case["max_norm"].as_f64().unwrap();
        let mut w = b.upload_f64(rows, cols, &json_floats(&data["w"])).unwrap();
        b.max_norm_rows(&mut w, c).unwrap();
        assert_parity(
            &format!("max-norm {c} against torch.renorm"),
            &b.download(&w).unwrap(),
            &json_floats(&case["out"]),
            tolerance,
        );
    }
}

#[test]
fn max_norm_matches_pytorch_renorm() {
    // f64: the norm's order of additions only.
    against_pytorch(&Cpu::<f64>::new(), 1e-12);
    // f32: a 7-term norm and one division per row.
    against_pytorch(&Cpu::<f32>::new(), 1e-6);
    if let Some(g) = gpu() {
        against_pytorch(&g, 1e-6);
    }
}

#[test]
fn max_norm_gpu_matches_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = Cpu::<f32>::new();
    // Rows of 1, 7, 33 and 257 (over the 64-wide workgroup), and 1000 rows.
    for &(rows, cols) in &[(1, 1), (7, 3), (33, 65), (257, 784), (1000, 10), (3, 257)] {
        let w: Vec<f32> = random(rows as u64 * 31 + cols as u64, rows * cols);
        for c in [0.05, 1.0, 100.0] {
            let mut on_gpu = g.upload(rows, cols, &w).unwrap();
            g.max_norm_rows(&mut on_gpu, c).unwrap();
            let mut on_cpu = cpu.upload(rows, cols, &w).unwrap();
            cpu.max_norm_rows(&mut on_cpu, c).unwrap();
            let (on_gpu, on_cpu) = (g.download(&on_gpu).unwrap(), cpu.download(&on_cpu).unwrap());
            // The norms are sums of ≤ 784 squares in another order: 1e-5.
            assert_parity(
                &format!("max-norm {c} {rows}x{cols}"),
                &on_gpu,
                &on_cpu,
                1e-5,
            );
        }
    }
}

#[test]
fn max_norm_radius_is_checked() {
    let cpu = Cpu::<f32>::new();
    let mut w = cpu.zeros(2, 2).unwrap();
    for c in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let e = cpu.max_norm_rows(&mut w, c);
        assert!(
            matches!(
                e,
                Err(crate::Error::InvalidParameter {
                    name: "max_norm",
                    ..
                })
            ),
            "{c}: {e:?}"
        );
    }
}
