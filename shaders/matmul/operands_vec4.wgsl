// Operand piece of the matmul kernels that read A and B four floats at a time
// along their contiguous dimension (matmul/vec4.wgsl,
// matmul/tiled_load_vec4.wgsl): k % 4 == 0, m % 4 == 0 for Aᵀ and n % 4 == 0
// for B (the host checks).

@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;

// Element i of the split-k scratch buffer, bound as `a` (see split_k_sum; the
// host rounds its size up to whole vec4).
fn partial(i: u32) -> f32 {
    return a[i / 4u][i % 4u];
}
