//! Every shape, range and length check of the backend operations, in one
//! place: the front ([`Backend`](super::Backend)) runs them before it hands
//! the operands to a device's [`Kernels`](super::Kernels), which trust them.

use super::Shaped;
use crate::{Error, Result};

pub(crate) fn shape_err(op: &'static str, detail: String) -> Error {
    Error::Shape { op, detail }
}

pub(crate) fn check_same(
    op: &'static str,
    what: &str,
    a: &impl Shaped,
    b: &impl Shaped,
) -> Result<()> {
    if a.rows() != b.rows() || a.cols() != b.cols() {
        return Err(shape_err(
            op,
            format!("{what}: {} vs {}", a.shape_str(), b.shape_str()),
        ));
    }
    Ok(())
}

pub(crate) fn check_nonempty(op: &'static str, rows: usize, cols: usize) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Err(Error::Empty { op, rows, cols });
    }
    Ok(())
}

pub(crate) fn check_len(op: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected != got {
        return Err(Error::Length { op, expected, got });
    }
    Ok(())
}

pub(crate) fn check_indices(op: &'static str, data: &[u32], bound: usize) -> Result<()> {
    check_nonempty(op, 1, data.len())?;
    if let Some((position, &index)) = data.iter().enumerate().find(|(_, &v)| v as usize >= bound) {
        return Err(Error::IndexRange {
            op,
            index,
            position,
            bound,
        });
    }
    Ok(())
}

/// A new tensor of `rows × cols`: not empty, and within the device's
/// [`max_tensor_len`](super::Kernels::max_tensor_len), with the size
/// arithmetic checked, before anything is allocated.
pub(crate) fn check_size<K: super::Kernels>(
    k: &K,
    op: &'static str,
    rows: usize,
    cols: usize,
) -> Result<()> {
    check_nonempty(op, rows, cols)?;
    let width = std::mem::size_of::<K::Scalar>() as u64;
    let limit = k.max_tensor_len();
    match rows.checked_mul(cols) {
        Some(len) if len <= limit => Ok(()),
        len => Err(Error::TooLarge {
            what: format!("{op} of a {rows}x{cols} tensor"),
            bytes: len.map_or(u64::MAX, |l| (l as u64).saturating_mul(width)),
            limit: (limit as u64).saturating_mul(width),
        }),
    }
}

/// `t` is `1 × 1`.
pub(crate) fn check_scalar(op: &'static str, what: &str, t: &impl Shaped) -> Result<()> {
    if t.len() != 1 {
        return Err(shape_err(
            op,
            format!("{what} must be 1x1, got {}", t.shape_str()),
        ));
    }
    Ok(())
}
