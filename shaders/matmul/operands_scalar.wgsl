// Operand piece of the matmul kernels that read A and B one float at a time
// (matmul/registers.wgsl, matmul/tiled_load_scalar.wgsl): any shape.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;

// Element i of the split-k scratch buffer, bound as `a` (see split_k_sum).
fn partial(i: u32) -> f32 {
    return a[i];
}
