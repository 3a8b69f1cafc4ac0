// Template piece of matmul/vec4.wgsl without subgroups: every invocation
// reads its own rows of A. from_lane is never called (SHARE_A is false); it
// exists so that the kernel compiles without the subgroup feature.
const SHARE_A: bool = false;

fn from_lane(v: vec4<f32>, lane: u32) -> vec4<f32> {
    return v;
}
