//! The CPU backend's dense backward pass: both products and the bias
//! gradient's column sums as one job on the pool (`gemm::jointly`), or,
//! where this machine's library does not run in pieces, one after another.

use super::{in_turn, input_spec, DenseGrads};
use crate::backend::CpuTensor;
use crate::ops::matmul::cpu::epilogue;
use crate::ops::matmul::gemm::{jointly, Epilogue, Product};
use crate::ops::reduce::cpu::column_sums;
use crate::{Cpu, Result};
use num_traits::Float;
use std::sync::Mutex;

/// Columns of the bias gradient one piece of the job sums: eight pieces
/// for a 512-wide layer, so that both cores share them as they finish
/// their products.
const SUM_COLUMNS: usize = 64;

pub(crate) fn dense_backward<T: Float + std::fmt::Debug + Send + Sync + 'static>(
    g: &CpuTensor<T>,
    x: &CpuTensor<T>,
    w: &CpuTensor<T>,
    grads: DenseGrads<'_, CpuTensor<T>>,
) -> Result<()> {
    let DenseGrads {
        weight,
        mut bias,
        mut input,
    } = grads;
    let (rows, outs, ins) = (g.rows, g.cols, x.cols);
    let gate = input.as_ref().and_then(|(_, gate)| *gate);
    let input_spec = input_spec(gate);
    let gated = epilogue(&input_spec, ins);
    let gated = gated.as_ref().map(|e| e as Epilogue<'_, T>);
    let mut products = vec![Product {
        mnk: (outs, ins, rows),
        a: (&g.data[..], true),
        b: (&x.data[..], false),
        c: &mut weight.data[..],
        epilogue: None,
    }];
    if let Some((input, _)) = &mut input {
        products.push(Product {
            mnk: (rows, ins, outs),
            a: (&g.data[..], false),
            b: (&w.data[..], false),
            c: &mut input.data[..],
            epilogue: gated,
        });
    }
    // The column sums in blocks of columns, as `sum_rows` sums them.
    let blocks: Vec<Mutex<(usize, &mut [T])>> = match &mut bias {
        Some(bias) => bias
            .data
            .chunks_mut(SUM_COLUMNS)
            .enumerate()
            .map(|(i, block)| Mutex::new((i * SUM_COLUMNS, block)))
            .collect(),
        None => Vec::new(),
    };
    let sum_block = |i: usize| {
        let mut guard = blocks[i].lock().unwrap_or_else(|e| e.into_inner());
        let (first, ref mut sums) = *guard;
        column_sums(&g.data, outs, first, sums);
    };
    if jointly(products, (blocks.len(), &sum_block)) {
        return Ok(());
    }
    drop(blocks);
    let grads = DenseGrads {
        weight,
        bias,
        input,
    };
    in_turn(&Cpu::new(), g, x, w, grads)
}
