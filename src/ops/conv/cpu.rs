//! The CPU kernels of the convolution and pooling primitives: each output
//! element computed from its index, as the GPU's invocations do, and in the
//! same order of additions.

use super::{ChannelBlock, Pool, Window2d};
use crate::backend::cpu::cast;
use crate::backend::par::split;
use crate::backend::CpuTensor;
use num_traits::Float;

/// The input coordinate a tap reads, or `None` in the padding.
#[inline]
fn source(
    out: usize,
    tap: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    size: usize,
) -> Option<usize> {
    (out * stride + tap * dil)
        .checked_sub(pad)
        .filter(|&i| i < size)
}

/// The output coordinate whose window reads input `i` through `tap`, if any.
#[inline]
fn window_of(
    i: usize,
    tap: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    outs: usize,
) -> Option<usize> {
    (i + pad)
        .checked_sub(tap * dil)
        .filter(|t| t % stride == 0)
        .map(|t| t / stride)
        .filter(|&o| o < outs)
}

pub(crate) fn im2col<T: Float + Send + Sync>(
    x: &CpuTensor<T>,
    w: &Window2d,
    block: &ChannelBlock,
    cols: &mut CpuTensor<T>,
) {
    let [oh, ow] = w.output_size().expect("checked window");
    let (kh, kw) = (w.kernel[0], w.kernel[1]);
    let width = block.count * kh * kw;
    let (xs, w, block) = (x.data.as_slice(), *w, *block);
    let n = cols.data.len();
    split(
        n,
        width,
        (cols.data.as_mut_slice(), 0..n),
        &move |(out, at): (&mut [T], std::ops::Range<usize>)| {
            for (row_out, row) in out
                .chunks_mut(width)
                .zip(at.step_by(width).map(|e| e / width))
            {
                let (sample, pos) = (row / (oh * ow), row % (oh * ow));
                let (y, xo) = (pos / ow, pos % ow);
                let image = &xs[sample * w.image_len()..(sample + 1) * w.image_len()];
                for (j, v) in row_out.iter_mut().enumerate() {
                    let (c, tap) = (block.first + j / (kh * kw), j % (kh * kw));
                    let iy = source(
                        y,
                        tap / kw,
                        w.stride[0],
                        w.padding[0],
                        w.dilation[0],
                        w.height,
                    );
                    let ix = source(
                        xo,
                        tap % kw,
                        w.stride[1],
                        w.padding[1],
                        w.dilation[1],
                        w.width,
                    );
                    *v = match (iy, ix) {
                        (Some(iy), Some(ix)) => image[(c * w.height + iy) * w.width + ix],
                        _ => T::zero(),
                    };
                }
            }
        },
    );
}

pub(crate) fn col2im<T: Float + Send + Sync>(
    cols: &CpuTensor<T>,
    w: &Window2d,
    block: &ChannelBlock,
    x: &mut CpuTensor<T>,
) {
    let [oh, ow] = w.output_size().expect("checked window");
    let (kh, kw) = (w.kernel[0], w.kernel[1]);
    let width = block.count * kh * kw;
    let plane = w.height * w.width;
    let (cs, w, block) = (cols.data.as_slice(), *w, *block);
    for (sample, image) in x.data.chunks_mut(w.image_len()).enumerate() {
        let channels = &mut image[block.first * plane..(block.first + block.count) * plane];
        for (e, v) in channels.iter_mut().enumerate() {
            let (c, iy, ix) = (e / plane, e % plane / w.width, e % w.width);
            let mut s = T::zero();
            for ty in 0..kh {
                let Some(y) = window_of(iy, ty, w.stride[0], w.padding[0], w.dilation[0], oh)
                else {
                    continue;
                };
                for tx in 0..kw {
                    let Some(xo) = window_of(ix, tx, w.stride[1], w.padding[1], w.dilation[1], ow)
                    else {
                        continue;
                    };
                    let row = (sample * oh + y) * ow + xo;
                    s = s + cs[row * width + (c * kh + ty) * kw + tx];
                }
            }
            *v = s;
        }
    }
}

pub(crate) fn channels_last<T: Float>(
    x: &CpuTensor<T>,
    block: &ChannelBlock,
    out: &mut CpuTensor<T>,
) {
    let positions = x.cols / block.channels;
    for (r, row) in out.data.chunks_mut(block.count).enumerate() {
        let (sample, p) = (r / positions, r % positions);
        for (c, v) in row.iter_mut().enumerate() {
            *v = x.data[sample * x.cols + (block.first + c) * positions + p];
        }
    }
}

pub(crate) fn channels_first<T: Float>(
    z: &CpuTensor<T>,
    block: &ChannelBlock,
    out: &mut CpuTensor<T>,
) {
    let positions = out.cols / block.channels;
    for (r, row) in z.data.chunks(block.count).enumerate() {
        let (sample, p) = (r / positions, r % positions);
        for (c, &v) in row.iter().enumerate() {
            out.data[sample * out.cols + (block.first + c) * positions + p] = v;
        }
    }
}

pub(crate) fn pool2d<T: Float>(
    kind: Pool,
    x: &CpuTensor<T>,
    w: &Window2d,
    out: &mut CpuTensor<T>,
    mut argmax: Option<&mut CpuTensor<T>>,
) {
    let [oh, ow] = w.output_size().expect("checked window");
    let (kh, kw) = (w.kernel[0], w.kernel[1]);
    let divisor = cast::<T>((kh * kw) as f64);
    let (plane, out_plane) = (w.height * w.width, oh * ow);
    for (e, v) in out.data.iter_mut().enumerate() {
        let (image, y, xo) = (e / out_plane, e % out_plane / ow, e % ow);
        let base = image * plane; // image = sample · C + channel
        let mut best = T::neg_infinity();
        let mut at = -1.0;
        let mut sum = T::zero();
        for ty in 0..kh {
            let Some(iy) = source(y, ty, w.stride[0], w.padding[0], w.dilation[0], w.height) else {
                continue;
            };
            for tx in 0..kw {
                let Some(ix) = source(xo, tx, w.stride[1], w.padding[1], w.dilation[1], w.width)
                else {
                    continue;
                };
                let value = x.data[base + iy * w.width + ix];
                sum = sum + value;
                // PyTorch's rule: a larger value or a NaN takes the place.
                if value > best || value.is_nan() {
                    best = value;
                    at = (iy * w.width + ix) as f64;
                }
            }
        }
        *v = match kind {
            Pool::Max => best,
            Pool::Average => sum / divisor,
        };
        if let Some(a) = argmax.as_deref_mut() {
            a.data[e] = cast(at);
        }
    }
}

pub(crate) fn pool2d_backward<T: Float>(
    kind: Pool,
    w: &Window2d,
    grad_out: &CpuTensor<T>,
    argmax: Option<&CpuTensor<T>>,
    grad_in: &mut CpuTensor<T>,
) {
    let [oh, ow] = w.output_size().expect("checked window");
    let (kh, kw) = (w.kernel[0], w.kernel[1]);
    let divisor = cast::<T>((kh * kw) as f64);
    let (plane, out_plane) = (w.height * w.width, oh * ow);
    for (e, v) in grad_in.data.iter_mut().enumerate() {
        let (image, iy, ix) = (e / plane, e % plane / w.width, e % w.width);
        let mut s = T::zero();
        for ty in 0..kh {
            let Some(y) = window_of(iy, ty, w.stride[0], w.padding[0], w.dilation[0], oh) else {
                continue;
            };
            for tx in 0..kw {
                let Some(xo) = window_of(ix, tx, w.stride[1], w.padding[1], w.dilation[1], ow)
                else {
                    continue;
                };
                let o = image * out_plane + y * ow + xo;
                match kind {
                    Pool::Max => {
                        let winner = argmax.expect("checked: max pooling saves its winners");
                        if winner.data[o] == cast((iy * w.width + ix) as f64) {
                            s = s + grad_out.data[o];
                        }
                    }
                    Pool::Average => s = s + grad_out.data[o] / divisor,
                }
            }
        }
        *v = s;
    }
}
