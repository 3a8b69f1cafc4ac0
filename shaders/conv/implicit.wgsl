// The lowered convolution's products with the columns never written
// (implicit GEMM), a register matmul kernel (see matmul/common.wgsl) whose
// op(B) is gathered from the images as it is read:
//
// - forward (TB off): z = W·cols, op(B)[t, q] = cols[t, q];
// - weight gradient (TB on): ∂W = δz·colsᵀ, op(B)[q, t] = cols[t, q];
//
// where cols[t, q] = x[sample, FIRST + c, y, x] (0 in the padding) is what
// conv.wgsl's im2col would write for tap t = (c, ty, tx) of the block and
// output position q = (sample, oy, ox). A (not transposed) and the k step
// come from matmul/rows_scalar.wgsl, as for matmul/vec4_b.wgsl.
//
// - input gradient of a stride-1 convolution (FLIP_A on): the forward
//   product of the transposed convolution, δx = W'·cols(δ), where the
//   images are δ (NCHW), the padding is (K−1)·D − P on each axis (negative
//   where P is larger), and W'[c, (o, t)] = W[o, c, K·K−1−t]: A is W itself,
//   each row read with the taps reversed and the output channels strided.
//
// Each element of cols is the sum of a tap's part and a position's part
// (`Part`): the invocation computes the part of each of its columns once,
// the part of each k once per step (the same for all its lanes), and per
// element adds them and checks the bounds.

@group(0) @binding(2) var<storage, read> images: array<f32>;

// The geometry, as pipeline constants (one pipeline per layer shape), so
// that the divisions compile to multiplies.
override KH: u32 = 1u;     // kernel height and width
override KW: u32 = 1u;
override OW: u32 = 1u;     // output width
override OHW: u32 = 1u;    // output positions per plane
override IH: u32 = 1u;     // input height and width
override IW: u32 = 1u;
override IMAGE: u32 = 1u;  // values per sample: channels·IH·IW
override FIRST: u32 = 0u;  // first input channel of the block
override SY: u32 = 1u;     // stride, padding, dilation
override SX: u32 = 1u;
override PY: i32 = 0;     // negative in the transposed convolution
override PX: i32 = 0;
override DY: u32 = 1u;
override DX: u32 = 1u;
override FLIP_A: bool = false; // the input gradient's W' (see above)

// A tap's or a position's share of an image address: a base offset and the
// row and column it moves to (negative: into the top or left padding).
struct Part {
    base: u32,
    y: i32,
    x: i32,
}

fn tap(t: u32) -> Part {
    let c = t / (KH * KW);
    let r = t % (KH * KW);
    return Part(c * IH * IW, i32((r / KW) * DY), i32((r % KW) * DX));
}

fn position(q: u32) -> Part {
    let s = q / OHW;
    let r = q % OHW;
    return Part(s * IMAGE + FIRST * IH * IW, i32((r / OW) * SY) - PY, i32((r % OW) * SX) - PX);
}

// The part of op(B)'s column j, and of its row kk.
fn column_part(j: u32) -> Part {
    if (TB) {
        return tap(j);
    }
    return position(j);
}

fn k_part(kk: u32) -> Part {
    if (TB) {
        return position(kk);
    }
    return tap(kk);
}

// Where op(A)'s element kk of a row is, from the row's start: W' row c
// starts at W[0, c, 0] (a_off = c·KH·KW) and its element (o, t) is
// W[o, c, KH·KW−1−t], o·p.m·KH·KW + KH·KW−1−t further on.
fn a_k(kk: u32) -> u32 {
    if (FLIP_A) {
        let t = kk % (KH * KW);
        return (kk - t) * p.m + KH * KW - 1u - t;
    }
    return kk;
}

// cols at the tap and position whose parts are u and v.
fn column_value(u: Part, v: Part) -> f32 {
    let y = u.y + v.y;
    let x = u.x + v.x;
    // A negative coordinate wraps to a large u32: one comparison per axis.
    let inside = u32(y) < IH && u32(x) < IW;
    let i = select(0u, u.base + v.base + u32(y) * IW + u32(x), inside);
    return select(0.0, images[i], inside);
}

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row0 = gid.y * TM;
    let col0 = gid.x * TN;
    // Lanes sharing A stay while their row of lanes (their subgroup) does.
    if (row0 >= p.m || (!SHARE_A && col0 >= p.n)) {
        return;
    }
    let lane = li % WG_X;
    set_rows(row0, select(p.k, KH * KW, FLIP_A));
    // Columns are positions in the forward pass, taps in the weight gradient.
    var column: array<Part, TN>;
    for (var c = 0u; c < TN; c++) {
        column[c] = column_part(min(col0 + c, p.n - 1u));
    }

    let ks = k_range(gid.z);
    for (var kk = ks.x; kk < ks.y; kk++) {
        let part = k_part(kk);
        for (var c = 0u; c < TN; c++) {
            bv[c / 4u][c % 4u] = column_value(part, column[c]);
        }
        multiply_row(a_k(kk), lane);
    }
    store_tile(gid.z, row0, col0);
}
