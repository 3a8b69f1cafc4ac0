// The workgroup-memory matmul kernel (see matmul/common.wgsl), for real GPUs;
// any shape. Each workgroup computes a BM × BN block of the output: it stages
// BK-deep slices of its rows of op(A) and columns of op(B) in workgroup
// memory, so each element is read from the buffer once per workgroup rather
// than once per invocation, and prefetches the next slice into registers
// while it multiplies the current one. On lavapipe the barriers cost more
// than the reads they save (LAVAPIPE.md); there the register kernels run.
//
// Invocation (lx, ly) owns rows 4·ly + 4·WG_Y·g + q (g < TM/4, q < 4) and
// columns 4·lx + 4·WG_X·c + e (c < TN4, e < 4) of the block: its vec4 reads
// of a k row of the staged tiles are then consecutive across the lanes of a
// subgroup, which keeps workgroup-memory reads free of bank conflicts.
//
// Split k: workgroup z covers k in [z·k_chunk, (z + 1)·k_chunk) and, when
// there are several, writes its raw partial sums to slice z of a scratch
// buffer (bound as `out`, with HAS_BIAS off and the identity activation);
// split_k_sum (matmul/common.wgsl) then adds the slices in order and
// applies the epilogue.
//
// Preceded by a load piece (matmul/tiled_load_scalar.wgsl or
// matmul/tiled_load_vec4.wgsl) that reads A and B and fills the tiles.

const TM4: u32 = TM / 4u;
const BM: u32 = TM * WG_Y;            // rows per workgroup
const BN: u32 = TN * WG_X;            // columns per workgroup
const THREADS: u32 = WG_X * WG_Y;
// Row strides of the staged tiles, in vec4, padded by one vec4 so that the
// scalar stores of a k-contiguous operand (A, Bᵀ) spread over the banks.
const AS: u32 = BM / 4u + 1u;
const BS: u32 = BN / 4u + 1u;
const_assert TM % 4u == 0u && BK % 4u == 0u;

// a_tile[kk·AS + r/4][r%4] = op(A)[row r of the block, k0 + kk]; b_tile likewise by column.
var<workgroup> a_tile: array<vec4<f32>, BK * AS>;
var<workgroup> b_tile: array<vec4<f32>, BK * BS>;

@compute @workgroup_size(WG_X, WG_Y, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    // No early return: every invocation must reach the barriers.
    let wrow = wid.y * BM;
    let wcol = wid.x * BN;
    let k_begin = wid.z * p.k_chunk;
    let k_end = min(p.k, k_begin + p.k_chunk);

    fetch(wrow, wcol, k_begin, k_end, li);
    for (var k0 = k_begin; k0 < k_end; k0 += BK) {
        stage(li);
        workgroupBarrier();
        if (k0 + BK < k_end) {
            fetch(wrow, wcol, k0 + BK, k_end, li);
        }
        for (var kk = 0u; kk < BK; kk++) {
            var av: array<vec4<f32>, TM4>;
            for (var g = 0u; g < TM4; g++) {
                av[g] = a_tile[kk * AS + g * WG_Y + lid.y];
            }
            var bv: array<vec4<f32>, TN4>;
            for (var c = 0u; c < TN4; c++) {
                bv[c] = b_tile[kk * BS + c * WG_X + lid.x];
            }
            for (var g = 0u; g < TM4; g++) {
                for (var q = 0u; q < 4u; q++) {
                    for (var c = 0u; c < TN4; c++) {
                        acc[(4u * g + q) * TN4 + c] += av[g][q] * bv[c];
                    }
                }
            }
        }
        workgroupBarrier();
    }

    let slice = wid.z * p.m * p.n;
    for (var g = 0u; g < TM4; g++) {
        for (var q = 0u; q < 4u; q++) {
            let i = wrow + 4u * (g * WG_Y + lid.y) + q;
            for (var c = 0u; c < TN4; c++) {
                for (var e = 0u; e < 4u; e++) {
                    let j = wcol + 4u * (c * WG_X + lid.x) + e;
                    if (i < p.m && j < p.n) {
                        out[slice + i * p.n + j] = epilogue(acc[(4u * g + q) * TN4 + c][e], i, j);
                    }
                }
            }
        }
    }
}
