//! The GPU matmul: three kernel families (register tiles, register tiles
//! sharing reads through subgroups, workgroup-memory tiles with a planned
//! split of k), their tiles, and the dispatch with its parameter struct.

use super::MatmulSpec;
use crate::backend::Activation;
use crate::gpu::runtime::{Bind, Buf, Kernel, Shader};
use crate::gpu::shaders::{
    self, MATMUL, MATMUL_VEC4, MATMUL_VEC4_B, MATMUL_VEC4_B_SHARED, MATMUL_VEC4_SHARED,
};
use crate::gpu::{Gpu, GpuTensor, WG};
use crate::Result;

/// Output rows × columns one workgroup of a matmul kernel computes:
/// `(TM·WG_Y, 4·TN4·WG_X)` of its shaders/matmul/tile_*.wgsl piece, and the
/// k depth `BK` it stages (unit-tested against the sources).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MatmulTile {
    pub(crate) rows: u32,
    pub(crate) cols: u32,
    pub(crate) depth: u32,
}

/// The register kernels' tile (shaders/matmul/tile_registers.wgsl).
pub(crate) const MATMUL_TILE: MatmulTile = MatmulTile {
    rows: 32,
    cols: 64,
    depth: 1,
};
/// The subgroup size `MatmulKernel::RegistersShared` needs: WG_X of
/// shaders/matmul/tile_registers.wgsl, the invocations that share rows of A.
pub(crate) const MATMUL_SHARE_LANES: u32 = 8;
/// Fewest workgroups for which [`MatmulKernel::Workgroup`] takes the large
/// tile: below it the small tile's larger count of workgroups wins (on an
/// H100, 132 compute units: 1536² runs 22% faster small, 2048² the same).
pub(crate) const LARGE_TILE_MIN_GROUPS: u32 = 256;
/// Workgroups a product on the small tile should have: fewer, and k is split
/// into as many slices as bring it up to this (on an H100, a 256×512 output
/// with k = 784 runs 1.9× faster in 4 slices).
pub(crate) const SPLIT_K_TARGET_GROUPS: u32 = 128;
/// Fewest k per slice of a split product.
pub(crate) const MIN_K_CHUNK: u32 = 64;
/// Most k per slice on the small tile: longer, and the product runs slower
/// than split (on an H100, 256×4096·4096×4096: 23 TFLOP/s whole, 28 in two
/// slices).
pub(crate) const MAX_K_CHUNK: u32 = 2048;
/// Most k slices of one product.
pub(crate) const MAX_SPLIT_K: u32 = 16;
/// Workgroups a product on the register kernels should have: fewer, and k
/// is split into as many slices as bring it up to this. lavapipe runs one
/// workgroup per thread at a time, one thread per core.
pub(crate) const REGISTER_SPLIT_TARGET_GROUPS: u32 = 16;
/// Fewest k per slice of a split product on the register kernels: shorter,
/// and the partial sums cost more than the threads gain.
pub(crate) const REGISTER_MIN_K_CHUNK: u32 = 1024;

/// Which family of WGSL kernels [`Gpu`]'s matmul runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernel {
    /// Register tiles, no workgroup memory, vec4 reads where the shape
    /// allows: fast on CPU adapters such as lavapipe, where barriers are
    /// expensive (see PERFORMANCE.md).
    Registers,
    /// As `Registers`, but the 8 invocations of a subgroup each read one of
    /// the 8 rows of A they all need and share it by subgroup shuffle: the
    /// fastest on lavapipe. Needs subgroups of exactly 8 consecutive
    /// invocations; elsewhere it runs as `Registers`.
    RegistersShared,
    /// Slices of A and B staged in workgroup memory between barriers, with
    /// the next slice prefetched into registers: the kernel for real GPUs.
    /// The tile and any split of k are chosen per product ([`TiledPlan`]).
    Workgroup,
}

/// The two tiles of [`MatmulKernel::Workgroup`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TiledTile {
    /// 128 × 128 outputs per workgroup of 256, 8 × 8 per invocation.
    Large,
    /// 64 × 64 outputs per workgroup of 128, 8 × 4 per invocation.
    Small,
}

impl TiledTile {
    /// The kernel of this tile; `vec4`: the one that reads A and B four
    /// floats at a time (shaders/matmul/tiled_load_vec4.wgsl).
    pub(crate) fn shader(self, vec4: bool) -> &'static Shader {
        match (self, vec4) {
            (TiledTile::Large, false) => &shaders::MATMUL_TILED_LARGE,
            (TiledTile::Large, true) => &shaders::MATMUL_TILED_LARGE_VEC4,
            (TiledTile::Small, false) => &shaders::MATMUL_TILED_SMALL,
            (TiledTile::Small, true) => &shaders::MATMUL_TILED_SMALL_VEC4,
        }
    }

    pub(crate) fn tile(self) -> MatmulTile {
        match self {
            TiledTile::Large => MatmulTile {
                rows: 128,
                cols: 128,
                depth: 8,
            },
            TiledTile::Small => MatmulTile {
                rows: 64,
                cols: 64,
                depth: 16,
            },
        }
    }
}

/// How [`MatmulKernel::Workgroup`] runs one product `m×k · k×n`: which tile,
/// and into how many k slices the product is split. A split product writes
/// each slice's partial sums to a scratch buffer and a second pass adds them
/// in order and applies bias and activation, so small outputs with a long k
/// still fill a large GPU.
///
/// ```
/// use wgtrain::{TiledPlan, TiledTile};
/// // A 2048² product fills a large GPU with 128 × 128 tiles alone.
/// let plan = TiledPlan::for_shape(2048, 2048, 2048);
/// assert_eq!((plan.tile, plan.split_k), (TiledTile::Large, 1));
/// // A 256×512 output with k = 784 takes the small tile and splits k.
/// let plan = TiledPlan::for_shape(256, 512, 784);
/// assert_eq!(plan.tile, TiledTile::Small);
/// assert!(plan.split_k > 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TiledPlan {
    /// The workgroup tile.
    pub tile: TiledTile,
    /// Number of k slices (1: no split). The slices are rounded to whole
    /// staged depths, so fewer may run.
    pub split_k: u32,
    /// Read A and B four floats at a time where the shape allows (k a
    /// multiple of 4, and m for Aᵀ, n for B); false forces one at a time.
    pub vec4: bool,
}

impl TiledPlan {
    /// The plan [`Gpu`] uses unless one is set with [`Gpu::set_tiled_plan`]:
    /// the large tile when it gives at least 256 workgroups, else the small
    /// tile, with k split (in slices of at least 64) by as many times as it
    /// has fewer than 128 workgroups, and into slices of at most 2048, up to
    /// 16 slices. The numbers were measured on an H100 (PERFORMANCE.md).
    pub fn for_shape(m: usize, n: usize, k: usize) -> TiledPlan {
        let groups = |tile: TiledTile| {
            let t = tile.tile();
            (m as u32).div_ceil(t.rows) * (n as u32).div_ceil(t.cols)
        };
        if groups(TiledTile::Large) >= LARGE_TILE_MIN_GROUPS {
            return TiledPlan {
                tile: TiledTile::Large,
                split_k: 1,
                vec4: true,
            };
        }
        let wanted = (SPLIT_K_TARGET_GROUPS / groups(TiledTile::Small))
            .max((k as u32).div_ceil(MAX_K_CHUNK));
        let most = (k as u32 / MIN_K_CHUNK).min(MAX_SPLIT_K);
        TiledPlan {
            tile: TiledTile::Small,
            split_k: wanted.min(most).max(1),
            vec4: true,
        }
    }
}

/// The matmul kernels' uniform parameters: `Params` of
/// shaders/matmul/common.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    act_param: f32,
    /// The k range of each slice of a split product (k otherwise).
    k_chunk: u32,
    gate_param: f32,
}

pub(crate) fn matmul(
    gpu: &Gpu,
    a: &GpuTensor,
    b: &GpuTensor,
    out: &mut GpuTensor,
    spec: MatmulSpec<'_, GpuTensor>,
) -> Result<()> {
    let (m, n, k) = spec.dims(a, b);
    let flags = [
        ("TA", spec.transpose_a as u32 as f64),
        ("TB", spec.transpose_b as u32 as f64),
    ];
    let gate_act = spec.gate.map_or(Activation::Identity, |(act, _)| act);
    let constants = [
        flags[0],
        flags[1],
        ("ACT", spec.act.code() as f64),
        ("HAS_BIAS", spec.bias.is_some() as u32 as f64),
        ("HAS_GATE", spec.gate.is_some() as u32 as f64),
        ("GATE_ACT", gate_act.code() as f64),
    ];
    let bias = spec.bias.map_or(&*gpu.dummy, |t| &t.buf);
    let gate = spec.gate.map_or(&*gpu.dummy, |(_, t)| &t.buf);
    // The vec4 kernels read op(A) and op(B) four floats at a time along
    // their contiguous dimension: k for A and Bᵀ, m for Aᵀ, n for B.
    let vec4 = k % 4 == 0 && (!spec.transpose_a || m % 4 == 0) && (spec.transpose_b || n % 4 == 0);

    let settings = *gpu.settings();
    let (shader, tile, split_k) = if settings.matmul_kernel == MatmulKernel::Workgroup {
        let plan = settings
            .tiled_plan
            .unwrap_or_else(|| TiledPlan::for_shape(m, n, k));
        (
            plan.tile.shader(vec4 && plan.vec4),
            plan.tile.tile(),
            plan.split_k,
        )
    } else {
        // Where k is not a multiple of 4 but B's rows are whole vec4, B
        // alone is read four floats at a time.
        let vec4_b = !spec.transpose_b && n % 4 == 0;
        let shared =
            gpu.shares_subgroups() && settings.matmul_kernel == MatmulKernel::RegistersShared;
        let shader = match (vec4, vec4_b, shared) {
            (true, _, true) => &MATMUL_VEC4_SHARED,
            (true, _, false) => &MATMUL_VEC4,
            (false, true, true) => &MATMUL_VEC4_B_SHARED,
            (false, true, false) => &MATMUL_VEC4_B,
            (false, false, _) => &MATMUL,
        };
        (shader, MATMUL_TILE, register_split_k(m, n, k))
    };
    let product = Product {
        shader,
        tile,
        split_k,
        dims: (m, n, k),
        constants: &constants,
        partial_constants: &flags,
        act_param: spec.act.param(),
        gate_param: gate_act.param(),
    };
    run_product(gpu, &product, [&a.buf, &b.buf, bias, gate], &out.buf)
}

/// One product `op(A)·op(B)` of `m×k · k×n` on a kernel built from the
/// matmul pieces: one of [`matmul`]'s, or the convolution's implicit one
/// (shaders/conv/implicit.wgsl).
pub(crate) struct Product<'a> {
    pub(crate) shader: &'static Shader,
    pub(crate) tile: MatmulTile,
    /// k slices wanted (1: no split).
    pub(crate) split_k: u32,
    /// `(m, n, k)`.
    pub(crate) dims: (usize, usize, usize),
    /// The pipeline constants of `main` and `split_k_sum`.
    pub(crate) constants: &'a [(&'static str, f64)],
    /// Those of `main` when it writes a slice's raw partial sums: without
    /// the epilogue's.
    pub(crate) partial_constants: &'a [(&'static str, f64)],
    pub(crate) act_param: f32,
    pub(crate) gate_param: f32,
}

/// Runs `product` on `[A, B, bias, gate]` into `out`: one dispatch, or,
/// split, one that writes each k slice's partial sums to a scratch buffer
/// and one that adds them and applies the epilogue.
pub(crate) fn run_product(
    gpu: &Gpu,
    product: &Product<'_>,
    [a, b, bias, gate]: [&Buf; 4],
    out: &Buf,
) -> Result<()> {
    let (m, n, k) = product.dims;
    // Whole vec4 per slice, for the vec4 kernels.
    let (chunk, slices) = k_chunks(k, product.split_k, product.tile.depth.max(4));
    let params = MatmulParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        act_param: product.act_param,
        k_chunk: chunk,
        gate_param: product.gate_param,
    };
    let groups = [
        (n as u32).div_ceil(product.tile.cols),
        (m as u32).div_ceil(product.tile.rows),
        slices,
    ];
    let kernel = |entry, constants| Kernel {
        shader: product.shader,
        entry,
        constants,
    };
    if slices == 1 {
        let binds = [
            Bind::read(a),
            Bind::read(b),
            Bind::read(bias),
            Bind::write(out),
            Bind::read(gate),
        ];
        return gpu
            .ctx
            .dispatch(&kernel("main", product.constants), &params, &binds, groups);
    }
    // Pass 1 writes raw partial sums, one m×n slice per k chunk. Whole
    // vec4, so that the vec4 kernels' second pass can bind it as such.
    let floats = (slices as usize * m * n).next_multiple_of(4);
    let scratch = gpu.ctx.alloc((floats * 4) as u64, "split-k partial sums")?;
    let binds = [
        Bind::read(a),
        Bind::read(b),
        Bind::read(&gpu.dummy),
        Bind::write(&scratch),
        Bind::read(&gpu.dummy),
    ];
    let partial = kernel("main", product.partial_constants);
    gpu.ctx.dispatch(&partial, &params, &binds, groups)?;
    // Pass 2 adds them and applies the epilogue.
    let binds = [
        Bind::read(&scratch),
        Bind::read(&gpu.dummy),
        Bind::read(bias),
        Bind::write(out),
        Bind::read(gate),
    ];
    let sum = kernel("split_k_sum", product.constants);
    gpu.ctx
        .dispatch(&sum, &params, &binds, gpu.ctx.linear_groups(m * n, WG))
}

/// Into how many k slices the register kernels split `m×k · k×n`: as many
/// as bring an output of fewer than [`REGISTER_SPLIT_TARGET_GROUPS`]
/// workgroups up to it, in slices of at least [`REGISTER_MIN_K_CHUNK`].
/// Without it, a convolution's weight gradient (LeNet's first: 6×25 outputs
/// over k = 50,176) runs as one workgroup on one core of lavapipe.
pub(crate) fn register_split_k(m: usize, n: usize, k: usize) -> u32 {
    let groups = (n as u32).div_ceil(MATMUL_TILE.cols) * (m as u32).div_ceil(MATMUL_TILE.rows);
    let wanted = REGISTER_SPLIT_TARGET_GROUPS / groups;
    let most = (k as u32 / REGISTER_MIN_K_CHUNK).min(MAX_SPLIT_K);
    wanted.min(most).max(1)
}

/// k per slice when k is split `split_k` ways in whole multiples of
/// `depth`, and the number of slices that covers k.
fn k_chunks(k: usize, split_k: u32, depth: u32) -> (u32, u32) {
    let k = k as u32;
    let chunk = k.div_ceil(split_k.max(1)).div_ceil(depth).max(1) * depth;
    (chunk, k.div_ceil(chunk).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_tiles_match_the_shaders() {
        let constant = |shader: &Shader, name: &str| -> u32 {
            let source = shader.source();
            let line = source
                .lines()
                .find(|l| l.starts_with(&format!("const {name}: u32 = ")))
                .unwrap();
            line.split('=')
                .nth(1)
                .unwrap()
                .trim()
                .split('u')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let tile_of = |shader: &Shader| MatmulTile {
            rows: constant(shader, "TM") * constant(shader, "WG_Y"),
            cols: 4 * constant(shader, "TN4") * constant(shader, "WG_X"),
            depth: constant(shader, "BK"),
        };
        for shader in [
            &MATMUL,
            &MATMUL_VEC4_B,
            &MATMUL_VEC4_B_SHARED,
            &MATMUL_VEC4,
            &MATMUL_VEC4_SHARED,
        ] {
            assert_eq!(MATMUL_TILE, tile_of(shader), "{}", shader.name);
        }
        for tile in [TiledTile::Large, TiledTile::Small] {
            for vec4 in [false, true] {
                assert_eq!(tile.tile(), tile_of(tile.shader(vec4)), "{tile:?}");
            }
        }
        assert_eq!(MATMUL_SHARE_LANES, constant(&MATMUL_VEC4_SHARED, "WG_X"));
    }

    #[test]
    fn split_k_chunks_cover_k_in_whole_staged_depths() {
        for depth in [
            TiledTile::Large.tile().depth,
            TiledTile::Small.tile().depth,
            4,
        ] {
            for k in [1, 7, 16, 33, 257, 784, 4096, 50176] {
                for split_k in 1..=MAX_SPLIT_K {
                    let (chunk, slices) = k_chunks(k, split_k, depth);
                    assert_eq!(chunk % depth, 0);
                    assert!(slices >= 1 && slices <= split_k);
                    assert!((slices - 1) * chunk < k as u32 && slices * chunk >= k as u32);
                }
            }
        }
    }
}
