// out = act(op(A)·op(B) + bias) ⊙ gate_act'(gate), op = transpose when TA / TB: what the
// matmul kernels share (parameters, overrides, tile shape, epilogue).
// matmul.wgsl reads A and B as scalars and takes any shape; matmul/vec4.wgsl
// reads them as vec4 and needs the contiguous dimensions to be multiples of 4;
// matmul/tiled.wgsl stages them in workgroup memory, for real GPUs.
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
    // matmul/tiled.wgsl with split k: the k range of each z slice (k otherwise).
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

// Applies bias and activation to `acc` and stores the rows and columns that exist.
fn store_tile(row0: u32, col0: u32) {
    for (var r = 0u; r < TM; r++) {
        let i = row0 + r;
        if (i >= p.m) {
            break;
        }
        for (var c = 0u; c < TN; c++) {
            let j = col0 + c;
            if (j < p.n) {
                out[i * p.n + j] = epilogue(acc[r * TN4 + c / 4u][c % 4u], i, j);
            }
        }
    }
}
