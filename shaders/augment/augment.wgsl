// Data augmentation (src/ops/augment): per sample, an elastic displacement
// field (noise from the counter-based generator, common/random.wgsl placed
// before this file, drawn once per cell, then smoothed by a Gaussian along
// rows, then columns) and a bilinear resampling through the host-drawn
// affine map, then contrast and brightness. src/ops/augment/cpu.rs computes the same, in the same order.

// Mirrors WarpParams in src/ops/augment/gpu.rs field for field.
struct Params {
    rows: u32,       // samples in the batch
    height: u32,
    width: u32,
    channels: u32,
    radius: u32,     // taps on each side of the smoothing's centre
    alpha: f32,      // elastic strength (0: no field)
    background: f32,
    n: u32,          // elements this pass writes
}

@group(0) @binding(0) var<uniform> p: Params;

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * 256u;
}

// ---- field_noise: uniform noise in [-1, 1) on rows and columns padded by
// radius, one draw per cell (the smoothing then reads each cell 2r + 1 times)
@group(0) @binding(1) var<storage, read> keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> noise: array<f32>;

@compute @workgroup_size(256)
fn field_noise(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = index(gid, groups);
    if (i >= p.n) {
        return;
    }
    // i = row · cells + cell, cell = (ey · (width + 2r) + ex) · 2 + comp
    let cells = (p.height + 2u * p.radius) * (p.width + 2u * p.radius) * 2u;
    let row = i / cells;
    noise[i] = uniform01(keys[row], i % cells) * 2.0 - 1.0;
}

// ---- field_rows: the noise smoothed along rows, on rows padded by radius ----
@group(0) @binding(1) var<storage, read> noise_in: array<f32>;
@group(0) @binding(2) var<storage, read> taps: array<f32>;
@group(0) @binding(3) var<storage, read_write> smoothed_rows: array<f32>;

@compute @workgroup_size(256)
fn field_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = index(gid, groups);
    if (i >= p.n) {
        return;
    }
    // i = ((row · (height + 2r) + ey) · width + x) · 2 + comp
    let comp = i % 2u;
    let x = (i / 2u) % p.width;
    let padded_rows = p.height + 2u * p.radius;
    let ey = (i / (2u * p.width)) % padded_rows;
    let row = i / (2u * p.width * padded_rows);
    let padded_width = p.width + 2u * p.radius;
    let base = row * padded_rows * padded_width * 2u;
    var s = 0.0;
    for (var k = 0u; k <= 2u * p.radius; k++) {
        s += taps[k] * noise_in[base + (ey * padded_width + x + k) * 2u + comp];
    }
    smoothed_rows[i] = s;
}

// ---- field_cols: then along columns, times alpha ---------------------------
@group(0) @binding(1) var<storage, read> rows_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> field: array<f32>;

@compute @workgroup_size(256)
fn field_cols(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = index(gid, groups);
    if (i >= p.n) {
        return;
    }
    // i = ((row · height + y) · width + x) · 2 + comp
    let comp = i % 2u;
    let x = (i / 2u) % p.width;
    let y = (i / (2u * p.width)) % p.height;
    let row = i / (2u * p.width * p.height);
    let padded_rows = p.height + 2u * p.radius;
    var s = 0.0;
    for (var k = 0u; k <= 2u * p.radius; k++) {
        s += taps[k] * rows_in[((row * padded_rows + y + k) * p.width + x) * 2u + comp];
    }
    field[i] = p.alpha * s;
}

// ---- warp: out = bilinear(x, M·(q − t) + c + d), then contrast about the background and brightness
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> transforms: array<f32>;   // rows × 8
@group(0) @binding(3) var<storage, read> field_in: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

fn pixel(base: u32, px: f32, py: f32) -> f32 {
    if (px >= 0.0 && py >= 0.0 && px < f32(p.width) && py < f32(p.height)) {
        return x[base + u32(py) * p.width + u32(px)];
    }
    return p.background;
}

@compute @workgroup_size(256)
fn warp(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = index(gid, groups);
    if (i >= p.n) {
        return;
    }
    let plane_len = p.height * p.width;
    let xx = i % p.width;
    let y = (i / p.width) % p.height;
    let plane = i / plane_len;              // row · channels + channel
    let row = plane / p.channels;
    let t = row * 8u;
    let cx = (f32(p.width) - 1.0) * 0.5;
    let cy = (f32(p.height) - 1.0) * 0.5;
    let qx = (f32(xx) - cx) - transforms[t + 4u];
    let qy = (f32(y) - cy) - transforms[t + 5u];
    var dx = 0.0;
    var dy = 0.0;
    if (p.alpha != 0.0) {
        let f = ((row * p.height + y) * p.width + xx) * 2u;
        dx = field_in[f];
        dy = field_in[f + 1u];
    }
    let sx = transforms[t] * qx + transforms[t + 1u] * qy + cx + dx;
    let sy = transforms[t + 2u] * qx + transforms[t + 3u] * qy + cy + dy;
    let x0 = floor(sx);
    let y0 = floor(sy);
    let fx = sx - x0;
    let fy = sy - y0;
    let base = plane * plane_len;
    let top = pixel(base, x0, y0) * (1.0 - fx) + pixel(base, x0 + 1.0, y0) * fx;
    let bottom = pixel(base, x0, y0 + 1.0) * (1.0 - fx) + pixel(base, x0 + 1.0, y0 + 1.0) * fx;
    let v = top * (1.0 - fy) + bottom * fy;
    // Contrast c about the background b, plus brightness: v·c + (b·(1 − c) + brightness),
    // which is v itself, exactly, for c = 1 and no brightness.
    let c = transforms[t + 6u];
    out[i] = v * c + (p.background * (1.0 - c) + transforms[t + 7u]);
}
