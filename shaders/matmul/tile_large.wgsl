// Tile piece for matmul/tiled.wgsl on large products: 128 × 128 outputs per
// workgroup of 256, 8 × 8 per invocation, k staged 8 deep. Each k step reads
// 4 vec4 from workgroup memory for 64 multiply-adds.
const TM: u32 = 8u;
const TN4: u32 = 2u;
const WG_X: u32 = 16u;
const WG_Y: u32 = 16u;
const BK: u32 = 8u;
