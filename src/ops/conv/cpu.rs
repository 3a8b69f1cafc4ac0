//! The CPU kernels of the convolution and pooling primitives: each output
//! element computed from its index, as the GPU's invocations do, and in the
//! same order of additions; and the CPU's own convolution (`conv2d`,
//! `conv2d_backward`), which works one sample at a time so that its
//! columns stay in cache.

use super::{ChannelBlock, ConvGrads, ConvGroup, Pool, Window2d};
use crate::backend::cpu::cast;
use crate::backend::pool::OnPool;
use crate::backend::CpuTensor;
use crate::ops::matmul::gemm::gemm_on_thread;
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
    let (kh, kw, p) = (w.kernel[0], w.kernel[1], oh * ow);
    let (rows_of, cols_of) = (sources(w, 0, oh), sources(w, 1, ow));
    let (xs, w, block) = (x.data.as_slice(), *w, *block);
    let plane = w.height * w.width;
    // One tap's row per task: that tap at every position of every sample.
    cols.data
        .chunks_mut(cols.cols)
        .enumerate()
        .for_each_on_pool(|(r, row)| {
            let (c, ty, tx) = (block.first + r / (kh * kw), (r / kw) % kh, r % kw);
            for (sample, positions) in row.chunks_mut(p).enumerate() {
                let source = &xs[sample * w.image_len() + c * plane..][..plane];
                for (y, line) in positions.chunks_mut(ow).enumerate() {
                    let iy = rows_of[y * kh + ty];
                    for (xo, v) in line.iter_mut().enumerate() {
                        *v = match (iy, cols_of[xo * kw + tx]) {
                            (Some(iy), Some(ix)) => source[iy * w.width + ix],
                            _ => T::zero(),
                        };
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
    let plane = w.height * w.width;
    let (by_row, by_col) = (readers(w, 0, oh), readers(w, 1, ow));
    let (cs, columns, w, block) = (cols.data.as_slice(), cols.cols, *w, *block);
    x.data
        .chunks_mut(w.image_len())
        .enumerate()
        .for_each_on_pool(|(sample, image)| {
            let channels = &mut image[block.first * plane..(block.first + block.count) * plane];
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
                                let row = (c * kh + ty) * kw + tx;
                                s = s + cs[row * columns + (sample * oh + y) * ow + xo];
                            }
                        }
                        *v = s;
                    }
                }
            }
        });
}

/// `dst[q·dst_pitch + r] = src[r·src_pitch + q]` for the `rows × cols`
/// block of `src`: a transpose, in tiles that stay in the L1 cache on both
/// sides.
fn transpose<T: Copy>(
    src: &[T],
    (rows, cols): (usize, usize),
    src_pitch: usize,
    dst: &mut [T],
    dst_pitch: usize,
) {
    const TILE: usize = 16;
    for r0 in (0..rows).step_by(TILE) {
        for q0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for q in q0..(q0 + TILE).min(cols) {
                    dst[q * dst_pitch + r] = src[r * src_pitch + q];
                }
            }
        }
    }
}

/// Each sample's block of channels (`count × P`) transposed into its `P`
/// rows of `out`, one sample per task.
pub(crate) fn channels_last<T: Float + Send + Sync>(
    x: &CpuTensor<T>,
    block: &ChannelBlock,
    out: &mut CpuTensor<T>,
) {
    let positions = x.cols / block.channels;
    let (xs, cols, block) = (x.data.as_slice(), x.cols, *block);
    out.data
        .chunks_mut(positions * block.count)
        .enumerate()
        .for_each_on_pool(|(sample, rows)| {
            let channels =
                &xs[sample * cols + block.first * positions..][..block.count * positions];
            transpose(
                channels,
                (block.count, positions),
                positions,
                rows,
                block.count,
            );
        });
}

/// The inverse of [`channels_last`], one sample per task.
pub(crate) fn channels_first<T: Float + Send + Sync>(
    z: &CpuTensor<T>,
    block: &ChannelBlock,
    out: &mut CpuTensor<T>,
) {
    let positions = out.cols / block.channels;
    let (zs, block) = (z.data.as_slice(), *block);
    out.data
        .chunks_mut(out.cols)
        .enumerate()
        .for_each_on_pool(|(sample, image)| {
            let rows = &zs[sample * positions * block.count..][..positions * block.count];
            let channels = &mut image[block.first * positions..][..block.count * positions];
            transpose(
                rows,
                (positions, block.count),
                block.count,
                channels,
                positions,
            );
        });
}

/// Row `c` of `rows` (`count × (N·P)`) gathers channel `first + c` of
/// every sample of `x`, one row per task.
pub(crate) fn channel_rows<T: Float + Send + Sync>(
    x: &CpuTensor<T>,
    block: &ChannelBlock,
    rows: &mut CpuTensor<T>,
) {
    let positions = x.cols / block.channels;
    let (xs, cols, first) = (x.data.as_slice(), x.cols, block.first);
    rows.data
        .chunks_mut(rows.cols)
        .enumerate()
        .for_each_on_pool(|(c, row)| {
            for (sample, part) in row.chunks_mut(positions).enumerate() {
                part.copy_from_slice(&xs[sample * cols + (first + c) * positions..][..positions]);
            }
        });
}

/// The inverse of [`channel_rows`] (plus a bias per row), one sample per
/// task.
pub(crate) fn channel_planes<T: Float + Send + Sync>(
    rows: &CpuTensor<T>,
    block: &ChannelBlock,
    bias: Option<&CpuTensor<T>>,
    out: &mut CpuTensor<T>,
) {
    let positions = out.cols / block.channels;
    let (zs, columns, block) = (rows.data.as_slice(), rows.cols, *block);
    let biases = bias.map(|b| b.data.as_slice());
    out.data
        .chunks_mut(out.cols)
        .enumerate()
        .for_each_on_pool(|(sample, image)| {
            let channels = &mut image[block.first * positions..][..block.count * positions];
            for (c, plane) in channels.chunks_exact_mut(positions).enumerate() {
                let row = &zs[c * columns + sample * positions..][..positions];
                match biases {
                    Some(b) => plane.iter_mut().zip(row).for_each(|(v, &z)| *v = z + b[c]),
                    None => plane.copy_from_slice(row),
                }
            }
        });
}

/// One output plane of a pooling: `out` (and the winners) from `input`'s
/// plane; `rows_of` / `cols_of` are the window's [`sources`] tables.
fn pool_plane<T: Float>(
    kind: Pool,
    w: &Window2d,
    (rows_of, cols_of): (&[Option<usize>], &[Option<usize>]),
    input: &[T],
    out: &mut [T],
    mut winners: Option<&mut [T]>,
) {
    let [_, ow] = w.output_size().expect("checked window");
    let (kh, kw) = (w.kernel[0], w.kernel[1]);
    let divisor = cast::<T>((kh * kw) as f64);
    for (y, (line_out, rows)) in out
        .chunks_exact_mut(ow)
        .zip(rows_of.chunks_exact(kh))
        .enumerate()
    {
        for (xo, (v, cols)) in line_out
            .iter_mut()
            .zip(cols_of.chunks_exact(kw))
            .enumerate()
        {
            let mut best = T::neg_infinity();
            let mut at = usize::MAX;
            let mut sum = T::zero();
            for &iy in rows.iter().flatten() {
                let line = &input[iy * w.width..(iy + 1) * w.width];
                for &ix in cols.iter().flatten() {
                    let value = line[ix];
                    sum = sum + value;
                    // PyTorch's rule: a larger value or a NaN takes the place.
                    if value > best || value.is_nan() {
                        best = value;
                        at = iy * w.width + ix;
                    }
                }
            }
            *v = match kind {
                Pool::Max => best,
                Pool::Average => sum / divisor,
            };
            if let Some(a) = winners.as_deref_mut() {
                a[y * ow + xo] = if at == usize::MAX {
                    -T::one()
                } else {
                    cast(at as f64)
                };
            }
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
    let [oh, ow] = w.output_size().expect("checked window");
    let (rows_of, cols_of) = (sources(w, 0, oh), sources(w, 1, ow));
    let tables = (rows_of.as_slice(), cols_of.as_slice());
    let (plane, out_plane, w) = (w.height * w.width, oh * ow, *w);
    let planes = out.data.chunks_mut(out_plane).zip(x.data.chunks(plane));
    match argmax {
        Some(a) => planes
            .zip(a.data.chunks_mut(out_plane))
            .for_each_on_pool(|((o, i), a)| pool_plane(kind, &w, tables, i, o, Some(a))),
        None => planes.for_each_on_pool(|(o, i)| pool_plane(kind, &w, tables, i, o, None)),
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
    let (by_row, by_col) = (readers(w, 0, oh), readers(w, 1, ow));
    let (plane, out_plane, w) = (w.height * w.width, oh * ow, *w);
    grad_in
        .data
        .chunks_mut(plane)
        .enumerate()
        .for_each_on_pool(|(image, grads)| {
            let go = &grad_out.data[image * out_plane..(image + 1) * out_plane];
            let winners = argmax.map(|a| &a.data[image * out_plane..(image + 1) * out_plane]);
            for (e, v) in grads.iter_mut().enumerate() {
                let (iy, ix) = (e / w.width, e % w.width);
                let me = cast::<T>(e as f64);
                let mut s = T::zero();
                for y in by_row[iy * kh..(iy + 1) * kh].iter().flatten() {
                    for xo in by_col[ix * kw..(ix + 1) * kw].iter().flatten() {
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

/// One sample's block of channels with the window's zero padding around
/// each plane (`count × (H + 2·pad_y) × (W + 2·pad_x)` values): every tap
/// of every output position reads inside it, so a row of columns is a run
/// of plain (or, with stride, strided) copies with no bounds to test.
struct Padded<'a, T> {
    values: &'a mut [T],
    height: usize,
    width: usize,
}

impl<'a, T: Float> Padded<'a, T> {
    /// Values a block's padded planes take, with a [`BLOCK`] of room
    /// after them.
    fn len(g: &ConvGroup) -> usize {
        let w = &g.window;
        let (h, wd) = (w.height + 2 * w.padding[0], w.width + 2 * w.padding[1]);
        g.input.count * h * wd + BLOCK
    }

    /// The padded planes over `values` (at least [`Padded::len`] of them),
    /// all zero.
    fn zeroed(values: &'a mut [T], g: &ConvGroup) -> Self {
        let w = &g.window;
        let values = &mut values[..Self::len(g)];
        values.fill(T::zero());
        Padded {
            values,
            height: w.height + 2 * w.padding[0],
            width: w.width + 2 * w.padding[1],
        }
    }

    /// The line of plane `c` at padded row `y`, from padded column `x` on.
    fn line(&self, c: usize, y: usize, x: usize) -> &[T] {
        &self.values[(c * self.height + y) * self.width + x..]
    }

    fn line_mut(&mut self, c: usize, y: usize, x: usize) -> &mut [T] {
        &mut self.values[(c * self.height + y) * self.width + x..]
    }

    /// The image rows of plane `c`: `(image row, padded line from the
    /// first image column)`, to fill or to read the inside.
    fn inside_mut(
        &mut self,
        g: &ConvGroup,
        c: usize,
    ) -> impl Iterator<Item = (usize, &mut [T])> + '_ {
        let w = g.window;
        let plane = &mut self.values[c * self.height * self.width..][..self.height * self.width];
        plane
            .chunks_exact_mut(self.width)
            .skip(w.padding[0])
            .take(w.height)
            .map(move |line| &mut line[w.padding[1]..w.padding[1] + w.width])
            .enumerate()
    }
}

/// Lines of columns are copied in blocks of this many values, past their
/// end: rows of columns and padded planes leave this much room after them.
const BLOCK: usize = 16;

/// `dst[..n] = src[..n]`, also writing up to `BLOCK − 1` values after:
/// for `n ≤ 2·BLOCK`, one or two copies of a constant size, which the
/// compiler inlines. (A `memcpy` call for each 14-value line of cnn-bn's
/// second layer took 15–22% of its forward pass.)
#[inline]
fn copy_line<T: Copy>(dst: &mut [T], src: &[T], n: usize) {
    fn block<T: Copy>(dst: &mut [T], src: &[T]) {
        let d: &mut [T; BLOCK] = (&mut dst[..BLOCK]).try_into().expect("a block");
        *d = *<&[T; BLOCK]>::try_from(&src[..BLOCK]).expect("a block");
    }
    if n > 2 * BLOCK {
        dst[..n].copy_from_slice(&src[..n]);
        return;
    }
    block(dst, src);
    if n > BLOCK {
        block(&mut dst[BLOCK..], &src[BLOCK..]);
    }
}

/// One sample's columns, transposed: row `(c·KH + ty)·KW + tx` of
/// `cols_t` (`(count·KH·KW)` rows, `stride` apart, of `P` values) holds
/// what that tap of channel `c` of the block reads at every output
/// position, zero in the padding. The block is first copied inside
/// `padded`'s zero border; each line of a row is then a copy from it, which
/// may write a [`BLOCK`] past the row's `P` values.
fn columns_of_sample<T: Float>(
    image: &[T],
    g: &ConvGroup,
    padded: &mut Padded<'_, T>,
    cols_t: &mut [T],
    stride: usize,
) {
    let (w, block) = (&g.window, &g.input);
    let [oh, ow] = w.output_size().expect("checked window");
    let ([sy, sx], [dy, dx], [kh, kw]) = (w.stride, w.dilation, w.kernel);
    let plane = w.height * w.width;
    for c in 0..block.count {
        let source = &image[(block.first + c) * plane..][..plane];
        for (iy, line) in padded.inside_mut(g, c) {
            line.copy_from_slice(&source[iy * w.width..(iy + 1) * w.width]);
        }
    }
    let taps = (0..block.count)
        .flat_map(|c| (0..kh).flat_map(move |ty| (0..kw).map(move |tx| (c, ty, tx))));
    for (r, (c, ty, tx)) in taps.enumerate() {
        for y in 0..oh {
            let src = padded.line(c, y * sy + ty * dy, tx * dx);
            let line = &mut cols_t[r * stride + y * ow..];
            if sx == 1 {
                copy_line(line, src, ow);
            } else {
                for (i, v) in line[..ow].iter_mut().enumerate() {
                    *v = src[i * sx];
                }
            }
        }
    }
}

/// The adjoint of [`columns_of_sample`]: each pixel of the block's
/// channels of `image` becomes the sum of the entries of `cols_t` that
/// read it, added in tap order from zero (the order of the gathering
/// `col2im`), summed in `padded` and copied out from inside its border;
/// `padded` is left all zero.
fn add_columns_to_sample<T: Float>(
    cols_t: &[T],
    stride: usize,
    g: &ConvGroup,
    padded: &mut Padded<'_, T>,
    image: &mut [T],
) {
    let (w, block) = (&g.window, &g.input);
    let [oh, ow] = w.output_size().expect("checked window");
    let ([sy, sx], [dy, dx], [kh, kw]) = (w.stride, w.dilation, w.kernel);
    padded.values.fill(T::zero());
    let taps = (0..block.count)
        .flat_map(|c| (0..kh).flat_map(move |ty| (0..kw).map(move |tx| (c, ty, tx))));
    for ((c, ty, tx), row) in taps.zip(cols_t.chunks(stride)) {
        for (y, line) in row[..oh * ow].chunks_exact(ow).enumerate() {
            let dst = padded.line_mut(c, y * sy + ty * dy, tx * dx);
            if sx == 1 {
                for (d, &v) in dst[..ow].iter_mut().zip(line) {
                    *d = *d + v;
                }
            } else {
                for (i, &v) in line.iter().enumerate() {
                    dst[i * sx] = dst[i * sx] + v;
                }
            }
        }
    }
    let plane = w.height * w.width;
    for c in 0..block.count {
        let grads = &mut image[(block.first + c) * plane..][..plane];
        for (iy, line) in padded.inside_mut(g, c) {
            grads[iy * w.width..(iy + 1) * w.width].copy_from_slice(line);
        }
    }
    // The border has taken the sums of taps that read padding; the next
    // sample's columns expect it zero.
    padded.values.fill(T::zero());
}

/// How the samples are cut: one contiguous run per thread (fixed by the
/// batch size and the thread count, so the sums across tasks always add
/// in the same order), each worked through `chunk` samples at a time.
#[derive(Clone, Copy, Debug)]
struct Cut {
    per_task: usize,
    chunk: usize,
}

/// Columns of a chunk (`K × chunk·P` values) are kept near this many
/// values (1 MiB in f32, within a core's L2): small layers (LeNet's first,
/// 25 × 784 values a sample) then make one product of several samples,
/// large ones (cnn-bn's second, 800 × 196) one of a single sample. Chunks
/// of up to 2²⁶ values were no faster on cnn-bn in the one comparison made,
/// within the machine's noise.
const CHUNK_VALUES: usize = 1 << 18;

impl Cut {
    fn new(n: usize, sample_values: usize) -> Cut {
        let per_task = n.div_ceil(rayon::current_num_threads().clamp(1, n.max(1)));
        let chunk = (CHUNK_VALUES / sample_values.max(1)).clamp(1, per_task);
        Cut { per_task, chunk }
    }

    /// The distance between rows of a chunk's columns: room for one more
    /// [`BLOCK`] after each.
    fn stride(&self, positions: usize) -> usize {
        self.chunk * positions + BLOCK
    }

    /// The samples of task `task`, chunk by chunk.
    fn chunks(&self, task: usize, n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
        let (start, end) = (task * self.per_task, ((task + 1) * self.per_task).min(n));
        let chunk = self.chunk;
        (start..end)
            .step_by(chunk)
            .map(move |s| s..(s + chunk).min(end))
    }
}

/// Per task: one chunk's columns (`chunk·P × K`) with one sample's padded
/// planes, and one chunk's product (`chunk·P × O`): what the CPU's
/// convolution works in.
pub(crate) fn scratch_shapes(rows: usize, g: &ConvGroup) -> [(usize, usize); 2] {
    let (p, (o, k)) = (g.window.positions(), g.weight_shape());
    let cut = Cut::new(rows, p * k);
    let tasks = rows.div_ceil(cut.per_task);
    [
        (tasks, k * cut.stride(p) + Padded::<f32>::len(g)),
        (tasks * cut.chunk * p, o),
    ]
}

/// One convolution group, forward, a chunk of samples at a time in each
/// task: the chunk's transposed columns are built in the task's share of
/// `cols` (`K × chunk·P`, in cache), one product `W·cols_t` goes to the
/// task's share of `z`, and each sample's part of it (plus the bias) to
/// the sample's NCHW output.
pub(crate) fn conv2d<T: Float + Send + Sync + 'static>(
    x: &CpuTensor<T>,
    w: &CpuTensor<T>,
    bias: Option<&CpuTensor<T>>,
    g: &ConvGroup,
    [cols, z]: [&mut CpuTensor<T>; 2],
    out: &mut CpuTensor<T>,
) {
    let (p, (oc, k)) = (g.window.positions(), g.weight_shape());
    let cut = Cut::new(x.rows, p * k);
    let (xs, ws) = (x.data.as_slice(), w.data.as_slice());
    let biases = bias.map(|b| b.data.as_slice());
    let (in_len, out_len) = (x.cols, out.cols);
    out.data
        .chunks_mut(cut.per_task * out_len)
        .zip(cols.data.chunks_mut(cols.cols))
        .zip(z.data.chunks_mut(cut.chunk * p * oc))
        .enumerate()
        .for_each_on_pool(|(task, ((outs, room), product))| {
            let stride = cut.stride(p);
            let (cols_t, padded) = room.split_at_mut(k * stride);
            let mut padded = Padded::zeroed(padded, g);
            let first = task * cut.per_task;
            for samples in cut.chunks(task, x.rows) {
                let pitch = samples.len() * p;
                for (i, sample) in samples.clone().enumerate() {
                    let image = &xs[sample * in_len..(sample + 1) * in_len];
                    columns_of_sample(image, g, &mut padded, &mut cols_t[i * p..], stride);
                }
                // `product = W·cols_t`, written as its transpose
                // `cols_tᵀ·Wᵀ` so that every operand is column-major,
                // the layout `gemm`'s kernels run fastest.
                let product = &mut product[..oc * pitch];
                let (a, b) = ((&cols_t[..], (1, stride)), (ws, (1, k)));
                gemm_on_thread((pitch, oc, k), a, b, (product, (1, pitch)), false);
                for (i, sample) in samples.enumerate() {
                    let row = &mut outs[(sample - first) * out_len..][..out_len];
                    let block = &mut row[g.output.first * p..(g.output.first + oc) * p];
                    for (o, channel) in block.chunks_exact_mut(p).enumerate() {
                        let b = biases.map_or(T::zero(), |b| b[o]);
                        let part = &product[o * pitch + i * p..o * pitch + (i + 1) * p];
                        for (v, &z) in channel.iter_mut().zip(part) {
                            *v = z + b;
                        }
                    }
                }
            }
        });
}

/// One convolution group, backward, a chunk of samples at a time in each
/// task: the chunk's output gradient is gathered into `δ` (`O × chunk·P`,
/// the task's share of `z`) and its columns rebuilt in cache (cheaper than
/// reading a batch-sized copy back from memory); `∂W += δ·cols_tᵀ` and
/// `∂b += Σ δ` go into the task's partial sums, then `cols_t = Wᵀ·δ` (in
/// place) is added back into each sample's input gradient. The partial
/// sums add up in task order.
pub(crate) fn conv2d_backward<T: Float + Send + Sync + 'static>(
    x: &CpuTensor<T>,
    w: &CpuTensor<T>,
    grad_out: &CpuTensor<T>,
    g: &ConvGroup,
    [cols, z]: [&mut CpuTensor<T>; 2],
    grads: ConvGrads<'_, CpuTensor<T>>,
) {
    let (p, (oc, k)) = (g.window.positions(), g.weight_shape());
    let n = x.rows;
    let cut = Cut::new(n, p * k);
    let (xs, ws, deltas) = (
        x.data.as_slice(),
        w.data.as_slice(),
        grad_out.data.as_slice(),
    );
    let (in_len, out_len) = (x.cols, grad_out.cols);
    let input_grads: Vec<Option<&mut [T]>> = match grads.input {
        Some(gi) => gi
            .data
            .chunks_mut(cut.per_task * in_len)
            .map(Some)
            .collect(),
        None => (0..n.div_ceil(cut.per_task)).map(|_| None).collect(),
    };
    let partials: Vec<(Vec<T>, Vec<T>)> = input_grads
        .into_iter()
        .zip(cols.data.chunks_mut(cols.cols))
        .zip(z.data.chunks_mut(cut.chunk * p * oc))
        .enumerate()
        .map_on_pool(|(task, ((mut input_grad, room), delta))| {
            let stride = cut.stride(p);
            let (cols_t, padded) = room.split_at_mut(k * stride);
            let mut padded = Padded::zeroed(padded, g);
            let (mut gw, mut gb) = (vec![T::zero(); oc * k], vec![T::zero(); oc]);
            let first = task * cut.per_task;
            for samples in cut.chunks(task, n) {
                let pitch = samples.len() * p;
                let delta = &mut delta[..oc * pitch];
                for (i, sample) in samples.clone().enumerate() {
                    let at = sample * out_len + g.output.first * p;
                    for (o, channel) in deltas[at..at + oc * p].chunks_exact(p).enumerate() {
                        delta[o * pitch + i * p..o * pitch + (i + 1) * p].copy_from_slice(channel);
                    }
                    let image = &xs[sample * in_len..(sample + 1) * in_len];
                    columns_of_sample(image, g, &mut padded, &mut cols_t[i * p..], stride);
                }
                for (b, channel) in gb.iter_mut().zip(delta.chunks_exact(pitch)) {
                    *b = channel.iter().fold(*b, |s, &v| s + v);
                }
                // Both products as their transposes, the output column-major
                // (as in the forward pass): `∂Wᵀ += cols_t·δᵀ`, then
                // `cols_tᵀ = δᵀ·W`.
                let (c, d) = ((&cols_t[..], (stride, 1)), (&delta[..], (1, pitch)));
                gemm_on_thread((k, oc, pitch), c, d, (&mut gw, (1, k)), true);
                if let Some(grad_rows) = input_grad.as_deref_mut() {
                    let (d, w) = ((&delta[..], (1, pitch)), (ws, (k, 1)));
                    gemm_on_thread((pitch, k, oc), d, w, (&mut cols_t[..], (1, stride)), false);
                    for (i, sample) in samples.enumerate() {
                        let image_grad = &mut grad_rows[(sample - first) * in_len..][..in_len];
                        add_columns_to_sample(&cols_t[i * p..], stride, g, &mut padded, image_grad);
                    }
                }
            }
            (gw, gb)
        });
    let mut tasks = partials.into_iter();
    let (mut gw, mut gb) = tasks.next().expect("at least one sample");
    for (w_part, b_part) in tasks {
        gw.iter_mut().zip(w_part).for_each(|(s, v)| *s = *s + v);
        gb.iter_mut().zip(b_part).for_each(|(s, v)| *s = *s + v);
    }
    grads.weight.data.copy_from_slice(&gw);
    if let Some(bias) = grads.bias {
        bias.data.copy_from_slice(&gb);
    }
}
