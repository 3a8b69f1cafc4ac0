//! Elementwise CPU work split over the cores ([`pool`](super::pool)).
//!
//! Every piece computes exactly what the whole loop would for its elements,
//! so splitting changes no result: only work with no reduction across the
//! cut (elementwise maps, per-row epilogues) goes through here.

use super::pool::OnPool;
use super::simd::widest;
use std::ops::Range;

/// The fewest elements a piece is cut down to: a simple vectorised loop
/// spends a few microseconds on 32k elements, about what a piece costs to
/// hand over when the other cores are asleep, so smaller tensors stay on
/// the calling thread.
const MIN_PIECE: usize = 32 * 1024;

/// Pieces per thread at most: more than one, so that a core slowed by
/// other load takes fewer of them.
const PIECES_PER_THREAD: usize = 4;

/// Operands that elementwise work walks in step, cut together at one index.
pub(crate) trait Lanes: Send + Sized {
    /// The first `mid` elements of every operand, and the rest.
    fn split_at(self, mid: usize) -> (Self, Self);
}

impl<T: Sync> Lanes for &[T] {
    fn split_at(self, mid: usize) -> (Self, Self) {
        <[T]>::split_at(self, mid)
    }
}

impl<T: Send> Lanes for &mut [T] {
    fn split_at(self, mid: usize) -> (Self, Self) {
        self.split_at_mut(mid)
    }
}

/// An operand that a rule may not have (optimizer state slots).
impl<L: Lanes> Lanes for Option<L> {
    fn split_at(self, mid: usize) -> (Self, Self) {
        match self {
            Some(l) => {
                let (a, b) = l.split_at(mid);
                (Some(a), Some(b))
            }
            None => (None, None),
        }
    }
}

/// The global indices of a piece, for work that depends on the position
/// (the dropout mask is drawn from the element's index).
impl Lanes for Range<usize> {
    fn split_at(self, mid: usize) -> (Self, Self) {
        (self.start..self.start + mid, self.start + mid..self.end)
    }
}

macro_rules! tuple_lanes {
    ($($name:ident),+) => {
        impl<$($name: Lanes),+> Lanes for ($($name,)+) {
            #[allow(non_snake_case)]
            fn split_at(self, mid: usize) -> (Self, Self) {
                let ($($name,)+) = self;
                $(let $name = $name.split_at(mid);)+
                (($($name.0,)+), ($($name.1,)+))
            }
        }
    };
}
tuple_lanes!(A, B);
tuple_lanes!(A, B, C);
tuple_lanes!(A, B, C, D);
tuple_lanes!(A, B, C, D, E);

/// Runs `f` on `lanes` (each operand `len` elements long), cut into pieces
/// of at least [`MIN_PIECE`] elements that the pool's threads share.
/// Cuts fall on multiples of `unit` (the row length, for work that indexes
/// by column). Each piece runs compiled for the widest vectors the CPU has
/// ([`widest`]).
///
/// Pass a `move` closure: scalars it borrowed instead would be reloaded per
/// element, as the compiler cannot tell that the loop's stores miss them, and
/// the loop would not vectorise. Mark it `#[inline(always)]`: it must be
/// inlined into each width's copy to be compiled at that width.
pub(crate) fn split<L: Lanes>(len: usize, unit: usize, lanes: L, f: impl Fn(L) + Sync) {
    let count = (len / MIN_PIECE).min(PIECES_PER_THREAD * rayon::current_num_threads());
    let size = len.div_ceil(count.max(1)).next_multiple_of(unit.max(1));
    if count <= 1 || size >= len {
        return widest(
            #[inline(always)]
            || f(lanes),
        );
    }
    // Pieces of `size` from the front, the rest last: cut as the pool
    // collects them, so the only allocation is the pool's list.
    let (mut rest, mut left) = (Some(lanes), len);
    let pieces = std::iter::from_fn(move || {
        let lanes = rest.take()?;
        if left <= size {
            return Some(lanes);
        }
        let (piece, tail) = lanes.split_at(size);
        (rest, left) = (Some(tail), left - size);
        Some(piece)
    });
    pieces.for_each_on_pool(
        #[inline(always)]
        |piece| {
            widest(
                #[inline(always)]
                || f(piece),
            )
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn pieces_cover_every_element_once_and_cut_on_rows() {
        let unit = 7;
        let len = unit * (5 * MIN_PIECE / unit + 3);
        let mut seen = vec![usize::MAX; len];
        let pieces = AtomicUsize::new(0);
        let lanes = (seen.as_mut_slice(), 0..len);
        split(len, unit, lanes, |(s, at): (&mut [usize], Range<usize>)| {
            assert_eq!(at.start % unit, 0, "a cut inside a row");
            assert_eq!(s.len(), at.len());
            pieces.fetch_add(1, Ordering::Relaxed);
            for (s, i) in s.iter_mut().zip(at) {
                assert_eq!(*s, usize::MAX, "element {i} visited twice");
                *s = i;
            }
        });
        assert!(seen.iter().enumerate().all(|(i, &s)| s == i));
        assert!(pieces.into_inner() > 1, "large enough to split");
    }
}
