//! The vocabulary of the backend interface that is not one op's: the target
//! of a loss. (Each op's own types live in its folder under [`crate::ops`].)

pub use crate::ops::activation::Activation;
pub use crate::ops::dense_backward::DenseGrads;
pub use crate::ops::loss::Loss;
pub use crate::ops::matmul::MatmulSpec;
pub use crate::ops::reduce::Reduce;

use super::Backend;

/// What a loss compares the prediction with.
pub enum Target<'a, B: Backend> {
    /// One class index per row.
    Labels(&'a B::Index),
    /// A target row per prediction row (one-hot, soft or real-valued).
    Dense(&'a B::Tensor),
}

impl<B: Backend> Clone for Target<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Backend> Copy for Target<'_, B> {}
