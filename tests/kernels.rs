//! Parity of every WGSL kernel with the CPU reference, on fresh random data
//! at awkward sizes. Each test runs the same generic function on `Gpu` and on
//! `Cpu<f32>` and asserts max|gpu − cpu| / max(1, |cpu|) below a stated bound.

mod common;

use common::{assert_parity, gpu, random, random_labels, AWKWARD};
use wgtrain::{
    Activation, Backend, Cpu, Error, Gpu, Loss, MatmulKernel, MatmulSpec, Reduce, Target,
    TiledPlan, TiledTile,
};

/// `op(A)·op(B) (+ bias, act)` on any backend, from host data.
#[allow(clippy::too_many_arguments)]
fn matmul<B: Backend>(
    b: &B,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
    bias: bool,
    act: Activation,
    seed: u64,
) -> Vec<f64> {
    let (ar, ac) = if ta { (k, m) } else { (m, k) };
    let (br, bc) = if tb { (n, k) } else { (k, n) };
    let a = b.upload(ar, ac, &random(seed, m * k)).unwrap();
    let bb = b.upload(br, bc, &random(seed + 1, k * n)).unwrap();
    let bias_t = b.upload(1, n, &random(seed + 2, n)).unwrap();
    let mut out = b.zeros(m, n).unwrap();
    let spec = MatmulSpec {
        transpose_a: ta,
        transpose_b: tb,
        bias: bias.then_some(&bias_t),
        act,
        gate: None,
    };
    b.matmul(&a, &bb, &mut out, spec).unwrap();
    b.download(&out).unwrap()
}

// f32 dot products of length k round with a relative error up to about k·2⁻²⁴
// of Σ|aᵢbᵢ| in the worst case; the two backends sum in different orders
// (the GPU in tiles). For k ≤ 2048 and inputs in [-1, 1] that bounds the
// difference by ~1e-4 of max(1, |value|).
const MATMUL_TOL: f64 = 1e-4;

const FORMS: [(bool, bool); 4] = [(false, false), (true, false), (false, true), (true, true)];

/// `op(A)·op(B)` of shape `m×k · k×n` (+ bias, act) on `g` and on the CPU
/// backend from the same random inputs, asserted to agree within MATMUL_TOL.
fn assert_matmul(
    g: &Gpu,
    label: &str,
    (m, n, k): (usize, usize, usize),
    (ta, tb): (bool, bool),
    (bias, act): (bool, Activation),
    seed: u64,
) {
    let gv = matmul(g, m, n, k, ta, tb, bias, act, seed);
    let cv = matmul(&Cpu::<f32>::new(), m, n, k, ta, tb, bias, act, seed);
    assert_parity(
        &format!("{label} ta={ta} tb={tb} bias={bias} {act:?} {m}x{k}·{k}x{n}"),
        &gv,
        &cv,
        MATMUL_TOL,
    );
}

/// Every transpose form of every shape on `g` against the CPU backend, with
/// the bias and activation `epilogue(i)` gives shape i.
fn assert_every_form(
    g: &Gpu,
    label: &str,
    shapes: &[(usize, usize, usize)],
    seed: u64,
    epilogue: fn(usize) -> (bool, Activation),
) {
    for form in FORMS {
        for (i, &shape) in shapes.iter().enumerate() {
            assert_matmul(g, label, shape, form, epilogue(i), seed + i as u64);
        }
    }
}

#[test]
fn matmul_all_forms_awkward_sizes() {
    let Some(g) = gpu() else { return };
    let mut seed = 0;
    for &(ta, tb) in &[(false, false), (true, false), (false, true), (true, true)] {
        for &m in &AWKWARD {
            // Pair each m with a different n and k so shapes are non-square.
            for &(n, k) in &[(7, 33), (65, 1), (257, 3), (33, 1000)] {
                if m * n * k > 40_000_000 {
                    continue;
                }
                seed += 10;
                let plain = (false, Activation::Identity);
                assert_matmul(&g, "matmul", (m, n, k), (ta, tb), plain, seed);
            }
        }
    }
}

#[test]
fn matmul_large_non_square() {
    let Some(g) = gpu() else { return };
    // The shapes of a 784-512-512-10 network at batch 256, and two odd ones.
    for &(m, n, k, ta, tb) in &[
        (256, 512, 784, false, true),  // forward, layer 1: X·Wᵀ
        (512, 784, 256, true, false),  // weight gradient: δᵀ·X
        (256, 784, 512, false, false), // input gradient: δ·W
        (1000, 257, 513, false, false),
        (129, 1031, 260, false, true),
    ] {
        let plain = (false, Activation::Identity);
        assert_matmul(&g, "matmul", (m, n, k), (ta, tb), plain, 7);
    }
}

/// Every kernel family, whichever the adapter uses by default: the register
/// kernels, with and without shared reads (lavapipe's default), and the
/// workgroup-memory kernel (real GPUs').
#[test]
fn matmul_every_kernel_family() {
    let Some(g) = gpu() else { return };
    let shapes = [
        (1, 1, 1),
        (3, 65, 1),
        (33, 257, 3),
        (65, 33, 1000),
        (257, 7, 33),
        (36, 68, 132),
        (256, 512, 784),
    ];
    for kernel in [
        MatmulKernel::Registers,
        MatmulKernel::RegistersShared,
        MatmulKernel::Workgroup,
    ] {
        g.set_matmul_kernel(kernel);
        assert_every_form(&g, &format!("{kernel:?}"), &shapes, 11, |i| {
            if i % 2 == 0 {
                (false, Activation::Identity)
            } else {
                (true, Activation::Sigmoid)
            }
        });
    }
}

/// The workgroup-memory kernel with each tile forced, unsplit and split into
/// k slices (whose partial sums a second pass adds before bias and
/// activation), at sizes that fill no tile and k that fills no slice. The
/// last three shapes are multiples of 4 in every dimension, so every
/// transpose form also runs the kernel that reads A and B as vec4.
#[test]
fn matmul_workgroup_tiles_and_split_k() {
    let Some(g) = gpu() else { return };
    g.set_matmul_kernel(MatmulKernel::Workgroup);
    let shapes = [
        (1, 1, 1),
        (7, 33, 257),
        (65, 130, 1000),
        (129, 7, 300),
        (4, 4, 4),
        (36, 68, 132),
        (132, 260, 516),
    ];
    for tile in [TiledTile::Large, TiledTile::Small] {
        for (split_k, vec4) in [(1, true), (3, true), (16, true), (1, false), (3, false)] {
            let plan = TiledPlan {
                tile,
                split_k,
                vec4,
            };
            g.set_tiled_plan(Some(plan));
            assert_every_form(&g, &format!("{plan:?}"), &shapes, 50, |i| {
                if i % 2 == 0 {
                    (false, Activation::Identity)
                } else {
                    (true, Activation::LeakyRelu { slope: 0.1 })
                }
            });
        }
    }
    // The plan chosen by shape, on the network's products and a large square.
    g.set_tiled_plan(None);
    for &(m, n, k, ta, tb) in &[
        (256, 512, 784, false, true),
        (512, 784, 256, true, false),
        (256, 10, 512, false, true),
        (1024, 1024, 1024, false, false),
    ] {
        let plan = format!("{:?}", TiledPlan::for_shape(m, n, k));
        assert_matmul(&g, &plan, (m, n, k), (ta, tb), (true, Activation::Relu), 8);
    }
}

/// The vec4 kernel runs when k % 4 == 0, m % 4 == 0 for Aᵀ and n % 4 == 0
/// for B: shapes that qualify but do not fill its 32×64 workgroup tile.
#[test]
fn matmul_vec4_kernel_edges() {
    let Some(g) = gpu() else { return };
    for form in FORMS {
        for shape in [(4, 4, 4), (12, 20, 8), (36, 68, 132), (260, 132, 516)] {
            for epilogue in [(false, Activation::Identity), (true, Activation::Relu)] {
                assert_matmul(&g, "vec4 matmul", shape, form, epilogue, 3);
            }
        }
    }
    // Only the dimensions the kernel reads as vec4 must be multiples of 4.
    for &(m, n, k, ta, tb) in &[
        (33, 68, 20, false, false),
        (37, 33, 8, false, true),
        (36, 33, 12, true, true),
    ] {
        let tanh = (true, Activation::Tanh);
        assert_matmul(&g, "vec4 matmul", (m, n, k), (ta, tb), tanh, 4);
    }
}

#[test]
fn matmul_fused_bias_and_every_activation() {
    let Some(g) = gpu() else { return };
    for act in Activation::all() {
        for &(m, n, k) in &[(1, 1, 1), (33, 65, 7), (257, 10, 33)] {
            assert_matmul(&g, "matmul", (m, n, k), (false, true), (true, act), 99);
        }
    }
}

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
    for op in [Reduce::Sum, Reduce::Mean, Reduce::Max] {
        let mut r = b.zeros(1, 1).unwrap();
        b.reduce(op, &x, &mut r).unwrap();
        out.extend(b.download(&r).unwrap());
    }
    out
}

#[test]
fn reductions_column_sums_sum_mean_max() {
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

fn loss<B: Backend>(b: &B, kind: Loss, rows: usize, cols: usize, labels: bool) -> Vec<f64> {
    let pred: Vec<f32> = random(rows as u64 + 17, rows * cols)
        .iter()
        .map(|v| v * 4.0)
        .collect();
    let p = b.upload(rows, cols, &pred).unwrap();
    let mut grad = b.zeros(rows, cols).unwrap();
    let mut l = b.zeros(1, 1).unwrap();
    if labels {
        let y = b
            .indices(&random_labels(rows as u64, rows, cols), cols)
            .unwrap();
        b.loss(kind, &p, Target::Labels(&y), &mut grad, &mut l)
            .unwrap();
    } else {
        // Targets in [0, 1]: valid for BCE, soft targets for cross-entropy.
        let t: Vec<f32> = random(rows as u64 + 3, rows * cols)
            .iter()
            .map(|v| (v + 1.0) / 2.0)
            .collect();
        let t = b.upload(rows, cols, &t).unwrap();
        b.loss(kind, &p, Target::Dense(&t), &mut grad, &mut l)
            .unwrap();
    }
    let mut out = b.download(&l).unwrap();
    out.extend(b.download(&grad).unwrap());
    out
}

#[test]
fn losses_value_and_gradient() {
    let Some(g) = gpu() else { return };
    let cpu = Cpu::<f32>::new();
    for kind in Loss::all() {
        for labels in [true, false] {
            if (labels && !kind.takes_labels()) || (!labels && !kind.takes_dense()) {
                continue;
            }
            for &(rows, cols) in &[(1, 1), (1, 10), (7, 3), (33, 10), (257, 7), (1000, 10)] {
                if labels && kind != Loss::SoftmaxCrossEntropy && cols == 1 {
                    continue;
                }
                let what = format!(
                    "{kind:?} {} {rows}x{cols}",
                    if labels { "labels" } else { "dense" }
                );
                // Sums over ≤1000 rows of O(10) terms in f32: 1e-5 of max(1, |loss|).
                assert_parity(
                    &what,
                    &loss(&g, kind, rows, cols, labels),
                    &loss(&cpu, kind, rows, cols, labels),
                    1e-5,
                );
            }
        }
    }
}

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

#[test]
fn one_submission_for_many_dispatches() {
    let Some(g) = gpu() else { return };
    let x = g.upload(4, 4, &random(1, 16)).unwrap();
    let mut y = g.zeros(4, 4).unwrap();
    g.synchronize().unwrap();
    let (d0, s0) = g.counters();
    for _ in 0..50 {
        g.axpy(1.0, &x, &mut y).unwrap();
    }
    let v = g.download(&y).unwrap();
    let (d1, s1) = g.counters();
    assert_eq!(d1 - d0, 50);
    assert_eq!(
        s1 - s0,
        1,
        "50 dispatches and a readback should be one submission"
    );
    let xs = g.download(&x).unwrap();
    for (a, b) in v.iter().zip(&xs) {
        // 50 accumulations in f32, each rounding by up to 2⁻²⁴·|a|.
        assert!(
            (a - 50.0 * b).abs() < 1e-4 * a.abs().max(1.0),
            "{v:?} vs 50 × {xs:?}"
        );
    }
}

/// Bad input gives the same typed error on both backends, never a panic.
fn bad_inputs<B: Backend>(b: &B, _label: &str) {
    let a = b.zeros(3, 4).unwrap();
    let w = b.zeros(5, 4).unwrap();
    let mut out = b.zeros(3, 5).unwrap();
    let err = b
        .matmul(&a, &w, &mut out, MatmulSpec::default())
        .unwrap_err();
    assert!(matches!(err, Error::Shape { .. }), "{err}");
    assert!(
        err.to_string().contains("3x4") && err.to_string().contains("5x4"),
        "{err}"
    );
    let mut wrong = b.zeros(3, 4).unwrap();
    assert!(matches!(
        b.matmul(
            &a,
            &w,
            &mut wrong,
            MatmulSpec {
                transpose_b: true,
                ..Default::default()
            }
        ),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(b.zeros(0, 3), Err(Error::Empty { .. })));
    assert!(matches!(
        b.upload(2, 2, &[1.0; 3]),
        Err(Error::Length {
            expected: 4,
            got: 3,
            ..
        })
    ));
    let e = b.indices(&[0, 1, 10], 10).unwrap_err();
    assert!(
        matches!(
            e,
            Error::IndexRange {
                index: 10,
                position: 2,
                bound: 10,
                ..
            }
        ),
        "{e}"
    );
    let labels = b.indices(&[0, 1], 2).unwrap();
    let (mut g3, mut l) = (b.zeros(3, 4).unwrap(), b.zeros(1, 1).unwrap());
    assert!(matches!(
        b.loss(
            Loss::SoftmaxCrossEntropy,
            &a,
            Target::Labels(&labels),
            &mut g3,
            &mut l
        ),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        b.loss(
            Loss::SquaredError,
            &a,
            Target::Labels(&labels),
            &mut g3,
            &mut l
        ),
        Err(Error::Shape { .. })
    ));
    let mut small = b.zeros(2, 4).unwrap();
    let idx = b.indices(&[0, 5], 6).unwrap();
    assert!(
        matches!(
            b.gather_rows(&a, &idx, 0, &mut small),
            Err(Error::Shape { .. })
        ),
        "index bound beyond source rows"
    );
}

backend_tests!(bad_inputs_are_typed_errors: bad_inputs on cpu_f32, cpu_f64, gpu);

#[test]
fn writes_of_the_wrong_length_and_oversize_tensors_are_typed_errors_on_the_gpu() {
    let Some(g) = gpu() else { return };
    // Reading back into the wrong length is impossible by construction;
    // writing the wrong length is an error.
    let mut t = g.zeros(2, 2).unwrap();
    assert!(matches!(
        g.write(&mut t, &[1.0; 5]),
        Err(Error::Length { .. })
    ));
    let limit = g
        .limits()
        .max_storage_buffer_binding_size
        .min(g.limits().max_buffer_size);
    let rows = (limit / 4 / 1024 + 1) as usize;
    assert!(matches!(g.zeros(rows, 1024), Err(Error::TooLarge { .. })));
    // Size arithmetic that would wrap is refused before any allocation.
    assert!(matches!(
        g.zeros(1 << 31, 1 << 31),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn timestamp_profiling_times_each_dispatch_without_changing_results() {
    let Some(g) = gpu() else { return };
    let a = g.upload(65, 33, &random(1, 65 * 33)).unwrap();
    let w = g.upload(17, 33, &random(2, 17 * 33)).unwrap();
    let spec = || MatmulSpec {
        transpose_b: true,
        ..Default::default()
    };
    let mut plain = g.zeros(65, 17).unwrap();
    g.matmul(&a, &w, &mut plain, spec()).unwrap();
    let expected = g.download(&plain).unwrap();
    if !g.supports_timestamps() {
        assert!(
            g.start_profiling(4).is_err(),
            "no timestamps: a typed error"
        );
        return;
    }
    g.start_profiling(4).unwrap();
    let mut z = g.zeros(65, 17).unwrap();
    g.matmul(&a, &w, &mut z, spec()).unwrap();
    let mut h = g.zeros(65, 17).unwrap();
    g.activation(Activation::Relu, &z, &mut h).unwrap();
    let times = g.finish_profiling().unwrap();
    let families: Vec<&str> = times.iter().map(|t| t.family()).collect();
    assert_eq!(families, vec!["matmul", "activation"]);
    assert!(
        times.iter().all(|t| t.seconds > 0.0 && t.seconds < 10.0),
        "{times:?}"
    );
    assert_eq!(
        g.download(&z).unwrap(),
        expected,
        "a profiled dispatch computes the same"
    );
    assert!(
        g.finish_profiling().is_err(),
        "finish without start is an error"
    );
}

/// `δ·W ⊙ act'(z)` in one product (`MatmulSpec::gate`) and as the product
/// followed by `activation_backward`, on backend `b`.
fn gated<B: Backend>(
    b: &B,
    (m, n, k): (usize, usize, usize),
    act: Activation,
    seed: u64,
) -> (Vec<f64>, Vec<f64>) {
    let a = b.upload(m, k, &random(seed, m * k)).unwrap();
    let w = b.upload(k, n, &random(seed + 1, k * n)).unwrap();
    let z = b.upload(m, n, &random(seed + 2, m * n)).unwrap();
    let mut fused = b.zeros(m, n).unwrap();
    let spec = MatmulSpec {
        gate: Some((act, &z)),
        ..MatmulSpec::default()
    };
    b.matmul(&a, &w, &mut fused, spec).unwrap();
    let mut product = b.zeros(m, n).unwrap();
    b.matmul(&a, &w, &mut product, MatmulSpec::default())
        .unwrap();
    let mut apart = b.zeros(m, n).unwrap();
    b.activation_backward(act, &z, &product, &mut apart)
        .unwrap();
    (b.download(&fused).unwrap(), b.download(&apart).unwrap())
}

/// The fused activation derivative gives the very values of the two-pass
/// form on each backend (the same f32 operations, in the same order), and
/// the GPU agrees with the CPU within MATMUL_TOL, for every kernel family
/// and a split-k plan.
#[test]
fn a_gated_product_equals_the_product_then_the_activation_backward() {
    let acts = [
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::ScaledTanh,
        Activation::TanhPlusLinear { beta: 0.1 },
        Activation::LeakyRelu { slope: 0.01 },
        Activation::Silu,
        Activation::Identity,
    ];
    let shapes = [
        (1, 1, 1),
        (7, 33, 3),
        (33, 65, 257),
        (257, 7, 64),
        (64, 128, 1000),
    ];
    let cpu = Cpu::<f32>::new();
    for (i, (&act, &shape)) in acts.iter().zip(shapes.iter().cycle()).enumerate() {
        let (fused, apart) = gated(&cpu, shape, act, 40 + i as u64);
        assert_eq!(fused, apart, "cpu {act:?} {shape:?}");
    }
    let Some(g) = gpu() else { return };
    let split = TiledPlan {
        tile: TiledTile::Small,
        split_k: 4,
        vec4: true,
    };
    let kernels = [
        (MatmulKernel::Registers, None),
        (MatmulKernel::RegistersShared, None),
        (MatmulKernel::Workgroup, None),
        (MatmulKernel::Workgroup, Some(split)),
    ];
    for (kernel, plan) in kernels {
        g.set_matmul_kernel(kernel);
        g.set_tiled_plan(plan);
        for (i, &act) in acts.iter().enumerate() {
            for (s, &shape) in shapes.iter().enumerate() {
                let seed = 100 + 10 * i as u64 + s as u64;
                let (fused, apart) = gated(&g, shape, act, seed);
                assert_eq!(fused, apart, "gpu {kernel:?} {plan:?} {act:?} {shape:?}");
                let (cpu_fused, _) = gated(&cpu, shape, act, seed);
                assert_parity(
                    &format!("gated matmul {kernel:?} {act:?} {shape:?}"),
                    &fused,
                    &cpu_fused,
                    MATMUL_TOL,
                );
            }
        }
    }
    g.set_tiled_plan(None);
    let mut out = g.zeros(2, 3).unwrap();
    let (a, w, z) = (
        g.zeros(2, 4).unwrap(),
        g.zeros(4, 3).unwrap(),
        g.zeros(3, 2).unwrap(),
    );
    let wrong = MatmulSpec {
        gate: Some((Activation::Relu, &z)),
        ..MatmulSpec::default()
    };
    assert!(matches!(
        g.matmul(&a, &w, &mut out, wrong),
        Err(Error::Shape { .. })
    ));
}
