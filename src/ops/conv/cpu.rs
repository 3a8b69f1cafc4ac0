//! The CPU kernels of the convolution and pooling primitives: each output
//! element computed from its index, as the GPU's invocations do, and in the
//! same order of additions.

use super::{ChannelBlock, Pool, Window2d};
use crate::backend::cpu::cast;
use crate::backend::CpuTensor;
use num_traits::Float;
use rayon::prelude::*;

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

/// Along one axis of window `w`: for each output coordinate and tap, the
/// input coordinate it reads (`None` in the padding), `outs × taps` entries.
fn sources(w: &Window2d, axis: usize, outs: usize) -> Vec<Option<usize>> {
    let size = [w.height, w.width][axis];
    (0..outs)
        .flat_map(|o| {
            (0..w.kernel[axis]).map(move |t| {
                source(
                    o,
                    t,
                    w.stride[axis],
                    w.padding[axis],
                    w.dilation[axis],
                    size,
                )
            })
        })
        .collect()
}

/// Along one axis: for each input coordinate and tap, the output
/// coordinate whose window reads it through that tap (`None` if none),
/// `size × taps` entries; col2im adds them in tap order.
fn readers(w: &Window2d, axis: usize, outs: usize) -> Vec<Option<usize>> {
    let size = [w.height, w.width][axis];
    (0..size)
        .flat_map(|i| {
            (0..w.kernel[axis]).map(move |t| {
                window_of(
                    i,
                    t,
                    w.stride[axis],
                    w.padding[axis],
                    w.dilation[axis],
                    outs,
                )
            })
        })
        .collect()
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
    let (rows_of, cols_of) = (sources(w, 0, oh), sources(w, 1, ow));
    let (xs, w, block) = (x.data.as_slice(), *w, *block);
    // One sample's rows per task: its positions, each a row of taps.
    cols.data
        .par_chunks_mut(oh * ow * width)
        .enumerate()
        .for_each(|(sample, rows)| {
            let image = &xs[sample * w.image_len()..(sample + 1) * w.image_len()];
            for (pos, row) in rows.chunks_mut(width).enumerate() {
                let (y, xo) = (pos / ow, pos % ow);
                let xs_of = &cols_of[xo * kw..(xo + 1) * kw];
                for (c, taps) in (block.first..).zip(row.chunks_mut(kh * kw)) {
                    let plane = &image[c * w.height * w.width..(c + 1) * w.height * w.width];
                    for (iy, line) in rows_of[y * kh..(y + 1) * kh]
                        .iter()
                        .zip(taps.chunks_mut(kw))
                    {
                        match iy {
                            Some(iy) => {
                                let src = &plane[iy * w.width..(iy + 1) * w.width];
                                for (v, ix) in line.iter_mut().zip(xs_of) {
                                    *v = ix.map_or(T::zero(), |ix| src[ix]);
                                }
                            }
                            None => line.iter_mut().for_each(|v| *v = T::zero()),
                        }
                    }
                }
            }
        });
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
    let (by_row, by_col) = (readers(w, 0, oh), readers(w, 1, ow));
    let (cs, w, block) = (cols.data.as_slice(), *w, *block);
    x.data
        .par_chunks_mut(w.image_len())
        .enumerate()
        .for_each(|(sample, image)| {
            let channels = &mut image[block.first * plane..(block.first + block.count) * plane];
            let sample_rows = &cs[sample * oh * ow * width..(sample + 1) * oh * ow * width];
            for (c, grads) in channels.chunks_mut(plane).enumerate() {
                for (iy, line) in grads.chunks_mut(w.width).enumerate() {
                    for (ix, v) in line.iter_mut().enumerate() {
                        let mut s = T::zero();
                        let rows_of = &by_row[iy * kh..(iy + 1) * kh];
                        let cols_of = &by_col[ix * kw..(ix + 1) * kw];
                        for (ty, y) in rows_of.iter().enumerate() {
                            let Some(y) = y else { continue };
                            for (tx, xo) in cols_of.iter().enumerate() {
                                let Some(xo) = xo else { continue };
                                s = s + sample_rows
                                    [(y * ow + xo) * width + (c * kh + ty) * kw + tx];
                            }
                        }
                        *v = s;
                    }
                }
            }
        });
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

/// One output plane of a pooling: `out` (and the winners) from `input`'s plane.
fn pool_plane<T: Float>(
    kind: Pool,
    w: &Window2d,
    input: &[T],
    out: &mut [T],
    mut winners: Option<&mut [T]>,
) {
    let [_, ow] = w.output_size().expect("checked window");
    let (kh, kw) = (w.kernel[0], w.kernel[1]);
    let divisor = cast::<T>((kh * kw) as f64);
    for (e, v) in out.iter_mut().enumerate() {
        let (y, xo) = (e / ow, e % ow);
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
                let value = input[iy * w.width + ix];
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
        if let Some(a) = winners.as_deref_mut() {
            a[e] = cast(at);
        }
    }
}

pub(crate) fn pool2d<T: Float + Send + Sync>(
    kind: Pool,
    x: &CpuTensor<T>,
    w: &Window2d,
    out: &mut CpuTensor<T>,
    argmax: Option<&mut CpuTensor<T>>,
) {
    let (plane, out_plane, w) = (w.height * w.width, w.positions(), *w);
    let planes = out
        .data
        .par_chunks_mut(out_plane)
        .zip(x.data.par_chunks(plane));
    match argmax {
        Some(a) => planes
            .zip(a.data.par_chunks_mut(out_plane))
            .for_each(|((o, i), a)| pool_plane(kind, &w, i, o, Some(a))),
        None => planes.for_each(|(o, i)| pool_plane(kind, &w, i, o, None)),
    }
}

pub(crate) fn pool2d_backward<T: Float + Send + Sync>(
    kind: Pool,
    w: &Window2d,
    grad_out: &CpuTensor<T>,
    argmax: Option<&CpuTensor<T>>,
    grad_in: &mut CpuTensor<T>,
) {
    let [oh, ow] = w.output_size().expect("checked window");
    let (kh, kw) = (w.kernel[0], w.kernel[1]);
    let divisor = cast::<T>((kh * kw) as f64);
    let (plane, out_plane, w) = (w.height * w.width, oh * ow, *w);
    grad_in
        .data
        .par_chunks_mut(plane)
        .enumerate()
        .for_each(|(image, grads)| {
            let go = &grad_out.data[image * out_plane..(image + 1) * out_plane];
            let winners = argmax.map(|a| &a.data[image * out_plane..(image + 1) * out_plane]);
            for (e, v) in grads.iter_mut().enumerate() {
                let (iy, ix) = (e / w.width, e % w.width);
                let me = cast::<T>(e as f64);
                let mut s = T::zero();
                for ty in 0..kh {
                    let Some(y) = window_of(iy, ty, w.stride[0], w.padding[0], w.dilation[0], oh)
                    else {
                        continue;
                    };
                    for tx in 0..kw {
                        let Some(xo) =
                            window_of(ix, tx, w.stride[1], w.padding[1], w.dilation[1], ow)
                        else {
                            continue;
                        };
                        let o = y * ow + xo;
                        match kind {
                            Pool::Max => {
                                let won = winners.expect("checked: max pooling saves its winners");
                                if won[o] == me {
                                    s = s + go[o];
                                }
                            }
                            Pool::Average => s = s + go[o] / divisor,
                        }
                    }
                }
                *v = s;
            }
        });
}
