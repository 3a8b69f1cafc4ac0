// Tile piece for matmul_tiled.wgsl on products too small to give the large
// tile enough workgroups: 64 × 64 outputs per workgroup of 256, 4 × 4 per
// invocation, k staged 16 deep.
const TM: u32 = 4u;
const TN4: u32 = 1u;
const WG_X: u32 = 16u;
const WG_Y: u32 = 16u;
const BK: u32 = 16u;
