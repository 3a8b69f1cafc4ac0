//! The CPU kernels of the gathers.

use crate::backend::{CpuIndex, CpuTensor};
use crate::Result;
use num_traits::Float;

pub(crate) fn gather_rows<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    src: &CpuTensor<T>,
    idx: &CpuIndex,
    offset: usize,
    out: &mut CpuTensor<T>,
) -> Result<()> {
    let c = src.cols;
    for (i, &r) in idx.data[offset..offset + out.rows].iter().enumerate() {
        out.data[i * c..(i + 1) * c]
            .copy_from_slice(&src.data[r as usize * c..(r as usize + 1) * c]);
    }
    Ok(())
}

pub(crate) fn gather_indices(
    src: &CpuIndex,
    idx: &CpuIndex,
    offset: usize,
    out: &mut CpuIndex,
) -> Result<()> {
    for (o, &i) in out.data.iter_mut().zip(&idx.data[offset..]) {
        *o = src.data[i as usize];
    }
    Ok(())
}
