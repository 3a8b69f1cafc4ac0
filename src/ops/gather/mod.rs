//! Gathers: the rows of a minibatch from a resident data set through a
//! slice of a permutation, and their labels. The checks are here (the
//! index bounds were checked when the indices were written), the CPU
//! kernels in `cpu.rs`, the GPU dispatch in `gpu.rs`
//! (shaders/gather/gather.wgsl); parity in `tests/kernels.rs`.

pub(crate) mod cpu;
pub(crate) mod gpu;
#[cfg(test)]
mod tests;

use crate::backend::checks::shape_err;
use crate::backend::IndexVector;
use crate::Result;

/// Checks a gather of `rows × cols` from a `src_rows`-row source through
/// `idx[offset..offset + rows]`, whose entries were bounded when written.
pub(crate) fn check_gather(
    op: &'static str,
    src_rows: usize,
    src_cols: usize,
    idx: &impl IndexVector,
    offset: usize,
    rows: usize,
    cols: usize,
) -> Result<()> {
    if cols != src_cols {
        return Err(shape_err(
            op,
            format!("the source has {src_cols} columns, the output {cols}"),
        ));
    }
    if offset + rows > idx.len() {
        return Err(shape_err(
            op,
            format!(
                "{rows} rows from offset {offset} need {} indices, there are {}",
                offset + rows,
                idx.len()
            ),
        ));
    }
    if idx.bound() > src_rows {
        return Err(shape_err(
            op,
            format!(
                "indices may reach {} but the source has {src_rows} rows",
                idx.bound() - 1
            ),
        ));
    }
    Ok(())
}

pub(crate) fn check_gather_indices(
    src: &impl IndexVector,
    idx: &impl IndexVector,
    offset: usize,
    out: &impl IndexVector,
) -> Result<()> {
    if out.bound() != src.bound() {
        return Err(shape_err(
            "gather_indices",
            format!(
                "the output's bound {} differs from the source's {}",
                out.bound(),
                src.bound()
            ),
        ));
    }
    check_gather("gather_indices", src.len(), 1, idx, offset, out.len(), 1)
}
