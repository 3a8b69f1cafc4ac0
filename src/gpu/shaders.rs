//! Every shader the library builds, and the pieces it is composed of: the
//! one table of what goes into which WGSL module. A piece shared by several
//! shaders (the activations, the workgroup sum) exists once under
//! `shaders/` and is listed here wherever it is used.

use super::runtime::{Piece, Shader};
use crate::Activation;

/// The activation functions (`act_<name>`, `grad_<name>`) and their
/// generated dispatch, which the matmul epilogue, the activation kernels and
/// the losses call.
const ACTIVATIONS: [Piece; 2] = [
    Piece::File(include_str!("../../shaders/activation/activation.wgsl")),
    Piece::Generated(Activation::wgsl_dispatch),
];
/// The counter-based random draws (seed, step, element).
const RANDOM: Piece = Piece::File(include_str!("../../shaders/common/random.wgsl"));
/// A workgroup-wide reduction through workgroup memory.
const WORKGROUP_SUM: Piece = Piece::File(include_str!("../../shaders/common/workgroup_sum.wgsl"));

const TILE_REGISTERS: Piece = Piece::File(include_str!("../../shaders/matmul/tile_registers.wgsl"));
const TILE_LARGE: Piece = Piece::File(include_str!("../../shaders/matmul/tile_large.wgsl"));
const TILE_SMALL: Piece = Piece::File(include_str!("../../shaders/matmul/tile_small.wgsl"));
const MATMUL_COMMON: Piece = Piece::File(include_str!("../../shaders/matmul/common.wgsl"));
const SHARE_NONE: Piece = Piece::File(include_str!("../../shaders/matmul/share_none.wgsl"));
const SHARE_SUBGROUP: Piece = Piece::File(include_str!("../../shaders/matmul/share_subgroup.wgsl"));
const OPERANDS_SCALAR: Piece =
    Piece::File(include_str!("../../shaders/matmul/operands_scalar.wgsl"));
const OPERANDS_VEC4: Piece = Piece::File(include_str!("../../shaders/matmul/operands_vec4.wgsl"));
const LOAD_SCALAR: Piece = Piece::File(include_str!("../../shaders/matmul/tiled_load_scalar.wgsl"));
const LOAD_VEC4: Piece = Piece::File(include_str!("../../shaders/matmul/tiled_load_vec4.wgsl"));
const REGISTERS: Piece = Piece::File(include_str!("../../shaders/matmul/registers.wgsl"));
const VEC4: Piece = Piece::File(include_str!("../../shaders/matmul/vec4.wgsl"));
const CONV_IMPLICIT_PIECE: Piece = Piece::File(include_str!("../../shaders/conv/implicit.wgsl"));
const ROWS_SCALAR: Piece = Piece::File(include_str!("../../shaders/matmul/rows_scalar.wgsl"));
const VEC4_B: Piece = Piece::File(include_str!("../../shaders/matmul/vec4_b.wgsl"));
const TILED: Piece = Piece::File(include_str!("../../shaders/matmul/tiled.wgsl"));

/// A matmul shader: the activations, a tile piece, the shared parameters
/// and epilogue, then a kernel (with its operand piece, and its load or
/// share piece). Trusted:
/// every load is clamped and every store guarded (see `Shader::trusted`).
macro_rules! matmul {
    ($name:literal: $tile:expr, $($kernel:expr),+) => {
        Shader {
            name: $name,
            parts: &[ACTIVATIONS[0], ACTIVATIONS[1], $tile, MATMUL_COMMON, $($kernel),+],
            trusted: true,
        }
    };
}

pub(crate) static MATMUL: Shader = matmul!("matmul": TILE_REGISTERS, OPERANDS_SCALAR, REGISTERS);
pub(crate) static MATMUL_VEC4_B: Shader =
    matmul!("matmul_vec4_b": TILE_REGISTERS, SHARE_NONE, ROWS_SCALAR, VEC4_B);
pub(crate) static MATMUL_VEC4_B_SHARED: Shader =
    matmul!("matmul_vec4_b_shared": TILE_REGISTERS, SHARE_SUBGROUP, ROWS_SCALAR, VEC4_B);
/// The convolution's products with the columns gathered as they are read;
/// with rows of A shared through subgroups, as `MATMUL_VEC4_SHARED`.
pub(crate) static CONV_IMPLICIT: Shader =
    matmul!("conv_implicit": TILE_REGISTERS, SHARE_NONE, ROWS_SCALAR, CONV_IMPLICIT_PIECE);
pub(crate) static CONV_IMPLICIT_SHARED: Shader = matmul!("conv_implicit_shared": TILE_REGISTERS, SHARE_SUBGROUP, ROWS_SCALAR, CONV_IMPLICIT_PIECE);
pub(crate) static MATMUL_VEC4: Shader =
    matmul!("matmul_vec4": TILE_REGISTERS, OPERANDS_VEC4, SHARE_NONE, VEC4);
pub(crate) static MATMUL_VEC4_SHARED: Shader =
    matmul!("matmul_vec4_shared": TILE_REGISTERS, OPERANDS_VEC4, SHARE_SUBGROUP, VEC4);
pub(crate) static MATMUL_TILED_LARGE: Shader =
    matmul!("matmul_tiled_large": TILE_LARGE, OPERANDS_SCALAR, LOAD_SCALAR, TILED);
pub(crate) static MATMUL_TILED_LARGE_VEC4: Shader =
    matmul!("matmul_tiled_large_vec4": TILE_LARGE, OPERANDS_VEC4, LOAD_VEC4, TILED);
pub(crate) static MATMUL_TILED_SMALL: Shader =
    matmul!("matmul_tiled_small": TILE_SMALL, OPERANDS_SCALAR, LOAD_SCALAR, TILED);
pub(crate) static MATMUL_TILED_SMALL_VEC4: Shader =
    matmul!("matmul_tiled_small_vec4": TILE_SMALL, OPERANDS_VEC4, LOAD_VEC4, TILED);

pub(crate) static ACTIVATION: Shader = Shader {
    name: "activation",
    parts: &[
        ACTIVATIONS[0],
        ACTIVATIONS[1],
        Piece::File(include_str!("../../shaders/activation/kernels.wgsl")),
    ],
    trusted: false,
};
pub(crate) static ELEMENTWISE: Shader = Shader {
    name: "elementwise",
    parts: &[Piece::File(include_str!(
        "../../shaders/elementwise/elementwise.wgsl"
    ))],
    trusted: false,
};
pub(crate) static GATHER: Shader = Shader {
    name: "gather",
    parts: &[Piece::File(include_str!(
        "../../shaders/gather/gather.wgsl"
    ))],
    trusted: false,
};
pub(crate) static CONV: Shader = Shader {
    name: "conv",
    parts: &[Piece::File(include_str!("../../shaders/conv/conv.wgsl"))],
    trusted: false,
};
pub(crate) static DROPOUT: Shader = Shader {
    name: "dropout",
    parts: &[
        RANDOM,
        Piece::File(include_str!("../../shaders/dropout/dropout.wgsl")),
    ],
    trusted: false,
};
pub(crate) static NOISE: Shader = Shader {
    name: "noise",
    parts: &[
        RANDOM,
        Piece::File(include_str!("../../shaders/noise/noise.wgsl")),
    ],
    trusted: false,
};
pub(crate) static AUGMENT: Shader = Shader {
    name: "augment",
    parts: &[
        RANDOM,
        Piece::File(include_str!("../../shaders/augment/augment.wgsl")),
    ],
    trusted: false,
};
pub(crate) static BATCH_NORM: Shader = Shader {
    name: "batch_norm",
    parts: &[Piece::File(include_str!(
        "../../shaders/batch_norm/batch_norm.wgsl"
    ))],
    trusted: false,
};
pub(crate) static REDUCE: Shader = Shader {
    name: "reduce",
    parts: &[
        WORKGROUP_SUM,
        Piece::File(include_str!("../../shaders/reduce/reduce.wgsl")),
    ],
    trusted: false,
};
pub(crate) static MAX_NORM: Shader = Shader {
    name: "max_norm",
    parts: &[
        WORKGROUP_SUM,
        Piece::File(include_str!("../../shaders/max_norm/max_norm.wgsl")),
    ],
    trusted: false,
};
pub(crate) static RBF: Shader = Shader {
    name: "rbf",
    parts: &[Piece::File(include_str!("../../shaders/rbf/rbf.wgsl"))],
    trusted: false,
};
pub(crate) static LOSS: Shader = Shader {
    name: "loss",
    parts: &[
        ACTIVATIONS[0],
        ACTIVATIONS[1],
        Piece::Generated(crate::ops::loss::wgsl_constants),
        WORKGROUP_SUM,
        Piece::File(include_str!("../../shaders/loss/loss.wgsl")),
    ],
    trusted: false,
};
pub(crate) static OPTIMIZER: Shader = Shader {
    name: "optimizer",
    parts: &[
        Piece::Generated(crate::ops::optimizer::wgsl_constants),
        WORKGROUP_SUM,
        Piece::File(include_str!("../../shaders/optimizer/update.wgsl")),
    ],
    trusted: false,
};

/// Every matmul shader: what the autotune cache's shader hash covers.
pub(crate) static MATMUL_SHADERS: [&Shader; 9] = [
    &MATMUL,
    &MATMUL_VEC4_B,
    &MATMUL_VEC4_B_SHARED,
    &MATMUL_VEC4,
    &MATMUL_VEC4_SHARED,
    &MATMUL_TILED_LARGE,
    &MATMUL_TILED_LARGE_VEC4,
    &MATMUL_TILED_SMALL,
    &MATMUL_TILED_SMALL_VEC4,
];

/// Every shader the library builds, as `(name, full source)`, for validation in tests.
pub fn shader_sources() -> Vec<(&'static str, String)> {
    let others = [
        &ACTIVATION,
        &ELEMENTWISE,
        &GATHER,
        &REDUCE,
        &MAX_NORM,
        &RBF,
        &LOSS,
        &DROPOUT,
        &NOISE,
        &AUGMENT,
        &BATCH_NORM,
        &CONV,
        &CONV_IMPLICIT,
        &CONV_IMPLICIT_SHARED,
        &OPTIMIZER,
    ];
    MATMUL_SHADERS
        .iter()
        .chain(others.iter())
        .map(|s| (s.name, s.source()))
        .collect()
}
