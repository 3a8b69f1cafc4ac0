//! Matmul parity: every form, shape, kernel family, tile, k split and
//! epilogue (bias, activation, fused activation derivative) on the GPU
//! against the CPU backend on the same random inputs.

use crate::ops::testing::{assert_parity, gpu, random, AWKWARD};
use crate::{Activation, Backend, Cpu, Error, Gpu, MatmulKernel, MatmulSpec, TiledPlan, TiledTile};

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

/// The register kernels split a long k over workgroups when the output has
/// few (a convolution's weight gradient), each slice's partial sums added in
/// a second pass: scalar and vec4 kernels, with and without shared reads,
/// every transpose form. The tolerance grows with k as MATMUL_TOL's bound does.
#[test]
fn matmul_register_kernels_split_long_k() {
    let Some(g) = gpu() else { return };
    let shapes = [
        (6, 25, 50176), // LeNet conv1's weight gradient at batch 64
        (7, 33, 4099),
        (7, 32, 4099), // B alone read as vec4
        (1, 1, 20000),
        (36, 68, 8192),
    ];
    for kernel in [MatmulKernel::Registers, MatmulKernel::RegistersShared] {
        g.set_matmul_kernel(kernel);
        for (i, &(m, n, k)) in shapes.iter().enumerate() {
            assert!(
                super::gpu::register_split_k(m, n, k) > 1,
                "{m}x{k}·{k}x{n} splits"
            );
            let tol = MATMUL_TOL * (k as f64 / 2048.0).max(1.0);
            for (ta, tb) in FORMS {
                let (bias, act) = (i % 2 == 1, Activation::Tanh);
                let gv = matmul(&g, m, n, k, ta, tb, bias, act, 90 + i as u64);
                let cv = matmul(
                    &Cpu::<f32>::new(),
                    m,
                    n,
                    k,
                    ta,
                    tb,
                    bias,
                    act,
                    90 + i as u64,
                );
                let label = format!("{kernel:?} ta={ta} tb={tb} {m}x{k}·{k}x{n}");
                assert_parity(&label, &gv, &cv, tol);
            }
        }
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

/// The kernel that reads only B as vec4 runs when B is not transposed, n % 4
/// == 0 and k is not a multiple of 4 (or m is not, for Aᵀ): a convolution's
/// `W·cols` and `Wᵀ·δ` with 25 or 150 taps. Shapes that do not fill its tile.
#[test]
fn matmul_vec4_b_kernel_edges() {
    let Some(g) = gpu() else { return };
    for kernel in [MatmulKernel::Registers, MatmulKernel::RegistersShared] {
        g.set_matmul_kernel(kernel);
        for (m, n, k) in [
            (1, 4, 1),
            (6, 784, 25),
            (25, 1568, 6),
            (16, 100, 150),
            (33, 68, 7),
        ] {
            for ta in [false, true] {
                let relu = (ta, Activation::Relu);
                assert_matmul(&g, "vec4_b matmul", (m, n, k), (ta, false), relu, 5);
            }
        }
    }
}

#[test]
fn matmul_fused_bias_and_every_activation() {
    let Some(g) = gpu() else { return };
    for act in Activation::all() {
        // The last two are cut into a piece per thread on the CPU, along n
        // and along m, each piece's rows finished in cache.
        for &(m, n, k) in &[
            (1, 1, 1),
            (33, 65, 7),
            (257, 10, 33),
            (257, 300, 20),
            (300, 129, 40),
        ] {
            assert_matmul(&g, "matmul", (m, n, k), (false, true), (true, act), 99);
        }
    }
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

/// `op(A)·op(B)` by `engine` with the f32 operands `a` and `b` taken as
/// `T`, as f64.
fn product_in<T: num_traits::Float + Send + Sync + 'static>(
    engine: super::cpu_engine::CpuGemm,
    (m, n, k): (usize, usize, usize),
    (a, ta): (&[f32], bool),
    (b, tb): (&[f32], bool),
) -> Vec<f64> {
    let to_t = |v: &[f32]| -> Vec<T> { v.iter().map(|&x| T::from(x).unwrap()).collect() };
    let mut c = vec![T::zero(); m * n];
    let (a, b) = (to_t(a), to_t(b));
    let done = super::gemm::gemm_with(engine, (m, n, k), (&a, ta), (&b, tb), &mut c, None);
    assert!(done, "gemm_with declined f32/f64");
    c.iter().map(|v| v.to_f64().unwrap()).collect()
}

/// `op(A)·op(B)` by the reference loop in f64, with the f32 operands `a`
/// and `b` stored transposed as `ta`, `tb` say.
fn reference_product(
    (m, n, k): (usize, usize, usize),
    (a, ta): (&[f32], bool),
    (b, tb): (&[f32], bool),
) -> Vec<f64> {
    let cpu = Cpu::<f64>::new();
    let (ar, ac) = if ta { (k, m) } else { (m, k) };
    let (br, bc) = if tb { (n, k) } else { (k, n) };
    let spec = MatmulSpec {
        transpose_a: ta,
        transpose_b: tb,
        ..Default::default()
    };
    let mut want = cpu.zeros(m, n).unwrap();
    let (at, bt) = (
        cpu.upload(ar, ac, a).unwrap(),
        cpu.upload(br, bc, b).unwrap(),
    );
    crate::backend::reference_matmul(&at, &bt, &mut want, spec).unwrap();
    cpu.download(&want).unwrap()
}

#[test]
fn both_cpu_libraries_match_the_reference_loop() {
    // Whichever library this machine chose, the other is checked too: every
    // transpose form, shapes that flip matrixmultiply's operands (2m ≤ n),
    // deep ones that go to `gemm` either way, and (over 2^20 multiply-adds)
    // ones `gemm` cuts into a piece per thread, along m (257 rows: pieces of
    // 144 and 113 on two threads) and along n, in f32 and f64.
    use super::cpu_engine::CpuGemm;
    for (m, n, k) in [
        (1, 1, 1),
        (7, 33, 257),
        (33, 7, 65),
        (3, 5, 400),
        (64, 130, 31),
        (257, 65, 129),
        (33, 400, 100),
        // A side of at most 16 (the output layer's products), cut along
        // m, along n, and along n with m narrow.
        (257, 10, 513),
        (300, 520, 10),
        (10, 700, 300),
        (16, 17, 64),
    ] {
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let (a, b) = (random(1, m * k), random(2, k * n));
            let want = reference_product((m, n, k), (&a, ta), (&b, tb));
            for &engine in CpuGemm::ALL {
                let what = format!("{engine:?} {m}x{n}x{k} ta {ta} tb {tb}");
                let got32 = product_in::<f32>(engine, (m, n, k), (&a, ta), (&b, tb));
                // f32 sums of k ≤ 400 products of values in [-1, 1].
                assert_parity(&format!("{what} f32"), &got32, &want, 1e-4);
                let got64 = product_in::<f64>(engine, (m, n, k), (&a, ta), (&b, tb));
                assert_parity(&format!("{what} f64"), &got64, &want, 1e-12);
            }
        }
    }
}

#[test]
fn transposed_weights_copied_into_rows_match_the_reference_loop() {
    // `X·Wᵀ` where `transpose::pays` (W's rows 256 to 1536 floats apart):
    // a product whole on one thread, ones cut into pieces along n with an
    // edge of the 16 × 16 blocks (200 columns: 112 + 88 on two threads),
    // and ones deeper than a slab (two and three slabs, the last short).
    use super::cpu_engine::{has_avx512, CpuGemm};
    use super::transpose;
    for (m, n, k) in [
        (16, 48, 256),
        (40, 200, 512),
        (96, 200, 512),
        (20, 40, 1024),
        (64, 200, 1280),
    ] {
        assert!(!has_avx512() || transpose::pays(m, (k, n.min(112)), k as isize));
        let (a, b) = (random(1, m * k), random(2, k * n));
        let want = reference_product((m, n, k), (&a, false), (&b, true));
        let got = product_in::<f32>(CpuGemm::Gemm, (m, n, k), (&a, false), (&b, true));
        // f32 sums of k ≤ 1280 products of values in [-1, 1] (measured:
        // 4e-6 at k = 256, 2e-5 at 1280).
        assert_parity(&format!("{m}x{n}x{k}"), &got, &want, 1e-4);
    }
}

#[test]
fn narrow_products_do_not_depend_on_the_cut() {
    // The output layer's three products, cut into a piece per thread by
    // `gemm_with`, give the same bits as the narrow kernel over the whole.
    use super::cpu_engine::CpuGemm;
    use super::narrow;
    for ((m, n, k), (ta, tb)) in [
        ((256, 10, 512), (false, true)),
        ((256, 512, 10), (false, false)),
        ((10, 512, 256), (true, false)),
    ] {
        let (rsb, csb) = if tb { (1, k as isize) } else { (n as isize, 1) };
        if !narrow::runs((m, n, k), (rsb, csb)) {
            assert!(!super::cpu_engine::has_avx512(), "{m}x{n}x{k} not narrow");
            continue;
        }
        let (a, b) = (random(1, m * k), random(2, k * n));
        let cut = product_in::<f32>(CpuGemm::Gemm, (m, n, k), (&a, ta), (&b, tb));
        let sa = if ta { (1, m as isize) } else { (k as isize, 1) };
        let mut whole = vec![0.0f32; m * n];
        // SAFETY: the operands hold op(A), op(B) and C at these strides.
        unsafe {
            narrow::product(
                (m, n, k),
                (a.as_ptr(), sa),
                (b.as_ptr(), (rsb, csb)),
                (whole.as_mut_ptr(), (n as isize, 1)),
            )
        };
        let whole: Vec<f64> = whole.iter().map(|&v| f64::from(v)).collect();
        assert_eq!(cut, whole, "{m}x{n}x{k}");
    }
}

#[test]
fn products_run_jointly_give_the_bits_of_each_run_alone() {
    // `jointly` cuts products differently from `gemm_with` (a product may
    // run whole on one thread, or in more pieces), and runs the epilogues
    // and the extra work in the same job: the results must not change.
    use super::cpu_engine::CpuGemm;
    use super::gemm::{gemm_with, jointly_with, Epilogue, Product};
    use std::sync::atomic::{AtomicUsize, Ordering};
    // Adds a value that names the element, so a row or column offset gone
    // wrong shows.
    let mark = |i: usize, j0: usize, row: &mut [f32]| {
        for (j, v) in row.iter_mut().enumerate() {
            *v += (i * 1000 + j0 + j) as f32;
        }
    };
    let mark: Epilogue<'_, f32> = &mark;
    // (rows, outs, ins) of a dense layer: its weight gradient gᵀ·x (outs ×
    // ins, depth rows) and input gradient g·W (rows × ins, depth outs).
    // Both over 2^20 multiply-adds (cut), one over and one under, both
    // under, the output layer's (narrow kernel), and sides of one.
    for (rows, outs, ins) in [
        (96, 160, 144),
        (64, 200, 130),
        (33, 7, 257),
        (256, 10, 512),
        (1, 1, 1),
        (7, 33, 5),
    ] {
        let g = random(11, rows * outs);
        let x = random(12, rows * ins);
        let w = random(13, outs * ins);
        let forms = [
            ((outs, ins, rows), (&g, true), (&x, false), None),
            ((rows, ins, outs), (&g, false), (&w, false), Some(mark)),
        ];
        for &engine in CpuGemm::ALL {
            // Each alone (cut into a piece per thread) and both together.
            for chosen in [&forms[..1], &forms[1..], &forms[..]] {
                let alone: Vec<Vec<f32>> = chosen
                    .iter()
                    .map(|&((m, n, k), a, b, epilogue)| {
                        let mut c = vec![0.0f32; m * n];
                        assert!(gemm_with(
                            engine,
                            (m, n, k),
                            (a.0, a.1),
                            (b.0, b.1),
                            &mut c,
                            None
                        ));
                        if let Some(e) = epilogue {
                            c.chunks_mut(n)
                                .enumerate()
                                .for_each(|(i, row)| e(i, 0, row));
                        }
                        c
                    })
                    .collect();
                let mut outs_joint: Vec<Vec<f32>> =
                    chosen.iter().map(|f| vec![-7.0; f.0 .0 * f.0 .1]).collect();
                let products = chosen
                    .iter()
                    .zip(outs_joint.iter_mut())
                    .map(|(&(mnk, a, b, epilogue), c)| Product {
                        mnk,
                        a: (a.0, a.1),
                        b: (b.0, b.1),
                        c,
                        epilogue,
                    })
                    .collect();
                let extra_runs: Vec<AtomicUsize> = (0..5).map(|_| AtomicUsize::new(0)).collect();
                let ran = jointly_with(
                    engine,
                    products,
                    (5, &|i| {
                        extra_runs[i].fetch_add(1, Ordering::Relaxed);
                    }),
                );
                let what = format!(
                    "{engine:?} {rows}x{outs}x{ins}, {} product(s)",
                    chosen.len()
                );
                if engine == CpuGemm::MatrixMultiply {
                    // Its own threads: the caller runs the products alone.
                    assert!(!ran, "{what}");
                    assert!(
                        outs_joint.iter().flatten().all(|&v| v == -7.0),
                        "{what} touched C"
                    );
                    continue;
                }
                assert!(ran, "{what}");
                assert_eq!(outs_joint, alone, "{what}");
                assert!(
                    extra_runs.iter().all(|r| r.load(Ordering::Relaxed) == 1),
                    "{what}"
                );
            }
        }
    }
}

#[test]
fn the_packed_kernel_matches_the_reference_loop_at_awkward_sizes() {
    // `packed.rs` called directly, whatever `packed::runs` says of the
    // size: edge tiles of 1 to 5 rows and 1 to 15 columns, depths of one
    // block, of two (513) and of three uneven ones (1030 → 344 + 344 + 342),
    // in every transpose form, from a C holding garbage (the first block
    // must overwrite it).
    use super::cpu_engine::has_avx2_fma;
    use super::gemm::strides;
    use super::packed;
    if !has_avx2_fma() {
        // The kernel is AVX2 code; `packed::runs` never picks it here.
        assert!(!packed::runs((64, 64, 64)));
        return;
    }
    for (m, n, k) in [
        (1, 1, 1),
        (7, 33, 257),
        (33, 7, 65),
        (6, 16, 513),
        (257, 65, 3),
        (97, 50, 1030),
        (1, 1000, 7),
    ] {
        for (ta, tb) in FORMS {
            let (a, b) = (random(1, m * k), random(2, k * n));
            let want = reference_product((m, n, k), (&a, ta), (&b, tb));
            let (sa, sb) = (strides(m, k, ta), strides(k, n, tb));
            let mut c = vec![f32::NAN; m * n];
            // SAFETY: AVX2 and FMA exist; the operands hold op(A) and
            // op(B) at these strides and C's m × n rows.
            unsafe {
                packed::product(
                    (m, n, k),
                    (a.as_ptr(), sa),
                    (b.as_ptr(), sb),
                    (c.as_mut_ptr(), (n as isize, 1)),
                )
            };
            let got: Vec<f64> = c.iter().map(|&v| f64::from(v)).collect();
            // f32 sums of k ≤ 1030 products of values in [-1, 1]: the
            // bound of MATMUL_TOL.
            assert_parity(
                &format!("packed {m}x{n}x{k} ta {ta} tb {tb}"),
                &got,
                &want,
                MATMUL_TOL,
            );
        }
    }
}
