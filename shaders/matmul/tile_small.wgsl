// Tile piece for matmul/tiled.wgsl on products too small to give the large
// tile enough workgroups: 64 × 64 outputs per workgroup of 128, 8 × 4 per
// invocation, k staged 16 deep. On an H100 it beat a 4 × 4-per-invocation
// tile of 256 by up to 24%, and tied on the rest (PERFORMANCE.md).
const TM: u32 = 8u;
const TN4: u32 = 1u;
const WG_X: u32 = 16u;
const WG_Y: u32 = 8u;
const BK: u32 = 16u;
