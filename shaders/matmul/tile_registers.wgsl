// Tile piece for the register kernels (matmul.wgsl, matmul/vec4.wgsl), sized
// for lavapipe: WG_X is its SIMD width, so the invocations of one SIMD step
// share their rows. More than 16 vec4 accumulators (TM·TN4) no longer unroll
// on llvmpipe and run 3–4× slower.
const TM: u32 = 8u;   // rows per invocation
const TN4: u32 = 2u;  // vec4 column groups per invocation
const WG_X: u32 = 8u; // invocations along columns
const WG_Y: u32 = 4u; // invocations along rows
const BK: u32 = 1u;   // unused: the register kernels stage nothing
