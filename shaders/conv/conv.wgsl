// The convolution and pooling primitives (src/ops/conv): one invocation per
// output element, each a gather, so that no two invocations write the same
// word and the order of additions is the CPU twin's (src/ops/conv/cpu.rs).
// Images are NCHW rows; grids may spill into y (Context::linear_groups).

// Mirrors ConvParams in src/ops/conv/gpu.rs field for field.
struct Params {
    n: u32,          // elements this pass writes
    channels: u32,   // of the whole image
    height: u32,
    width: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    dh: u32,
    dw: u32,
    oh: u32,         // output height and width of the window
    ow: u32,
    first: u32,      // the channel block
    count: u32,
    positions: u32,  // channels_last / channels_first: values per channel
    average: u32,    // pool: 0 max, 1 average
    winners: u32,    // pool: 1 when the max's winners are saved / read
    columns: u32,    // im2col, col2im, channel rows: N·P, the columns of a row
    bias: u32,       // channel_planes: 1 when a bias is added
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// The divisors of the index arithmetic, as pipeline constants (one
// pipeline per layer shape): a division by a constant compiles to a
// multiply and shift, where a division by a uniform is a real division per
// invocation (and on a CPU adapter, per SIMD lane). Each equals the Params
// field of the same name; entries that do not use one leave it at 1.
override KH: u32 = 1u;        // kernel height
override KW: u32 = 1u;        // kernel width
override OW: u32 = 1u;        // output width
override OHW: u32 = 1u;       // output positions per plane
override COUNT: u32 = 1u;     // channels in the block
override IW: u32 = 1u;        // input width
override PLANE: u32 = 1u;     // values per channel: the input's height·width (the positions, for the layout passes)
override STRIDE_Y: u32 = 1u;
override STRIDE_X: u32 = 1u;  // window_of divides by the strides

const WG: u32 = 256u;

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WG;
}

// The input coordinate tap `t` of output `o` reads along an axis, or -1 in
// the padding.
fn source(o: u32, t: u32, stride: u32, pad: u32, dil: u32, size: u32) -> i32 {
    let i = i32(o * stride + t * dil) - i32(pad);
    return select(-1, i, i >= 0 && i < i32(size));
}

// The output coordinate whose window reads input `i` through tap `t`, or -1.
fn window_of(i: u32, t: u32, stride: u32, pad: u32, dil: u32, outs: u32) -> i32 {
    let d = i32(i + pad) - i32(t * dil);
    if (d < 0 || u32(d) % stride != 0u) {
        return -1;
    }
    let o = u32(d) / stride;
    return select(-1, i32(o), o < outs);
}

// ---- im2col: cols[(c·KH + ty)·KW + tx, (n·OH + y)·OW + x] = x[n, first + c, iy, ix]
// The columns transposed, one row per tap. Each invocation writes one
// output line (OW values) of one tap of one sample: e runs over (sample,
// row, output line), so the index arithmetic is paid once per line, not
// per value (on a CPU adapter that arithmetic, not the memory traffic,
// was the cost).
@group(0) @binding(1) var<storage, read> images: array<f32>;
@group(0) @binding(2) var<storage, read_write> cols: array<f32>;

@compute @workgroup_size(WG)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = index(gid, groups);
    if (e >= p.n) {
        return;
    }
    let taps = KH * KW;
    let oh = OHW / OW;
    let per_sample = COUNT * taps * oh;
    let sample = e / per_sample;
    let row = (e % per_sample) / oh;
    let y = e % oh;
    let c = p.first + row / taps;
    let tap = row % taps;
    let at = row * p.columns + (sample * oh + y) * OW;
    let iy = source(y, tap / KW, p.sh, p.ph, p.dh, p.height);
    if (iy < 0) {
        for (var x = 0u; x < OW; x++) {
            cols[at + x] = 0.0;
        }
        return;
    }
    let line = ((sample * p.channels + c) * p.height + u32(iy)) * p.width;
    // The tap reads ix = x·sw + tx·dw − pw, zero outside the image.
    let shift = i32((tap % KW) * p.dw) - i32(p.pw);
    for (var x = 0u; x < OW; x++) {
        let ix = i32(x * p.sw) + shift;
        var v = 0.0;
        if (ix >= 0 && ix < i32(p.width)) {
            v = images[line + u32(ix)];
        }
        cols[at + x] = v;
    }
}

// ---- col2im: grad[n, first + c, iy, ix] = Σ over the windows reading it -------
@group(0) @binding(1) var<storage, read> cols_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad_images: array<f32>;

@compute @workgroup_size(WG)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = index(gid, groups);
    if (e >= p.n) {
        return;
    }
    // e runs over the block's channels of every sample.
    let plane = PLANE;
    let block = COUNT * plane;
    let sample = e / block;
    let c = (e % block) / plane;
    let iy = (e % plane) / IW;
    let ix = e % IW;
    var s = 0.0;
    for (var ty = 0u; ty < KH; ty++) {
        let y = window_of(iy, ty, STRIDE_Y, p.ph, p.dh, p.oh);
        if (y < 0) {
            continue;
        }
        for (var tx = 0u; tx < KW; tx++) {
            let x = window_of(ix, tx, STRIDE_X, p.pw, p.dw, OW);
            if (x < 0) {
                continue;
            }
            let column = (sample * p.oh + u32(y)) * OW + u32(x);
            s += cols_in[((c * KH + ty) * KW + tx) * p.columns + column];
        }
    }
    grad_images[(sample * p.channels + p.first + c) * plane + iy * p.width + ix] = s;
}

// ---- channels_last: out[n·P + q, c] = x[n, (first + c)·P + q] ---------------
@group(0) @binding(1) var<storage, read> planar: array<f32>;
@group(0) @binding(2) var<storage, read_write> interleaved: array<f32>;

@compute @workgroup_size(WG)
fn channels_last(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = index(gid, groups);
    if (e >= p.n) {
        return;
    }
    let r = e / COUNT;
    let c = e % COUNT;
    let sample = r / PLANE;
    let q = r % PLANE;
    interleaved[e] = planar[(sample * p.channels + p.first + c) * PLANE + q];
}

// Element e of a block of channels in NCHW order, (sample · count + c) · P + q,
// as (sample, c, q).
fn block_element(e: u32) -> vec3<u32> {
    return vec3<u32>(e / (PLANE * COUNT), (e / PLANE) % COUNT, e % PLANE);
}

// Where channel `first + c` of a sample holds position q in NCHW rows.
fn nchw(sample: u32, c: u32, q: u32) -> u32 {
    return (sample * p.channels + p.first + c) * PLANE + q;
}

// ---- channels_first: out[n, (first + c)·P + q] = z[n·P + q, c] --------------
@group(0) @binding(1) var<storage, read> interleaved_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> planar_out: array<f32>;

@compute @workgroup_size(WG)
fn channels_first(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = index(gid, groups);
    if (e >= p.n) {
        return;
    }
    let at = block_element(e);
    planar_out[nchw(at.x, at.y, at.z)] = interleaved_in[(at.x * PLANE + at.z) * COUNT + at.y];
}

// ---- channel_rows: rows[c, n·P + q] = x[n, (first + c)·P + q] -------------
// The block's channels as rows, every sample's positions side by side: the
// layout of a convolution's product W·cols.
@group(0) @binding(1) var<storage, read> planes_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> channel_rows_out: array<f32>;

@compute @workgroup_size(WG)
fn channel_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = index(gid, groups);
    if (e >= p.n) {
        return;
    }
    let at = block_element(e);
    channel_rows_out[at.y * p.columns + at.x * PLANE + at.z] = planes_in[nchw(at.x, at.y, at.z)];
}

// ---- channel_planes: out[n, (first + c)·P + q] = rows[c, n·P + q] + b[c] -
@group(0) @binding(1) var<storage, read> channel_rows_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> planes_out: array<f32>;
@group(0) @binding(3) var<storage, read> row_bias: array<f32>;

@compute @workgroup_size(WG)
fn channel_planes(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = index(gid, groups);
    if (e >= p.n) {
        return;
    }
    let at = block_element(e);
    var v = channel_rows_in[at.y * p.columns + at.x * PLANE + at.z];
    if (p.bias != 0u) {
        v += row_bias[at.y];
    }
    planes_out[nchw(at.x, at.y, at.z)] = v;
}

// ---- pool: max (and its winner, an index in the plane) or average ----------
@group(0) @binding(1) var<storage, read> pool_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> pooled: array<f32>;
@group(0) @binding(3) var<storage, read_write> winners: array<f32>;

@compute @workgroup_size(WG)
fn pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = index(gid, groups);
    if (e >= p.n) {
        return;
    }
    let image = e / OHW;                 // sample · C + channel
    let y = (e % OHW) / OW;
    let x = e % OW;
    let base = image * PLANE;
    var best = bitcast<f32>(0xff800000u); // −∞ (a literal would not be finite)
    var at = -1.0;
    var sum = 0.0;
    for (var ty = 0u; ty < p.kh; ty++) {
        let iy = source(y, ty, p.sh, p.ph, p.dh, p.height);
        if (iy < 0) {
            continue;
        }
        for (var tx = 0u; tx < p.kw; tx++) {
            let ix = source(x, tx, p.sw, p.pw, p.dw, p.width);
            if (ix < 0) {
                continue;
            }
            let v = pool_in[base + u32(iy) * p.width + u32(ix)];
            sum += v;
            // PyTorch's rule: a larger value or a NaN takes the place.
            if (v > best || v != v) {
                best = v;
                at = f32(u32(iy) * p.width + u32(ix));
            }
        }
    }
    if (p.average == 1u) {
        pooled[e] = sum / f32(p.kh * p.kw);
    } else {
        pooled[e] = best;
    }
    if (p.winners == 1u) {
        winners[e] = at;
    }
}

// ---- pool_backward: grad_in[n, c, iy, ix] = Σ over the windows it won / fed --
@group(0) @binding(1) var<storage, read> grad_pooled: array<f32>;
@group(0) @binding(2) var<storage, read> winners_in: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_pool_in: array<f32>;

@compute @workgroup_size(WG)
fn pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let e = index(gid, groups);
    if (e >= p.n) {
        return;
    }
    let image = e / PLANE;
    let iy = (e % PLANE) / IW;
    let ix = e % IW;
    let me = f32(iy * IW + ix);
    let divisor = f32(p.kh * p.kw);
    var s = 0.0;
    for (var ty = 0u; ty < p.kh; ty++) {
        let y = window_of(iy, ty, STRIDE_Y, p.ph, p.dh, p.oh);
        if (y < 0) {
            continue;
        }
        for (var tx = 0u; tx < p.kw; tx++) {
            let x = window_of(ix, tx, STRIDE_X, p.pw, p.dw, OW);
            if (x < 0) {
                continue;
            }
            let o = (image * p.oh + u32(y)) * OW + u32(x);
            if (p.average == 1u) {
                s += grad_pooled[o] / divisor;
            } else if (winners_in[o] == me) {
                s += grad_pooled[o];
            }
        }
    }
    grad_pool_in[e] = s;
}
