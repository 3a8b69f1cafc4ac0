//! The counter-based generator every random draw of the library uses:
//! a draw is a pure function of (seed, step, element), so the CPU and the
//! GPU (shaders/common/random.wgsl, the same arithmetic) draw the same
//! numbers, and so does any number of replicas or a resumed run.

/// lowbias32 (C. Wellons): a 32-bit integer mixer with full avalanche.
pub(crate) fn mix(x: u32) -> u32 {
    let mut h = x;
    h ^= h >> 16;
    h = h.wrapping_mul(0x7feb_352d);
    h ^= h >> 15;
    h = h.wrapping_mul(0x846c_a68b);
    h ^= h >> 16;
    h
}

/// The part of a draw shared by every element of one (seed, step): a
/// mask's key, computed once per mask.
pub(crate) fn key(seed: u64, step: u64) -> u32 {
    mix(mix(mix(mix(seed as u32) ^ (seed >> 32) as u32) ^ step as u32) ^ (step >> 32) as u32)
}

/// A uniform draw in [0, 1) (24 bits) for element `i` under `key`.
pub(crate) fn uniform(key: u32, i: u32) -> f32 {
    (mix(key ^ i) >> 8) as f32 * (1.0 / 16_777_216.0)
}
