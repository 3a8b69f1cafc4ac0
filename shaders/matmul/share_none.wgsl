// Template piece of matmul/vec4.wgsl and matmul/vec4_b.wgsl without subgroups: every invocation
// reads its own rows of A. from_lane and from_lane_scalar are never called (SHARE_A is false); it
// exists so that the kernel compiles without the subgroup feature.
const SHARE_A: bool = false;

fn from_lane(v: vec4<f32>, lane: u32) -> vec4<f32> {
    return v;
}

fn from_lane_scalar(v: f32, lane: u32) -> f32 {
    return v;
}
