//! The CPU kernel of augmentation: the shader's arithmetic in f32, sample
//! by sample (each on its own core).

use super::{bilinear, noise, WarpSpec, TRANSFORM_FLOATS};
use crate::backend::cpu::cast;
use crate::backend::pool::OnPool;
use crate::backend::{CpuIndex, CpuTensor};
use crate::Result;
use num_traits::Float;

pub(crate) fn augment<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    x: &CpuTensor<T>,
    transforms: &CpuTensor<T>,
    keys: &CpuIndex,
    taps: &CpuTensor<T>,
    spec: &WarpSpec,
    out: &mut CpuTensor<T>,
) -> Result<()> {
    let (h, w, c) = (spec.height, spec.width, spec.channels);
    let len = c * h * w;
    let taps: Vec<f32> = taps
        .data
        .iter()
        .map(|t| t.to_f32().expect("a float"))
        .collect();
    let f = |v: T| v.to_f32().expect("a float");
    out.data
        .chunks_mut(len)
        .zip(x.data.chunks(len))
        .enumerate()
        .for_each_on_pool(|(row, (o, image))| {
            let t: Vec<f32> = transforms.data[row * TRANSFORM_FLOATS..(row + 1) * TRANSFORM_FLOATS]
                .iter()
                .map(|&v| f(v))
                .collect();
            let field = (spec.alpha != 0.0).then(|| elastic_field(keys.data[row], &taps, spec));
            let image: Vec<f32> = image.iter().map(|&v| f(v)).collect();
            let (cx, cy) = ((w as f32 - 1.0) * 0.5, (h as f32 - 1.0) * 0.5);
            for plane in 0..c {
                let src = &image[plane * h * w..(plane + 1) * h * w];
                for y in 0..h {
                    for xx in 0..w {
                        let qx = (xx as f32 - cx) - t[4];
                        let qy = (y as f32 - cy) - t[5];
                        let (dx, dy) = field.as_ref().map_or((0.0, 0.0), |d| {
                            (d[(y * w + xx) * 2], d[(y * w + xx) * 2 + 1])
                        });
                        let sx = t[0] * qx + t[1] * qy + cx + dx;
                        let sy = t[2] * qx + t[3] * qy + cy + dy;
                        let v = bilinear(src, h, w, sx, sy, spec.background);
                        let v = v * t[6] + (spec.background * (1.0 - t[6]) + t[7]);
                        o[plane * h * w + y * w + xx] = cast(f64::from(v));
                    }
                }
            }
        });
    Ok(())
}

/// One sample's displacement field, `h × w × 2` (x then y): α times the
/// Gaussian-smoothed noise, smoothed along rows then along columns over a
/// grid padded by the radius (the shader's two passes, in the same order).
fn elastic_field(key: u32, taps: &[f32], spec: &WarpSpec) -> Vec<f32> {
    let (h, w, r) = (spec.height, spec.width, spec.radius as usize);
    let padded = w + 2 * r;
    // The padded grid's noise once (the shader draws it per tap: the same
    // values, in the same sums).
    let mut grid = vec![0f32; (h + 2 * r) * padded * 2];
    for ey in 0..h + 2 * r {
        for ex in 0..padded {
            for comp in 0..2 {
                grid[(ey * padded + ex) * 2 + comp] =
                    noise(key, ey as u32, ex as u32, comp as u32, padded as u32);
            }
        }
    }
    let mut rows = vec![0f32; (h + 2 * r) * w * 2];
    for ey in 0..h + 2 * r {
        for x in 0..w {
            for comp in 0..2 {
                let mut s = 0f32;
                for (k, &g) in taps.iter().enumerate() {
                    s += g * grid[(ey * padded + x + k) * 2 + comp];
                }
                rows[(ey * w + x) * 2 + comp] = s;
            }
        }
    }
    let mut field = vec![0f32; h * w * 2];
    for y in 0..h {
        for x in 0..w {
            for comp in 0..2 {
                let mut s = 0f32;
                for (k, &g) in taps.iter().enumerate() {
                    s += g * rows[((y + k) * w + x) * 2 + comp];
                }
                field[(y * w + x) * 2 + comp] = spec.alpha * s;
            }
        }
    }
    field
}
