// The counter-based generator every random draw uses: a draw is a pure
// function of (seed, step, element). src/ops/random.rs computes the same.

// lowbias32 (Chris Wellons): a full-avalanche 32-bit mixer.
fn mix(x: u32) -> u32 {
    var h = x;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

// The part of a draw shared by every element of one (seed, step).
fn draw_key(seed_lo: u32, seed_hi: u32, step_lo: u32, step_hi: u32) -> u32 {
    return mix(mix(mix(mix(seed_lo) ^ seed_hi) ^ step_lo) ^ step_hi);
}

// A uniform draw in [0, 1) (24 bits) for element i under `key`.
fn uniform01(key: u32, i: u32) -> f32 {
    return f32(mix(key ^ i) >> 8u) * (1.0 / 16777216.0);
}
