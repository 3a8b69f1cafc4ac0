//! The convolution and pooling primitives: the GPU against the CPU
//! backend, and the CPU against a direct loop in f64.

use super::lowered::{self, Columns};
use super::{ChannelBlock, ConvGrads, ConvGroup, Pool, Window2d};
use crate::ops::testing::{assert_parity, gpu, random};
use crate::{Backend, Cpu, MatmulKernel};

/// Windows at awkward sizes: odd images, stride > 1, padding, dilation,
/// 1x1 to 7x7 kernels, non-square kernels, one channel and many.
fn windows() -> Vec<Window2d> {
    vec![
        Window2d::new([1, 7, 7], [3, 3]),
        Window2d::new([3, 9, 7], [3, 2])
            .stride([2, 1])
            .padding([1, 0]),
        Window2d::new([2, 8, 8], [1, 1]).stride([2, 2]),
        Window2d::new([5, 11, 13], [5, 5]).padding([2, 2]),
        Window2d::new([2, 12, 12], [3, 3])
            .dilation([2, 2])
            .padding([2, 1]),
        Window2d::new([1, 7, 9], [7, 7])
            .padding([3, 3])
            .stride([3, 2]),
        Window2d::new([4, 5, 5], [2, 2]).stride([2, 2]),
        // Output lines of 21 and 38 values: the CPU form copies lines of
        // up to two blocks of 16 inline, past their end, and longer ones
        // with memcpy.
        Window2d::new([2, 5, 21], [3, 3]).padding([1, 1]),
        Window2d::new([1, 4, 40], [2, 3]),
        // The GPU's input gradient as a transposed convolution (stride 1
        // and 8 to 32 input channels per group): padded by 1 and 2, and
        // (padding wider than the kernel's reach) by −1.
        Window2d::new([16, 7, 6], [3, 3])
            .dilation([1, 2])
            .padding([1, 2]),
        Window2d::new([8, 6, 5], [1, 2]).padding([1, 2]),
        // Stride 1 whose input gradient (8·9·9 per image) does not fit in
        // its columns (8·4·3·3).
        Window2d::new([8, 9, 9], [2, 2]).dilation([6, 6]),
    ]
}

/// Every primitive on `b`, its results concatenated.
fn primitives<B: Backend>(b: &B, w: &Window2d, rows: usize) -> Vec<f64> {
    let [oh, ow] = w.output_size().unwrap();
    let p = oh * ow;
    let x = b
        .upload(rows, w.image_len(), &random(1, rows * w.image_len()))
        .unwrap();
    let mut v = Vec::new();
    // The whole image, then the last channel alone (a group's block).
    let last = ChannelBlock {
        first: w.channels - 1,
        count: 1,
        ..ChannelBlock::all(w.channels)
    };
    for block in [ChannelBlock::all(w.channels), last] {
        let mut cols = b.zeros(block.count * w.taps(), rows * p).unwrap();
        b.im2col(&x, w, &block, &mut cols).unwrap();
        v.extend(b.download(&cols).unwrap());
        let grad = b
            .upload(cols.rows(), cols.cols(), &random(2, cols.len()))
            .unwrap();
        let mut back = b
            .upload(rows, w.image_len(), &random(3, rows * w.image_len()))
            .unwrap();
        b.col2im(&grad, w, &block, &mut back).unwrap();
        v.extend(b.download(&back).unwrap());
        let mut last = b.zeros(rows * w.height * w.width, block.count).unwrap();
        b.channels_last(&x, &block, &mut last).unwrap();
        v.extend(b.download(&last).unwrap());
        let mut first = b.zeros(rows, w.image_len()).unwrap();
        b.channels_first(&last, &block, &mut first).unwrap();
        v.extend(b.download(&first).unwrap());
        let mut channel_rows = b.zeros(block.count, rows * w.height * w.width).unwrap();
        b.channel_rows(&x, &block, &mut channel_rows).unwrap();
        v.extend(b.download(&channel_rows).unwrap());
        let bias = b.upload(1, block.count, &random(9, block.count)).unwrap();
        for bias in [None, Some(&bias)] {
            let mut back = b
                .upload(rows, w.image_len(), &random(10, rows * w.image_len()))
                .unwrap();
            b.channel_planes(&channel_rows, &block, bias, &mut back)
                .unwrap();
            v.extend(b.download(&back).unwrap());
        }
    }
    // Pooling's padding is at most half its window (as `MaxPool2d` checks):
    // wider, a max pool's window can lie all in the −∞ border.
    let pools = (0..2).all(|axis| w.padding[axis] <= w.kernel[axis] / 2);
    for kind in [Pool::Max, Pool::Average].into_iter().filter(|_| pools) {
        let mut out = b.zeros(rows, w.channels * p).unwrap();
        let mut winners = b.zeros(rows, w.channels * p).unwrap();
        b.pool2d(kind, &x, w, &mut out, Some(&mut winners)).unwrap();
        let g = b.upload(rows, out.cols(), &random(4, out.len())).unwrap();
        let mut grad_in = b.zeros(rows, w.image_len()).unwrap();
        b.pool2d_backward(kind, w, &g, Some(&winners), &mut grad_in)
            .unwrap();
        v.extend(b.download(&out).unwrap());
        v.extend(b.download(&winners).unwrap());
        v.extend(b.download(&grad_in).unwrap());
    }
    v
}

use crate::Shaped;

#[test]
fn gpu_matches_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = Cpu::<f32>::new();
    for w in windows() {
        for rows in [1, 3] {
            // Copies are exact; col2im, pooling and the bias add the same
            // terms in the same order on both; the average's division is
            // one rounding.
            assert_parity(
                &format!("conv primitives {w}, {rows} rows"),
                &primitives(&g, &w, rows),
                &primitives(&cpu, &w, rows),
                1e-6,
            );
        }
    }
}

/// A convolution written as the definition: seven nested loops in f64.
fn direct_conv(x: &[f64], weight: &[f64], w: &Window2d, outs: usize) -> Vec<f64> {
    let [oh, ow] = w.output_size().unwrap();
    let (kh, kw) = (w.kernel[0], w.kernel[1]);
    let mut out = vec![0.0; outs * oh * ow];
    for o in 0..outs {
        for y in 0..oh {
            for xo in 0..ow {
                let mut s = 0.0;
                for c in 0..w.channels {
                    for ty in 0..kh {
                        for tx in 0..kw {
                            let iy = (y * w.stride[0] + ty * w.dilation[0]) as isize
                                - w.padding[0] as isize;
                            let ix = (xo * w.stride[1] + tx * w.dilation[1]) as isize
                                - w.padding[1] as isize;
                            if iy < 0 || ix < 0 || iy >= w.height as isize || ix >= w.width as isize
                            {
                                continue;
                            }
                            s += x[(c * w.height + iy as usize) * w.width + ix as usize]
                                * weight[((o * w.channels + c) * kh + ty) * kw + tx];
                        }
                    }
                }
                out[(o * oh + y) * ow + xo] = s;
            }
        }
    }
    out
}

#[test]
fn im2col_then_matmul_is_the_convolution() {
    let cpu = Cpu::<f64>::new();
    for w in windows() {
        let outs = 3;
        let x: Vec<f64> = random(5, w.image_len()).iter().map(|&v| v as f64).collect();
        let weight: Vec<f64> = random(6, outs * w.channels * w.taps())
            .iter()
            .map(|&v| v as f64)
            .collect();
        let p = w.positions();
        let xt = cpu.upload_f64(1, w.image_len(), &x).unwrap();
        let mut cols = cpu.zeros(w.channels * w.taps(), p).unwrap();
        cpu.im2col(&xt, &w, &ChannelBlock::all(w.channels), &mut cols)
            .unwrap();
        let wt = cpu
            .upload_f64(outs, w.channels * w.taps(), &weight)
            .unwrap();
        let mut z = cpu.zeros(outs, p).unwrap();
        cpu.matmul(&wt, &cols, &mut z, crate::MatmulSpec::default())
            .unwrap();
        let mut out = cpu.zeros(1, outs * p).unwrap();
        cpu.channel_planes(&z, &ChannelBlock::all(outs), None, &mut out)
            .unwrap();
        let got = cpu.download(&out).unwrap();
        let want = direct_conv(&x, &weight, &w, outs);
        let err = crate::ops::testing::parity_error(&got, &want);
        assert!(err < 1e-13, "{w}: {err:e}");
    }
}

#[test]
fn col2im_is_the_adjoint_of_im2col() {
    // <im2col(x), c> = <x, col2im(c)> for every x and c: the input gradient is right.
    let cpu = Cpu::<f64>::new();
    for w in windows() {
        let block = ChannelBlock::all(w.channels);
        let rows = 2;
        let x: Vec<f64> = random(7, rows * w.image_len())
            .iter()
            .map(|&v| v as f64)
            .collect();
        let xt = cpu.upload_f64(rows, w.image_len(), &x).unwrap();
        let mut cols = cpu
            .zeros(w.channels * w.taps(), rows * w.positions())
            .unwrap();
        cpu.im2col(&xt, &w, &block, &mut cols).unwrap();
        let c: Vec<f64> = random(8, cols.len()).iter().map(|&v| v as f64).collect();
        let ct = cpu.upload_f64(cols.rows(), cols.cols(), &c).unwrap();
        let mut back = cpu.zeros(rows, w.image_len()).unwrap();
        cpu.col2im(&ct, &w, &block, &mut back).unwrap();
        let lhs: f64 = cpu
            .download(&cols)
            .unwrap()
            .iter()
            .zip(&c)
            .map(|(a, b)| a * b)
            .sum();
        let rhs: f64 = cpu
            .download(&back)
            .unwrap()
            .iter()
            .zip(&x)
            .map(|(a, b)| a * b)
            .sum();
        assert!(
            (lhs - rhs).abs() < 1e-12 * lhs.abs().max(1.0),
            "{w}: {lhs} vs {rhs}"
        );
    }
}

#[test]
fn bad_windows_and_shapes_are_typed_errors() {
    let cpu = Cpu::<f32>::new();
    let x = cpu.zeros(2, 9).unwrap();
    let mut cols = cpu.zeros(4, 2 * 4).unwrap();
    let too_big = Window2d::new([1, 3, 3], [5, 5]);
    let err = cpu
        .im2col(&x, &too_big, &ChannelBlock::all(1), &mut cols)
        .unwrap_err();
    assert!(err.to_string().contains("spans 5"), "{err}");
    let zero_stride = Window2d::new([1, 3, 3], [2, 2]).stride([0, 1]);
    assert!(cpu
        .im2col(&x, &zero_stride, &ChannelBlock::all(1), &mut cols)
        .is_err());
    let ok = Window2d::new([1, 3, 3], [2, 2]);
    let mut wrong = cpu.zeros(7, 4).unwrap();
    let err = cpu
        .im2col(&x, &ok, &ChannelBlock::all(1), &mut wrong)
        .unwrap_err();
    assert!(err.to_string().contains("expected 4x8"), "{err}");
    // The channel rows of 2 images of 1 channel of 9 positions: 1x18.
    let mut rows = cpu.zeros(18, 1).unwrap();
    let err = cpu
        .channel_rows(&x, &ChannelBlock::all(1), &mut rows)
        .unwrap_err();
    assert!(err.to_string().contains("expected 1x18"), "{err}");
    let (rows, mut out) = (cpu.zeros(1, 18).unwrap(), cpu.zeros(2, 9).unwrap());
    let two = cpu.zeros(1, 2).unwrap();
    let err = cpu
        .channel_planes(&rows, &ChannelBlock::all(1), Some(&two), &mut out)
        .unwrap_err();
    assert!(
        err.to_string().contains("the bias is 1x2, expected 1x1"),
        "{err}"
    );
    let mut pooled = cpu.zeros(2, 4).unwrap();
    let g = cpu.zeros(2, 4).unwrap();
    let mut gi = cpu.zeros(2, 9).unwrap();
    cpu.pool2d(Pool::Max, &x, &ok, &mut pooled, None).unwrap();
    assert!(cpu
        .pool2d_backward(Pool::Max, &ok, &g, None, &mut gi)
        .is_err());
}

/// One group of a convolution as [`conv2d`](Backend::conv2d) runs it on
/// the device, or in its lowered form (the GPU's).
#[derive(Clone, Copy)]
enum Form {
    Device,
    Lowered,
}

/// The convolution groups to test at window `w`: all channels into 3
/// outputs, and the second of two groups (its block of the input into 2
/// of 4 outputs) where the channels divide.
fn groups_at(w: &Window2d) -> Vec<ConvGroup> {
    let mut v = vec![ConvGroup {
        window: *w,
        input: ChannelBlock::all(w.channels),
        output: ChannelBlock::all(3),
    }];
    if w.channels.is_multiple_of(2) {
        let half = w.channels / 2;
        v.push(ConvGroup {
            window: *w,
            input: ChannelBlock {
                channels: w.channels,
                first: half,
                count: half,
            },
            output: ChannelBlock {
                channels: 4,
                first: 2,
                count: 2,
            },
        });
    }
    v
}

/// Forward and backward of group `g` over `rows` random images on `k`,
/// with or without a bias and an input gradient: the output, the weight,
/// bias and input gradients, concatenated. Output and input gradient start
/// random, so channels outside the group must come back untouched.
fn convolution<K: crate::backend::Kernels>(
    k: &K,
    form: Form,
    g: &ConvGroup,
    rows: usize,
    with_bias: bool,
    input_grad: bool,
) -> Vec<f64> {
    let (p, (o, taps)) = (g.window.positions(), g.weight_shape());
    let up =
        |seed: u64, r: usize, c: usize| Backend::upload(k, r, c, &random(seed, r * c)).unwrap();
    let x = up(11, rows, g.window.image_len());
    let w = up(12, o, taps);
    let bias = with_bias.then(|| up(13, 1, o));
    let mut out = up(14, rows, g.output.channels * p);
    let shapes = match form {
        Form::Device => Backend::conv2d_scratch_shapes(k, rows, g),
        Form::Lowered => lowered::scratch_shapes(rows, g),
    };
    let mut scratch: Vec<K::Tensor> = shapes
        .iter()
        .map(|&(r, c)| Backend::zeros(k, r, c).unwrap())
        .collect();
    let grad_out = up(15, rows, g.output.channels * p);
    let mut gw = Backend::zeros(k, o, taps).unwrap();
    let mut gb = Backend::zeros(k, 1, o).unwrap();
    let mut grad_in = up(16, rows, g.window.image_len());
    let grads = ConvGrads {
        weight: &mut gw,
        bias: with_bias.then_some(&mut gb),
        input: input_grad.then_some(&mut grad_in),
    };
    match form {
        Form::Device => {
            Backend::conv2d(k, &x, &w, bias.as_ref(), g, &mut scratch, &mut out).unwrap();
            Backend::conv2d_backward(k, &x, &w, &grad_out, g, &mut scratch, true, grads).unwrap();
        }
        Form::Lowered => {
            lowered::conv2d(k, &x, &w, bias.as_ref(), g, &mut scratch, &mut out).unwrap();
            lowered::conv2d_backward(k, &x, &w, &grad_out, g, &mut scratch, Columns::Kept, grads)
                .unwrap();
        }
    }
    [&out, &gw, &gb, &grad_in]
        .iter()
        .flat_map(|t| Backend::download(k, t).unwrap())
        .collect()
}

#[test]
fn cpu_convolution_matches_the_lowered_form() {
    // The CPU's per-sample form against im2col + matmul + channels_first
    // on the same backend in f64: only the order of the sums differs.
    let cpu = Cpu::<f64>::new();
    for w in windows() {
        for g in groups_at(&w) {
            for rows in [1, 3, 7] {
                for (with_bias, input_grad) in [(true, true), (false, true), (true, false)] {
                    let got = convolution(&cpu, Form::Device, &g, rows, with_bias, input_grad);
                    let want = convolution(&cpu, Form::Lowered, &g, rows, with_bias, input_grad);
                    assert_parity(
                        &format!(
                            "{g:?}, {rows} rows, bias {with_bias}, input gradient {input_grad}"
                        ),
                        &got,
                        &want,
                        1e-12,
                    );
                }
            }
        }
    }
}

/// The GPU's convolution against the CPU's: implicit (the columns gathered
/// as the products read them) on the register kernels, with and without
/// shared reads, where these groups' 3 and 2 output channels fit one row of
/// tiles, and lowered onto im2col and the tiled matmul on the workgroup
/// kernel; the input gradient implicit (the transposed convolution) on the
/// register kernels for the stride-1 groups of 8 and 16 input channels
/// whose rows fit the columns' scratch, and lowered elsewhere.
#[test]
fn gpu_convolution_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let cpu = Cpu::<f32>::new();
    // Per kernel, the input gradients run lowered and implicit.
    let mut input_grads = [[0, 0]; 3];
    for (input_grads, (kernel, implicit)) in input_grads.iter_mut().zip([
        (MatmulKernel::RegistersShared, true),
        (MatmulKernel::Registers, true),
        (MatmulKernel::Workgroup, false),
    ]) {
        gpu.set_matmul_kernel(kernel);
        for w in windows() {
            for g in groups_at(&w) {
                assert_eq!(super::gpu::runs_implicit(&gpu, &g), implicit);
                for rows in [1, 7] {
                    let scratch = gpu.conv2d_scratch(rows, &g).unwrap();
                    let input_implicit =
                        super::gpu::runs_implicit_input_grad(&gpu, &g, rows, &scratch[0]);
                    input_grads[input_implicit as usize] += 1;
                    // f32 sums of up to 5·25 = 125 products (weight gradient:
                    // 7·143 = 1,001): each 1e-7-relative; 1e-5 leaves room.
                    assert_parity(
                        &format!("conv2d {kernel:?} {g:?}, {rows} rows"),
                        &convolution(&gpu, Form::Device, &g, rows, true, true),
                        &convolution(&cpu, Form::Device, &g, rows, true, true),
                        1e-5,
                    );
                }
            }
        }
    }
    let [shared, registers, [_, workgroup_implicit]] = input_grads;
    assert!(
        shared.iter().chain(&registers).all(|&runs| runs > 0) && workgroup_implicit == 0,
        "input gradients (lowered, implicit) per kernel: {input_grads:?}"
    );
}

/// LeNet's first layer at batch 64 (6 output channels: implicit), whose
/// weight gradient sums 50,176 products in 16 k slices, and a 40-channel
/// layer (two rows of tiles: lowered). The weight gradient's longer sums
/// round more: 2e-4.
#[test]
fn gpu_convolution_at_lenet_sizes_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    gpu.set_matmul_kernel(MatmulKernel::Registers);
    let cpu = Cpu::<f32>::new();
    let lenet = Window2d::new([1, 28, 28], [5, 5]).padding([2, 2]);
    let wide = Window2d::new([3, 10, 10], [3, 3]).padding([1, 1]);
    for (w, outs, implicit) in [(lenet, 6, true), (wide, 40, false)] {
        let g = ConvGroup {
            window: w,
            input: ChannelBlock::all(w.channels),
            output: ChannelBlock::all(outs),
        };
        assert_eq!(super::gpu::runs_implicit(&gpu, &g), implicit);
        assert_parity(
            &format!("conv2d {g:?}, 64 rows"),
            &convolution(&gpu, Form::Device, &g, 64, true, false),
            &convolution(&cpu, Form::Device, &g, 64, true, false),
            2e-4,
        );
    }
}

#[test]
fn convolution_shapes_are_checked() {
    let cpu = Cpu::<f32>::new();
    let g = ConvGroup {
        window: Window2d::new([2, 5, 5], [3, 3]),
        input: ChannelBlock::all(2),
        output: ChannelBlock::all(3),
    };
    let x = cpu.zeros(2, 50).unwrap();
    let w = cpu.zeros(3, 18).unwrap();
    let mut out = cpu.zeros(2, 27).unwrap();
    let mut scratch = cpu.conv2d_scratch(2, &g).unwrap();
    let wrong_weight = cpu.zeros(3, 9).unwrap();
    let err = cpu
        .conv2d(&x, &wrong_weight, None, &g, &mut scratch, &mut out)
        .unwrap_err();
    assert!(
        err.to_string().contains("the weight is 3x9, expected 3x18"),
        "{err}"
    );
    let mut one = vec![cpu.zeros(18, 18).unwrap()];
    let err = cpu
        .conv2d(&x, &w, None, &g, &mut one, &mut out)
        .unwrap_err();
    assert!(err.to_string().contains("2 scratch tensors"), "{err}");
    let mut wrong_out = cpu.zeros(2, 26).unwrap();
    let err = cpu
        .conv2d(&x, &w, None, &g, &mut scratch, &mut wrong_out)
        .unwrap_err();
    assert!(err.to_string().contains("expected 2x27"), "{err}");
    let mut gw = cpu.zeros(3, 18).unwrap();
    let mut wrong_input_grad = cpu.zeros(1, 50).unwrap();
    let grads = ConvGrads {
        weight: &mut gw,
        bias: None,
        input: Some(&mut wrong_input_grad),
    };
    let err = cpu
        .conv2d_backward(&x, &w, &out, &g, &mut scratch, true, grads)
        .unwrap_err();
    assert!(err.to_string().contains("input vs its gradient"), "{err}");
}
