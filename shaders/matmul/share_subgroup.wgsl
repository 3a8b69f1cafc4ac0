// Template piece of matmul/vec4.wgsl and matmul/vec4_b.wgsl for adapters whose subgroups are exactly
// the WG_X = 8 invocations of one row of the workgroup (lavapipe: 8 SIMD
// lanes): all eight need the same TM = 8 rows of A, so each lane loads one
// of them and the others take it from its register. On lavapipe, where every
// buffer read is a per-lane loop, that removes 7 of 8 reads of A (+25–50%).
const SHARE_A: bool = true;
const_assert TM == 8u && WG_X == 8u;

fn from_lane(v: vec4<f32>, lane: u32) -> vec4<f32> {
    return subgroupShuffle(v, lane);
}

fn from_lane_scalar(v: f32, lane: u32) -> f32 {
    return subgroupShuffle(v, lane);
}
