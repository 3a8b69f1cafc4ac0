//! A data set resident on the device: uploaded once, in chunks that each fit
//! one storage binding, with a new permutation per epoch uploaded as one
//! small index vector, so a minibatch is a gather on the device.

use super::sampler::{self, Sampler};
use crate::backend::{Backend, Target};
use crate::data::{Dataset, Targets};
use crate::{Error, Result};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::HashMap;

enum ChunkTargets<B: Backend> {
    Labels(B::Index),
    Dense(B::Tensor),
}

struct Chunk<B: Backend> {
    x: B::Tensor,
    y: ChunkTargets<B>,
    /// This epoch's order of the chunk's rows.
    order: B::Index,
    /// The same order on the host, for the samples' global indices.
    order_host: Vec<u32>,
    /// The data set's row of the chunk's first row.
    start: usize,
    rows: usize,
    /// The chunk's labels on the host (labelled data), for the stratified sampler.
    labels_host: Option<Vec<u32>>,
    /// The last-seen training loss of each of the chunk's rows (empty until
    /// an epoch recorded them), for the loss-weighted sampler.
    losses: Vec<f64>,
    /// This epoch's per-sample losses by position in `order` (`rows × 1`,
    /// made when first recorded).
    seen: Option<B::Tensor>,
}

/// The buffers one minibatch size is gathered into.
struct Batch<B: Backend> {
    x: B::Tensor,
    y: ChunkTargets<B>,
}

/// A data set uploaded to a backend.
pub(crate) struct Resident<B: Backend> {
    chunks: Vec<Chunk<B>>,
    batches: HashMap<usize, Batch<B>>,
    dim: usize,
    width: usize,
    classes: Option<usize>,
}

/// Where a minibatch comes from: `rows` rows of chunk `chunk`, starting at
/// position `offset` of that chunk's order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Slice {
    pub chunk: usize,
    pub offset: usize,
    pub rows: usize,
}

impl Slice {
    /// Rows `rows` of this batch (a replica's
    /// [`shard`](crate::parallel::shard)), or `None` when there are none.
    pub fn rows(self, rows: std::ops::Range<usize>) -> Option<Slice> {
        (!rows.is_empty()).then_some(Slice {
            chunk: self.chunk,
            offset: self.offset + rows.start,
            rows: rows.len(),
        })
    }
}

/// Appends the minibatches of chunk `ci`'s `rows` rows in order.
fn push_slices(slices: &mut Vec<Slice>, ci: usize, rows: usize, batch_size: usize) {
    let mut offset = 0;
    while offset < rows {
        let n = batch_size.min(rows - offset);
        slices.push(Slice {
            chunk: ci,
            offset,
            rows: n,
        });
        offset += n;
    }
}

impl<B: Backend> Resident<B> {
    /// Uploads `data`, split into chunks no larger than the device allows.
    pub fn upload(b: &B, data: &Dataset) -> Result<Self> {
        Self::upload_chunked(b, data, b.max_tensor_len())
    }

    /// Uploads `data` in chunks of at most `max_len` elements per tensor.
    fn upload_chunked(b: &B, data: &Dataset, max_len: usize) -> Result<Self> {
        let dim = data.dim();
        let width = data.target_width();
        // A row takes `dim` feature elements and one label, or `width` dense targets.
        let target_len = if data.classes().is_some() { 1 } else { width };
        let per_chunk = (max_len / dim.max(target_len)).max(1);
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < data.len() {
            let rows = per_chunk.min(data.len() - start);
            let x = b.upload(
                rows,
                dim,
                &data.features()[start * dim..(start + rows) * dim],
            )?;
            let y = match data.targets() {
                Targets::Labels { labels, classes } => {
                    ChunkTargets::Labels(b.indices(&labels[start..start + rows], *classes)?)
                }
                Targets::Dense { values, width } => ChunkTargets::Dense(b.upload(
                    rows,
                    *width,
                    &values[start * width..(start + rows) * width],
                )?),
            };
            let identity: Vec<u32> = (0..rows as u32).collect();
            chunks.push(Chunk {
                x,
                y,
                order: b.indices(&identity, rows)?,
                order_host: identity,
                start,
                rows,
                labels_host: data.labels().map(|l| l[start..start + rows].to_vec()),
                losses: Vec::new(),
                seen: None,
            });
            start += rows;
        }
        Ok(Resident {
            chunks,
            batches: HashMap::new(),
            dim,
            width,
            classes: data.classes(),
        })
    }

    /// Rows in all chunks.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.rows).sum()
    }

    /// Class count, for labelled data.
    pub fn classes(&self) -> Option<usize> {
        self.classes
    }

    /// Draws this epoch's order (a shuffle of each chunk, and of the chunks)
    /// from `seed` and returns the minibatches, each within one chunk.
    pub fn epoch(
        &mut self,
        b: &B,
        batch_size: usize,
        shuffle: bool,
        seed: u64,
    ) -> Result<Vec<Slice>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut slices = Vec::new();
        for (ci, chunk) in self.chunks.iter_mut().enumerate() {
            if shuffle {
                let mut order: Vec<u32> = (0..chunk.rows as u32).collect();
                order.shuffle(&mut rng);
                b.write_indices(&mut chunk.order, &order)?;
                chunk.order_host = order;
            }
            push_slices(&mut slices, ci, chunk.rows, batch_size);
        }
        if shuffle {
            // Interleave the chunks' batches so an epoch does not walk the
            // data set chunk by chunk.
            slices.shuffle(&mut rng);
        }
        Ok(slices)
    }

    /// As [`Resident::epoch`], the order drawn by `sampler` (see
    /// [`Sampler`]); `shuffle` matters to [`Sampler::Shuffle`] only.
    pub fn epoch_sampled(
        &mut self,
        b: &B,
        batch_size: usize,
        sampler: Sampler,
        shuffle: bool,
        seed: u64,
    ) -> Result<Vec<Slice>> {
        if sampler == Sampler::Shuffle {
            return self.epoch(b, batch_size, shuffle, seed);
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let mut slices = Vec::new();
        for (ci, chunk) in self.chunks.iter_mut().enumerate() {
            let order = match sampler {
                Sampler::Stratified => {
                    let labels = chunk.labels_host.as_deref().ok_or_else(|| {
                        Error::Model("the stratified sampler needs class labels".into())
                    })?;
                    sampler::stratified_order(labels, &mut rng)
                }
                Sampler::LossWeighted { cap } if !chunk.losses.is_empty() => {
                    sampler::weighted_draws(&chunk.losses, cap, &mut rng)
                }
                _ => {
                    let mut order: Vec<u32> = (0..chunk.rows as u32).collect();
                    order.shuffle(&mut rng);
                    order
                }
            };
            b.write_indices(&mut chunk.order, &order)?;
            chunk.order_host = order;
            push_slices(&mut slices, ci, chunk.rows, batch_size);
        }
        slices.shuffle(&mut rng);
        Ok(slices)
    }

    /// Keeps the per-sample losses `per_row` (`s.rows × 1`) of minibatch
    /// `s` on the device, by their position in the epoch's order.
    pub fn record_losses(&mut self, b: &B, s: Slice, per_row: &B::Tensor) -> Result<()> {
        let chunk = &mut self.chunks[s.chunk];
        if chunk.seen.is_none() {
            chunk.seen = Some(b.zeros(chunk.rows, 1)?);
        }
        let seen = chunk.seen.as_mut().expect("made above");
        b.copy_range(per_row, 0, seen, s.offset, s.rows)
    }

    /// At the end of an epoch: reads the recorded losses (once per chunk),
    /// sums them over the replicas (each recorded its shard's rows, zeros
    /// elsewhere) and keeps them as each sample's last-seen loss.
    pub fn collect_losses(
        &mut self,
        b: &B,
        group: &mut dyn crate::parallel::Collective,
    ) -> Result<()> {
        for chunk in &mut self.chunks {
            let Some(seen) = chunk.seen.as_mut() else {
                continue;
            };
            let mut values = b.download(seen)?;
            group.all_reduce_sum_f64(&mut values)?;
            b.fill(seen, 0.0)?;
            if chunk.losses.is_empty() {
                chunk.losses = vec![0.0; chunk.rows];
            }
            for (&row, v) in chunk.order_host.iter().zip(values) {
                chunk.losses[row as usize] = v;
            }
        }
        Ok(())
    }

    /// The data set's rows that minibatch `s` gathers, in its order: what
    /// a per-sample draw (augmentation) is keyed by.
    pub fn sample_ids(&self, s: Slice) -> Vec<u64> {
        let chunk = &self.chunks[s.chunk];
        chunk.order_host[s.offset..s.offset + s.rows]
            .iter()
            .map(|&r| (chunk.start + r as usize) as u64)
            .collect()
    }

    /// Gathers a minibatch on the device and returns its features and target.
    pub fn gather(&mut self, b: &B, s: Slice) -> Result<(&B::Tensor, Target<'_, B>)> {
        if !self.batches.contains_key(&s.rows) {
            let x = b.zeros(s.rows, self.dim)?;
            let y = match (&self.chunks[s.chunk].y, self.classes) {
                (ChunkTargets::Labels(_), Some(classes)) => {
                    ChunkTargets::Labels(b.indices(&vec![0; s.rows], classes)?)
                }
                _ => ChunkTargets::Dense(b.zeros(s.rows, self.width)?),
            };
            self.batches.insert(s.rows, Batch { x, y });
        }
        let chunk = &self.chunks[s.chunk];
        let batch = self.batches.get_mut(&s.rows).expect("inserted above");
        b.gather_rows(&chunk.x, &chunk.order, s.offset, &mut batch.x)?;
        match (&chunk.y, &mut batch.y) {
            (ChunkTargets::Labels(src), ChunkTargets::Labels(dst)) => {
                b.gather_indices(src, &chunk.order, s.offset, dst)?
            }
            (ChunkTargets::Dense(src), ChunkTargets::Dense(dst)) => {
                b.gather_rows(src, &chunk.order, s.offset, dst)?
            }
            _ => {
                return Err(Error::Model(
                    "mixed label and dense targets in one data set".into(),
                ))
            }
        }
        let target = match &batch.y {
            ChunkTargets::Labels(l) => Target::Labels(l),
            ChunkTargets::Dense(t) => Target::Dense(t),
        };
        Ok((&batch.x, target))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cpu;

    /// The per-sample losses recorded by batch come back keyed by sample,
    /// across chunks, and the next epoch's weighted draws use them: a
    /// sample whose loss is the largest is drawn most.
    #[test]
    fn recorded_losses_follow_their_samples() {
        let cpu = Cpu::<f64>::new();
        let n = 53;
        let features: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let data = Dataset::classification(features, 1, vec![0; n], 1).unwrap();
        let mut resident = Resident::upload_chunked(&cpu, &data, 20).unwrap();
        let sampler = Sampler::LossWeighted { cap: 1e6 };
        let slices = resident.epoch_sampled(&cpu, 8, sampler, true, 5).unwrap();
        for s in &slices {
            // The "loss" of a sample is its row id + 1 (its feature + 1).
            let (x, _) = resident.gather(&cpu, *s).unwrap();
            let ids: Vec<f64> = cpu.download(x).unwrap().iter().map(|v| v + 1.0).collect();
            let per_row = cpu.upload_f64(s.rows, 1, &ids).unwrap();
            resident.record_losses(&cpu, *s, &per_row).unwrap();
        }
        resident
            .collect_losses(&cpu, &mut crate::parallel::Solo)
            .unwrap();
        let mut all = Vec::new();
        for c in &resident.chunks {
            for (i, l) in c.losses.iter().enumerate() {
                assert_eq!(*l, (c.start + i + 1) as f64);
                all.push(*l);
            }
        }
        assert_eq!(all.len(), n);
        // Weighted by their ids, the last rows of each chunk come up most.
        let mut counts = vec![0usize; n];
        for epoch in 0..200 {
            for s in resident
                .epoch_sampled(&cpu, 8, sampler, true, epoch)
                .unwrap()
            {
                let (x, _) = resident.gather(&cpu, s).unwrap();
                for v in cpu.download(x).unwrap() {
                    counts[v as usize] += 1;
                }
            }
        }
        // Chunk 0 holds rows 0..20: row 19 weighs 20, row 0 weighs 1.
        assert!(counts[19] > 5 * counts[0].max(1), "{:?}", &counts[..20]);
    }

    /// Every sample exactly once per epoch, in a different order each epoch,
    /// also when the data set is split into chunks (of 40, 40 and 23 rows here).
    #[test]
    fn each_epoch_visits_every_sample_once() {
        let cpu = Cpu::<f32>::new();
        let n = 103;
        // Feature = row id, so a gathered batch names its rows.
        let features: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let data = Dataset::classification(features, 1, (0..n as u32).map(|i| i % 3).collect(), 3)
            .unwrap();
        let mut resident = Resident::upload_chunked(&cpu, &data, 40).unwrap();
        assert_eq!(resident.chunks.len(), 3);
        assert_eq!(resident.len(), n);
        let mut orders = Vec::new();
        for epoch in 0..3 {
            let mut seen = Vec::new();
            for s in resident.epoch(&cpu, 10, true, epoch).unwrap() {
                let (x, target) = resident.gather(&cpu, s).unwrap();
                let rows: Vec<usize> = cpu
                    .download(x)
                    .unwrap()
                    .iter()
                    .map(|&v| v as usize)
                    .collect();
                let Target::Labels(l) = target else {
                    panic!("labelled data")
                };
                let labels = cpu.download_indices(l).unwrap();
                assert!(
                    rows.iter().zip(&labels).all(|(r, l)| *r as u32 % 3 == *l),
                    "labels follow their rows"
                );
                seen.extend(rows);
            }
            orders.push(seen.clone());
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "epoch {epoch}");
        }
        assert_ne!(orders[0], orders[1]);
        assert_ne!(orders[1], orders[2]);
        // Without shuffling the order is the data set's.
        let plain: Vec<usize> = resident
            .epoch(&cpu, 10, false, 0)
            .unwrap()
            .iter()
            .map(|s| s.rows)
            .collect();
        assert_eq!(plain.iter().sum::<usize>(), n);
    }
}
