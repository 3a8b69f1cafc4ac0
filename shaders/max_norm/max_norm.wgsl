// The max-norm constraint (torch.renorm(w, 2, 0, max_norm)): every row of
// a rows × cols weight (one unit's incoming weights) whose L2 norm exceeds
// max_norm is scaled by max_norm / (norm + 1e-7). One workgroup per row
// (rows wid.x, wid.x + workgroups, … past the dispatch limit): each invocation sums the squares of columns lid, lid + WG, …, the
// workgroup sum combines them in a fixed order, then every invocation
// scales its columns.

// Mirrors MaxNormParams in src/ops/max_norm/gpu.rs field for field.
struct Params {
    rows: u32,
    cols: u32,
    max_norm: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;

const WG: u32 = 64u;

fn combine(a: f32, b: f32) -> f32 {
    return a + b;
}

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    // The loop bound is uniform across the workgroup, as the barriers need.
    for (var row = wid.x; row < p.rows; row += groups.x) {
        let base = row * p.cols;
        var squares = 0.0;
        for (var j = lid.x; j < p.cols; j += WG) {
            let v = w[base + j];
            squares += v * v;
        }
        let norm = sqrt(workgroup_reduce(lid.x, squares));
        // Every invocation has read the scratch total before the next row
        // overwrites it.
        workgroupBarrier();
        if (norm > p.max_norm) {
            let scale = p.max_norm / (norm + 1e-7);
            for (var j = lid.x; j < p.cols; j += WG) {
                w[base + j] *= scale;
            }
        }
    }
}
