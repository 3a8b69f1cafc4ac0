// out[i, :] = src[idx[offset + i], :], on raw 32-bit words. Grids may spill
// into y for large arrays (see Context::linear_groups).

// Mirrors GatherParams in src/ops/gather/gpu.rs field for field.
struct Params {
    rows: u32,    // output rows
    cols: u32,    // row width in 32-bit words
    offset: u32,  // first index used
}

@group(0) @binding(0) var<uniform> p: Params;

const WG: u32 = 256u;

// ---- gather_rows: out[i, :] = src[idx[offset + i], :], on raw 32-bit words -
// Words, not floats, so the same kernel gathers f32 features and u32 labels.
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read> idx: array<u32>;
@group(0) @binding(3) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(WG)
fn gather_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = gid.x + gid.y * groups.x * WG;
    if (e < p.rows * p.cols) {
        let row = e / p.cols;
        let col = e - row * p.cols;
        dst[e] = src[idx[p.offset + row] * p.cols + col];
    }
}
