//! A data set resident on the device: uploaded once, in chunks that each fit
//! one storage binding, with a new permutation per epoch uploaded as one
//! small index vector, so a minibatch is a gather on the device.

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
    rows: usize,
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

impl<B: Backend> Resident<B> {
    /// Uploads `data`, split into chunks no larger than the device allows.
    pub fn upload(b: &B, data: &Dataset) -> Result<Self> {
        let dim = data.dim();
        let width = data.target_width();
        let per_chunk = (b.max_tensor_len() / dim.max(width)).max(1);
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
                rows,
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
            }
            let mut offset = 0;
            while offset < chunk.rows {
                let rows = batch_size.min(chunk.rows - offset);
                slices.push(Slice {
                    chunk: ci,
                    offset,
                    rows,
                });
                offset += rows;
            }
        }
        if shuffle {
            // Interleave the chunks' batches so an epoch does not walk the
            // data set chunk by chunk.
            slices.shuffle(&mut rng);
        }
        Ok(slices)
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
