//! Inference on a trained model: classes and class probabilities for any
//! number of samples, a batch at a time on the model's device.

use super::{Mode, Model};
use crate::backend::{Backend, Shaped};
use crate::{Error, Result};

impl<B: Backend> Model<B> {
    /// The softmax of the model's outputs (class probabilities) for
    /// `features` (`n × input width`, row-major, preprocessed as in
    /// training), evaluated `batch` rows at a time: `n × classes` values,
    /// row-major. The softmax is taken on the host in f64 from the
    /// outputs, so both backends turn the same outputs into the same
    /// probabilities.
    ///
    /// ```
    /// use wgtrain::{Cpu, Init, Sequential};
    /// let cpu = Cpu::<f32>::new();
    /// let mut model = Sequential::new(2).dense(3, Init::XavierUniform).build(&cpu, 0).unwrap();
    /// let p = model.predict_proba(&[0.5, -1.0, 2.0, 0.0], 256).unwrap();
    /// assert_eq!(p.len(), 2 * 3);
    /// assert!((p[..3].iter().sum::<f32>() - 1.0).abs() < 1e-6);
    /// ```
    pub fn predict_proba(&mut self, features: &[f32], batch: usize) -> Result<Vec<f32>> {
        crate::gpu::block_on_device(self.predict_proba_async(features, batch))
    }

    /// As [`Model::predict_proba`], as a future (what a page awaits).
    pub async fn predict_proba_async(
        &mut self,
        features: &[f32],
        batch: usize,
    ) -> Result<Vec<f32>> {
        let classes = self.spec().output_width();
        let outputs = self.outputs(features, batch).await?;
        let mut out = Vec::with_capacity(outputs.len());
        for row in outputs.chunks(classes) {
            let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = row.iter().map(|&z| (z - max).exp()).sum();
            out.extend(row.iter().map(|&z| ((z - max).exp() / sum) as f32));
        }
        Ok(out)
    }

    /// The most probable class of each of the `n` samples in `features`
    /// (the first on a tie), evaluated `batch` rows at a time.
    ///
    /// ```
    /// use wgtrain::{Cpu, Init, Sequential};
    /// let cpu = Cpu::<f32>::new();
    /// let mut model = Sequential::new(1).dense(2, Init::Constant(1.0)).build(&cpu, 0).unwrap();
    /// model.set_parameter("0.weight", &[1.0, -1.0]).unwrap();
    /// assert_eq!(model.predict(&[3.0, -3.0], 1).unwrap(), [0, 1]);
    /// ```
    pub fn predict(&mut self, features: &[f32], batch: usize) -> Result<Vec<u32>> {
        crate::gpu::block_on_device(self.predict_async(features, batch))
    }

    /// As [`Model::predict`], as a future.
    pub async fn predict_async(&mut self, features: &[f32], batch: usize) -> Result<Vec<u32>> {
        let classes = self.spec().output_width();
        let outputs = self.outputs(features, batch).await?;
        Ok(outputs
            .chunks(classes)
            .map(|row| {
                (0..classes).fold(0, |best, k| if row[k] > row[best] { k } else { best }) as u32
            })
            .collect())
    }

    /// The evaluation-mode outputs for `features`, `batch` rows at a time;
    /// a non-finite output is an error (no class can be read from it).
    async fn outputs(&mut self, features: &[f32], batch: usize) -> Result<Vec<f64>> {
        let width = self.spec().input_width();
        if batch == 0 {
            return Err(Error::InvalidParameter {
                name: "prediction batch",
                value: 0.0,
                allowed: "at least 1 row",
            });
        }
        if !features.len().is_multiple_of(width) {
            return Err(Error::Shape {
                op: "predict",
                detail: format!(
                    "{} feature values are not whole samples of {width} (the model's input width)",
                    features.len()
                ),
            });
        }
        let b = self.backend().clone();
        let mut out = Vec::with_capacity(features.len() / width * self.spec().output_width());
        for chunk in features.chunks(batch * width) {
            let x = b.upload(chunk.len() / width, width, chunk)?;
            let y = self.forward(&x, Mode::Eval)?;
            debug_assert_eq!(y.rows(), chunk.len() / width);
            out.extend(b.download_async(y).await?);
        }
        if let Some(index) = out.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite {
                what: "the model's output".into(),
                index,
                value: out[index],
            });
        }
        Ok(out)
    }
}
