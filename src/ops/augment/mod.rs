//! Data augmentation on the device: a fresh random transform per sample
//! per epoch, drawn from the counter-based generator at (seed, epoch,
//! sample), so the CPU and the GPU transform every image alike.
//!
//! Per sample the host draws a geometric transform (rotation, scale,
//! shear, translation — a random crop padded back to size — and flips) and
//! an intensity change (contrast about the background, brightness); the
//! device draws Simard et al.'s elastic distortion (a random displacement
//! per pixel, smoothed by a Gaussian of width σ, scaled by α) and resamples
//! every pixel bilinearly, the background showing where the source falls
//! outside the image. Images are `channels × height × width` (NCHW rows);
//! nothing is tied to 28 × 28.
//!
//! The CPU kernel is `cpu.rs`, the GPU dispatch `gpu.rs`
//! (shaders/augment/augment.wgsl); parity and statistics in
//! `tests/augment.rs`.
//!
//! ```
//! use wgtrain::ops::augment::Augment;
//! let affine = Augment { rotate_degrees: 12.0, translate: 2.0, ..Augment::none(28, 28, 1) };
//! affine.validate().unwrap();
//! let t = affine.draw(7, 0, 42); // seed 7, epoch 0, sample 42: the same on every backend
//! assert!(t[6] == 1.0 && t[7] == 0.0); // no contrast or brightness change asked for
//! ```

pub(crate) mod cpu;
pub(crate) mod gpu;

use crate::backend::{Backend, Shaped};
use crate::ops::random;
use crate::optim::require;
use crate::{Error, Result};
use std::collections::HashMap;

/// Floats per sample of the drawn transforms: the inverse map's 2 × 2
/// matrix (row-major), the translation, contrast and brightness.
pub const TRANSFORM_FLOATS: usize = 8;

/// What to draw per sample. Every range is symmetric about "no change";
/// [`Augment::none`] changes nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augment {
    /// Image rows.
    pub height: usize,
    /// Image columns.
    pub width: usize,
    /// Channels (planes of `height × width`, one after the other).
    pub channels: usize,
    /// Rotation, uniform in ±this many degrees.
    pub rotate_degrees: f64,
    /// Zoom, uniform in [min, max] (1 is the original size).
    pub scale: (f64, f64),
    /// Horizontal shear, uniform in ±this many degrees.
    pub shear_degrees: f64,
    /// Translation in pixels, uniform in ±this on each axis: a random crop
    /// of the image padded back to its size with the background.
    pub translate: f64,
    /// Mirror left-right with probability ½.
    pub flip_horizontal: bool,
    /// Mirror top-bottom with probability ½.
    pub flip_vertical: bool,
    /// Elastic distortion strength α in pixels (0: none); Simard et al.
    /// used α = 34 with σ = 4 on MNIST.
    pub elastic_alpha: f64,
    /// Width σ of the Gaussian smoothing the displacement field, in pixels.
    pub elastic_sigma: f64,
    /// Contrast about the background, uniform in [min, max].
    pub contrast: (f64, f64),
    /// Brightness, uniform in ±this (in the data's units).
    pub brightness: f64,
    /// The value outside the image (0 for raw pixels; the standardised 0
    /// for standardised ones).
    pub background: f64,
}

impl Augment {
    /// No change at all, for images of this shape: the start of a
    /// configuration (`Augment { rotate_degrees: 10.0, ..Augment::none(28, 28, 1) }`).
    pub fn none(height: usize, width: usize, channels: usize) -> Augment {
        Augment {
            height,
            width,
            channels,
            rotate_degrees: 0.0,
            scale: (1.0, 1.0),
            shear_degrees: 0.0,
            translate: 0.0,
            flip_horizontal: false,
            flip_vertical: false,
            elastic_alpha: 0.0,
            elastic_sigma: 4.0,
            contrast: (1.0, 1.0),
            brightness: 0.0,
            background: 0.0,
        }
    }

    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Whether the elastic field is drawn.
    pub fn elastic(&self) -> bool {
        self.elastic_alpha != 0.0
    }

    /// Checks every parameter, naming the first out of range in
    /// [`Error::InvalidParameter`].
    pub fn validate(&self) -> Result<()> {
        // Every value must also be finite (NaN fails every range).
        let check =
            |name, value: f64, ok, allowed| require(name, value, ok && value.is_finite(), allowed);
        let size = (self.height * self.width * self.channels) as f64;
        check(
            "augment image size",
            size,
            size > 0.0,
            "height, width and channels ≥ 1",
        )?;
        check(
            "augment rotate_degrees",
            self.rotate_degrees,
            (0.0..=180.0).contains(&self.rotate_degrees),
            "in [0, 180]",
        )?;
        check("augment scale min", self.scale.0, self.scale.0 > 0.0, "> 0")?;
        check(
            "augment scale max",
            self.scale.1,
            self.scale.1 >= self.scale.0,
            "≥ the minimum",
        )?;
        check(
            "augment shear_degrees",
            self.shear_degrees,
            (0.0..60.0).contains(&self.shear_degrees),
            "in [0, 60)",
        )?;
        let side = self.height.min(self.width) as f64;
        check(
            "augment translate",
            self.translate,
            (0.0..side).contains(&self.translate),
            "in [0, the image's shorter side): a crop must keep some of the image",
        )?;
        check(
            "augment elastic_alpha",
            self.elastic_alpha,
            self.elastic_alpha >= 0.0,
            "≥ 0",
        )?;
        check(
            "augment elastic_sigma",
            self.elastic_sigma,
            self.elastic_sigma > 0.0 && self.elastic_sigma <= side,
            "in (0, the image's shorter side]",
        )?;
        check(
            "augment contrast min",
            self.contrast.0,
            self.contrast.0 >= 0.0,
            "≥ 0",
        )?;
        check(
            "augment contrast max",
            self.contrast.1,
            self.contrast.1 >= self.contrast.0,
            "≥ the minimum",
        )?;
        check(
            "augment brightness",
            self.brightness,
            self.brightness >= 0.0,
            "≥ 0",
        )?;
        check("augment background", self.background, true, "finite")
    }

    /// The transform of `sample` at `epoch` under `seed`, as
    /// [`TRANSFORM_FLOATS`] floats: the map from an output pixel's offset
    /// `p` from the centre to its source, `src = M·(p − t) + centre`
    /// (`M` row-major, then `t`), then contrast and brightness.
    pub fn draw(&self, seed: u64, epoch: u64, sample: u64) -> [f32; TRANSFORM_FLOATS] {
        let key = sample_key(seed, epoch, sample);
        let u = |j: u32| f64::from(random::uniform(key, j));
        let sym = |j: u32, max: f64| (2.0 * u(j) - 1.0) * max;
        let theta = sym(0, self.rotate_degrees).to_radians();
        let shear = sym(1, self.shear_degrees).to_radians().tan();
        let zoom = self.scale.0 + u(2) * (self.scale.1 - self.scale.0);
        let (tx, ty) = (sym(3, self.translate), sym(4, self.translate));
        let flip = |on: bool, j: u32| if on && u(j) < 0.5 { -1.0 } else { 1.0 };
        let (fx, fy) = (flip(self.flip_horizontal, 5), flip(self.flip_vertical, 6));
        let contrast = self.contrast.0 + u(7) * (self.contrast.1 - self.contrast.0);
        let brightness = sym(8, self.brightness);
        // M = (1/zoom) · R(−θ) · Sh(−shear) · diag(fx, fy): the inverse of
        // flipping, shearing, rotating and zooming the image.
        let (c, s) = (theta.cos(), theta.sin());
        let r = [[c, s], [-s, c]];
        let sh = [[1.0, -shear], [0.0, 1.0]];
        let rs = [
            [
                r[0][0] * sh[0][0] + r[0][1] * sh[1][0],
                r[0][0] * sh[0][1] + r[0][1] * sh[1][1],
            ],
            [
                r[1][0] * sh[0][0] + r[1][1] * sh[1][0],
                r[1][0] * sh[0][1] + r[1][1] * sh[1][1],
            ],
        ];
        [
            (rs[0][0] * fx / zoom) as f32,
            (rs[0][1] * fy / zoom) as f32,
            (rs[1][0] * fx / zoom) as f32,
            (rs[1][1] * fy / zoom) as f32,
            tx as f32,
            ty as f32,
            contrast as f32,
            brightness as f32,
        ]
    }

    /// The elastic field's key of `sample`: what the device draws its
    /// displacement noise from.
    pub fn elastic_key(&self, seed: u64, epoch: u64, sample: u64) -> u32 {
        random::mix(sample_key(seed, epoch, sample) ^ 0x9e37_79b9)
    }

    /// The smoothing Gaussian's taps, normalised to sum 1, over ±⌈3σ⌉.
    pub fn taps(&self) -> Vec<f32> {
        let radius = (3.0 * self.elastic_sigma).ceil() as i64;
        let weights: Vec<f64> = (-radius..=radius)
            .map(|k| (-(k * k) as f64 / (2.0 * self.elastic_sigma * self.elastic_sigma)).exp())
            .collect();
        let sum: f64 = weights.iter().sum();
        weights.iter().map(|w| (w / sum) as f32).collect()
    }

    /// What the kernels take besides the tensors.
    pub fn spec(&self) -> WarpSpec {
        WarpSpec {
            height: self.height,
            width: self.width,
            channels: self.channels,
            alpha: if self.elastic() {
                self.elastic_alpha as f32
            } else {
                0.0
            },
            radius: (self.taps().len() / 2) as u32,
            background: self.background as f32,
        }
    }
}

/// The part of a sample's draws shared by all of them.
fn sample_key(seed: u64, epoch: u64, sample: u64) -> u32 {
    random::mix(random::key(seed, epoch) ^ sample as u32 ^ random::mix((sample >> 32) as u32))
}

/// What [`Backend::augment`](crate::Backend::augment) needs besides the
/// tensors: the image shape, the elastic strength (0: no field), the
/// smoothing's radius in taps, and the background.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WarpSpec {
    /// Image rows.
    pub height: usize,
    /// Image columns.
    pub width: usize,
    /// Channels.
    pub channels: usize,
    /// Elastic strength α (0: the field is not drawn).
    pub alpha: f32,
    /// Taps on each side of the smoothing's centre.
    pub radius: u32,
    /// The value outside the image.
    pub background: f32,
}

/// The noise the elastic field smooths: uniform in [−1, 1), a pure
/// function of (key, extended row, extended column, component) on a grid
/// padded by `radius` on every side, so the smoothing has no edge.
pub(crate) fn noise(key: u32, ey: u32, ex: u32, comp: u32, padded_width: u32) -> f32 {
    random::uniform(key, (ey * padded_width + ex) * 2 + comp) * 2.0 - 1.0
}

/// Bilinear sample of plane `plane` (`h × w`) at (`sx`, `sy`), with
/// `background` outside: the CPU twin of the shader's `sample`.
pub(crate) fn bilinear(
    plane: &[f32],
    h: usize,
    w: usize,
    sx: f32,
    sy: f32,
    background: f32,
) -> f32 {
    let (x0, y0) = (sx.floor(), sy.floor());
    let (fx, fy) = (sx - x0, sy - y0);
    let at = |x: f32, y: f32| {
        if x >= 0.0 && y >= 0.0 && x < w as f32 && y < h as f32 {
            plane[y as usize * w + x as usize]
        } else {
            background
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// An [`Augment`] at work on one backend: its smoothing taps on the device
/// and, per batch size, the buffers a batch's draws and output live in.
/// What the training loop runs (`TrainConfig::augment`); usable alone.
///
/// ```
/// use wgtrain::ops::augment::{Augment, Augmenter};
/// use wgtrain::{Backend, Cpu};
/// let cpu = Cpu::<f32>::new();
/// let aug = Augment { rotate_degrees: 10.0, elastic_alpha: 3.0, elastic_sigma: 1.0, ..Augment::none(4, 4, 1) };
/// let mut augmenter = Augmenter::new(&cpu, aug).unwrap();
/// let x = cpu.upload(2, 16, &[0.5; 32]).unwrap();
/// let out = augmenter.apply(&cpu, &x, &[10, 11], 0, 0).unwrap(); // samples 10 and 11, seed 0, epoch 0
/// assert_eq!(cpu.download(out).unwrap().len(), 32);
/// ```
pub struct Augmenter<B: Backend> {
    aug: Augment,
    /// `aug.spec()`, computed once (it walks the taps).
    spec: WarpSpec,
    taps: B::Tensor,
    batches: HashMap<usize, AugmentBuffers<B>>,
}

struct AugmentBuffers<B: Backend> {
    transforms: B::Tensor,
    keys: B::Index,
    out: B::Tensor,
}

impl<B: Backend> Augmenter<B> {
    /// Checks `aug` and uploads its taps.
    pub fn new(b: &B, aug: Augment) -> Result<Self> {
        aug.validate()?;
        let taps = aug.taps();
        Ok(Augmenter {
            aug,
            spec: aug.spec(),
            taps: b.upload(1, taps.len(), &taps)?,
            batches: HashMap::new(),
        })
    }

    /// The configuration.
    pub fn augment(&self) -> &Augment {
        &self.aug
    }

    /// Augments batch `x`, whose row `i` is sample `samples[i]` of the data
    /// set, with the draws of (`seed`, `epoch`, sample): the same images
    /// whichever backend, batch or replica a sample lands in.
    pub fn apply(
        &mut self,
        b: &B,
        x: &B::Tensor,
        samples: &[u64],
        seed: u64,
        epoch: u64,
    ) -> Result<&B::Tensor> {
        let rows = x.rows();
        if samples.len() != rows {
            return Err(Error::Shape {
                op: "augment",
                detail: format!("{} sample indices for a batch of {rows}", samples.len()),
            });
        }
        let buffers = match self.batches.entry(rows) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(AugmentBuffers {
                transforms: b.zeros(rows, TRANSFORM_FLOATS)?,
                keys: b.indices(&vec![0; rows], usize::MAX)?,
                out: b.zeros(rows, x.cols())?,
            }),
        };
        let transforms: Vec<f32> = samples
            .iter()
            .flat_map(|&s| self.aug.draw(seed, epoch, s))
            .collect();
        b.write_f32(&mut buffers.transforms, &transforms)?;
        if self.aug.elastic() {
            let keys: Vec<u32> = samples
                .iter()
                .map(|&s| self.aug.elastic_key(seed, epoch, s))
                .collect();
            b.write_indices(&mut buffers.keys, &keys)?;
        }
        b.augment(
            x,
            &buffers.transforms,
            &buffers.keys,
            &self.taps,
            &self.spec,
            &mut buffers.out,
        )?;
        Ok(&buffers.out)
    }
}
