// out = act(op(A)·op(B) + bias) ⊙ gate_act'(gate), op = transpose when TA / TB: what the
// matmul kernels share (parameters, overrides, tile shape, epilogue).
// matmul.wgsl reads A and B as scalars and takes any shape; matmul/vec4.wgsl
// reads them as vec4 and needs the contiguous dimensions to be multiples of 4;
// matmul/tiled.wgsl stages them in workgroup memory, for real GPUs. Each of
// them can split k into slices (workgroup z: k_range(z)) summed by
// split_k_sum, so that a small output with a long k still fills the device.
//
// Each invocation accumulates a TM × TN block in registers. The register
// kernels use no workgroup memory: on lavapipe (a CPU) barriers and
// shared-memory staging cost more than the re-reads they save (LAVAPIPE.md).
// Every loop has a constant trip count so the driver unrolls it and keeps the
// tiles in registers. Products are accumulated with `+=`, not fma(): llvmpipe
// runs fma() markedly slower (PERFORMANCE.md), and separate rounding matches
// the CPU reference's order of operations.
//
// Out-of-range rows and columns are clamped to the last valid one instead of
// branched on, so every load is in bounds without conditionals and the shader
// module can be built without runtime bounds checks; the store is guarded.

// Mirrors MatmulParams in src/gpu/mod.rs field for field.
struct Params {
    m: u32,
    n: u32,
    k: u32,
    act_param: f32,
    // With split k: the k range of each z slice (k otherwise).
    k_chunk: u32,
    gate_param: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// The input z of the activation whose backward pass is fused (HAS_GATE).
@group(0) @binding(5) var<storage, read> gate: array<f32>;

override TA: bool = false;
override TB: bool = false;
override ACT: u32 = 0u;
override HAS_BIAS: bool = false;
override HAS_GATE: bool = false;
override GATE_ACT: u32 = 0u;

// The tile constants (TM, TN4, WG_X, WG_Y, BK) come from the matmul_tile_*.wgsl
// piece placed before this file; src/gpu/mod.rs keeps its table of tiles in
// step with them (a unit test checks).
const TN: u32 = TN4 * 4u; // columns per invocation

// One invocation's TM × TN block of op(A)·op(B), row-major in vec4 column
// groups. A module-scope variable rather than an argument of store_tile:
// llvmpipe copies an array argument through memory, which made the epilogue
// cost 10× the whole product at k = 10.
var<private> acc: array<vec4<f32>, TM * TN4>;

// The fused epilogue of output (i, j): bias, activation, then the gate's
// activation derivative.
fn epilogue(z: f32, i: u32, j: u32) -> f32 {
    var v = z;
    if (HAS_BIAS) {
        v += bias[j];
    }
    v = activate(v, ACT, p.act_param);
    if (HAS_GATE) {
        v *= activate_grad(gate[i * p.n + j], GATE_ACT, p.gate_param);
    }
    return v;
}

// The k range [x, y) of split-k slice z: all of k when the product is not
// split (k_chunk = k, one slice).
fn k_range(z: u32) -> vec2<u32> {
    let begin = z * p.k_chunk;
    return vec2(begin, min(p.k, begin + p.k_chunk));
}

// Applies the epilogue to `acc` and stores the rows and columns that exist in
// slice z of `out` (z > 0 only for the raw partial sums of a split product).
fn store_tile(z: u32, row0: u32, col0: u32) {
    let slice = z * p.m * p.n;
    for (var r = 0u; r < TM; r++) {
        let i = row0 + r;
        if (i >= p.m) {
            break;
        }
        for (var c = 0u; c < TN; c++) {
            let j = col0 + c;
            if (j < p.n) {
                out[slice + i * p.n + j] = epilogue(acc[r * TN4 + c / 4u][c % 4u], i, j);
            }
        }
    }
}

// Split k: slice z of a split product covers k_range(z) and writes its raw
// partial sums (HAS_BIAS off, the identity activation) to slice z of a
// scratch buffer bound as `out`. This pass, with the scratch bound as `a`
// (read through the operand piece's partial()), adds the slices in order and
// applies the epilogue: out[i] = epilogue(Σ_z partials[z·m·n + i]). In
// order, so the result depends on the sizes alone.
@compute @workgroup_size(256)
fn split_k_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    let mn = p.m * p.n;
    if (i >= mn) {
        return;
    }
    let slices = (p.k + p.k_chunk - 1u) / p.k_chunk;
    var s = 0.0;
    for (var z = 0u; z < slices; z++) {
        s += partial(z * mn + i);
    }
    out[i] = epilogue(s, i / p.n, i % p.n);
}
