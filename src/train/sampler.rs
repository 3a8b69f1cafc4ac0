//! How an epoch's minibatches are drawn (seed 001, "shuffling examples"):
//! a fresh random order, minibatches as class-diverse as the data allows,
//! or a preference for the samples with the larger errors. Each sampler
//! makes an order of the resident data set's rows from the epoch's seed
//! (so a run reproduces, and data-parallel replicas agree), uploaded as
//! one index vector per epoch; every minibatch is then a gather on the
//! device. The losses the loss-weighted sampler uses are computed on the
//! device during training ([`Backend::loss_per_row`](crate::Backend::loss_per_row))
//! and read back once per epoch.

use crate::{Error, Result};
use rand::distr::{weighted::WeightedIndex, Distribution};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

/// The order of each epoch's samples.
///
/// ```
/// use wgtrain::train::{Sampler, TrainConfig};
/// let config = TrainConfig { sampler: Sampler::LossWeighted { cap: 4.0 }, ..TrainConfig::default() };
/// assert!(Sampler::LossWeighted { cap: 0.5 }.validate().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampler {
    /// Every sample once, in a new random order each epoch (or the data
    /// set's order when [`TrainConfig::shuffle`](super::TrainConfig::shuffle)
    /// is off).
    Shuffle,
    /// Every sample once, each class shuffled and then interleaved evenly,
    /// so that every minibatch holds each class in its share of the data
    /// set to within one sample ("mini-batches should contain examples from
    /// different classes"). Needs class labels.
    Stratified,
    /// As many draws as samples, with replacement, sample `i` drawn with
    /// probability ∝ its last-seen training loss `Lᵢ` clamped into
    /// `[L̄ / cap, cap · L̄]` (`L̄` their mean): hard examples come up to
    /// `cap²` times as often as easy ones, and no outlier more ("prefer
    /// samples likely to generate larger errors … beware of outliers").
    /// The first epoch, before any loss is seen, is a plain shuffle; a
    /// resumed run starts from plain weights again.
    LossWeighted {
        /// How far from the mean a loss may pull its weight (≥ 1; 1 draws
        /// uniformly with replacement).
        cap: f64,
    },
}

impl Sampler {
    /// Checks the settings: the loss-weighted cap must be finite and ≥ 1.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Sampler::LossWeighted { cap } if !(cap >= 1.0 && cap.is_finite()) => {
                Err(Error::InvalidParameter {
                    name: "sampler cap",
                    value: cap,
                    allowed: "finite and ≥ 1 (1 weighs every sample alike)",
                })
            }
            _ => Ok(()),
        }
    }
}

/// Each class's rows shuffled, then merged by their place in the class
/// (`(k + uᶜ) / nᶜ` for the k-th of class c, `uᶜ` a random phase): every
/// window of the order holds each class in proportion.
pub(crate) fn stratified_order(labels: &[u32], rng: &mut StdRng) -> Vec<u32> {
    let classes = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0);
    let mut by_class: Vec<Vec<u32>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l as usize].push(i as u32);
    }
    let mut keyed: Vec<(f64, usize, u32)> = Vec::with_capacity(labels.len());
    for (c, rows) in by_class.iter_mut().enumerate() {
        rows.shuffle(rng);
        let phase: f64 = rng.random();
        let n = rows.len() as f64;
        keyed.extend(
            rows.iter()
                .enumerate()
                .map(|(k, &r)| ((k as f64 + phase) / n, c, r)),
        );
    }
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    keyed.into_iter().map(|(_, _, r)| r).collect()
}

/// `losses.len()` draws with replacement, weights the losses clamped into
/// `[L̄ / cap, cap · L̄]`; uniform when every loss is 0 (or none is finite).
pub(crate) fn weighted_draws(losses: &[f64], cap: f64, rng: &mut StdRng) -> Vec<u32> {
    let n = losses.len();
    let mean = losses.iter().sum::<f64>() / n as f64;
    let weights: Vec<f64> = if mean > 0.0 && mean.is_finite() {
        losses
            .iter()
            .map(|&l| {
                if l.is_finite() {
                    l.clamp(mean / cap, mean * cap)
                } else {
                    mean * cap
                }
            })
            .collect()
    } else {
        vec![1.0; n]
    };
    let pick = WeightedIndex::new(&weights).expect("positive finite weights");
    (0..n).map(|_| pick.sample(rng) as u32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// 3 classes of 60, 30 and 10 rows: every window of 10 consecutive
    /// samples holds 6, 3 and 1 of them to within one; each sample once;
    /// the same seed draws the same order.
    #[test]
    fn stratified_batches_hold_every_class_in_proportion() {
        let labels: Vec<u32> = (0..100)
            .map(|i| match i % 10 {
                0..=5 => 0,
                6..=8 => 1,
                _ => 2,
            })
            .collect();
        let mut shuffled = labels.clone();
        shuffled.shuffle(&mut StdRng::seed_from_u64(9));
        let order = stratified_order(&shuffled, &mut StdRng::seed_from_u64(1));
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<u32>>());
        for start in 0..=90 {
            let mut counts = [0i32; 3];
            for &r in &order[start..start + 10] {
                counts[shuffled[r as usize] as usize] += 1;
            }
            for (c, want) in [6, 3, 1].into_iter().enumerate() {
                assert!((counts[c] - want).abs() <= 1, "window {start}: {counts:?}");
            }
        }
        assert_eq!(
            order,
            stratified_order(&shuffled, &mut StdRng::seed_from_u64(1))
        );
        assert_ne!(
            order,
            stratified_order(&shuffled, &mut StdRng::seed_from_u64(2))
        );
    }

    /// One sample with 100× the others' loss is drawn at most cap·L̄/Σw of
    /// the time (the cap holds the outlier back); a sample with zero loss
    /// still comes up at the floor L̄/cap.
    #[test]
    fn loss_weights_are_capped_both_ways() {
        let n = 1000;
        let mut losses = vec![1.0; n];
        losses[0] = 100.0;
        losses[1] = 0.0;
        let cap = 3.0;
        let mean = losses.iter().sum::<f64>() / n as f64;
        let total = mean * cap + mean / cap + (n - 2) as f64;
        let (mut hard, mut easy) = (0usize, 0usize);
        let epochs = 400;
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..epochs {
            for d in weighted_draws(&losses, cap, &mut rng) {
                hard += (d == 0) as usize;
                easy += (d == 1) as usize;
            }
        }
        let draws = (epochs * n) as f64;
        let (p_hard, p_easy) = (mean * cap / total, mean / cap / total);
        // Binomial counts: within 5 standard deviations.
        for (count, p) in [(hard, p_hard), (easy, p_easy)] {
            let sd = (draws * p * (1.0 - p)).sqrt();
            assert!(
                (count as f64 - draws * p).abs() < 5.0 * sd,
                "{count} draws, expected {:.0} ± {sd:.0}",
                draws * p
            );
        }
        // Without a loss seen, draws are uniform; the seed fixes them.
        let uniform = weighted_draws(&[0.0; 50], cap, &mut StdRng::seed_from_u64(4));
        assert_eq!(
            uniform,
            weighted_draws(&[0.0; 50], cap, &mut StdRng::seed_from_u64(4))
        );
        assert!(uniform.iter().all(|&d| d < 50));
    }
}
