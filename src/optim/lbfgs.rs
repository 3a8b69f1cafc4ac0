//! L-BFGS, as `torch.optim.LBFGS` (seeds 000 and 001: quasi-Newton methods,
//! which work with full-batch gradients): the same defaults, the same
//! two-loop recursion, stopping rules and optional strong-Wolfe line search
//! (ported from PyTorch's `lbfgs.py`, itself from minFunc), on any
//! [`Backend`]. Every vector (the direction, the history of steps and
//! gradient changes) lives on the device as the model's parameters do: one
//! flat tensor where the backend makes one, else one tensor per parameter;
//! only the inner products and norms, scalars, are read back.
//!
//! A step takes a closure that re-evaluates the loss and leaves the
//! gradients in the model, as PyTorch's does; [`FullBatch`] makes one over
//! a whole data set.
//!
//! [`FullBatch`]: crate::train::FullBatch

use crate::backend::{Backend, Reduce, Shaped};
use crate::{Error, Model, Result};
use std::collections::VecDeque;

/// `torch.optim.LBFGS`'s settings, with its defaults.
///
/// ```
/// use wgtrain::optim::{Lbfgs, LineSearch};
/// use wgtrain::{Backend, Cpu, Init, Loss, Sequential, Target};
/// let cpu = Cpu::<f64>::new();
/// let mut model = Sequential::new(2).dense(1, Init::XavierUniform).build(&cpu, 0).unwrap();
/// // Least squares: y = 2·x₀ − x₁ + 0.5, exactly representable.
/// let rows = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, -1.0]];
/// let x = cpu.upload_f64(4, 2, rows.as_flattened()).unwrap();
/// let y = cpu.upload_f64(4, 1, &[2.5, -0.5, 1.5, 5.5]).unwrap();
/// let mut lbfgs = Lbfgs { line_search: Some(LineSearch::StrongWolfe), ..Lbfgs::default() }.build().unwrap();
/// for _ in 0..5 {
///     lbfgs.step(&mut model, |m| {
///         m.forward_backward(&x, Loss::SquaredError, Target::Dense(&y))?;
///         m.last_loss()
///     }).unwrap();
/// }
/// let (_, _, w) = model.parameter("0.weight").unwrap();
/// // The loss-change tolerance (1e-9) stops it within 1e-5 of the solution.
/// assert!((w[0] - 2.0).abs() < 1e-4 && (w[1] + 1.0).abs() < 1e-4);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lbfgs {
    /// Step length (1: the quasi-Newton step); default 1.
    pub lr: f64,
    /// Iterations per [`LbfgsOptimizer::step`]; default 20.
    pub max_iter: usize,
    /// Closure evaluations per step; default `max_iter · 5 / 4`.
    pub max_eval: Option<usize>,
    /// Stop when every gradient element is at most this in magnitude;
    /// default 1e-7.
    pub tolerance_grad: f64,
    /// Stop when the loss, or every element of the step, changes by less;
    /// default 1e-9.
    pub tolerance_change: f64,
    /// Pairs of (step, gradient change) kept; default 100. Each is two
    /// copies of the parameters.
    pub history_size: usize,
    /// `None` (PyTorch's default: the fixed step `lr`) or the strong-Wolfe
    /// line search.
    pub line_search: Option<LineSearch>,
}

/// The line search of [`Lbfgs`] (`line_search_fn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineSearch {
    /// `"strong_wolfe"`: a bracketing search with cubic interpolation that
    /// ends where the strong Wolfe conditions hold (c₁ = 1e-4, c₂ = 0.9).
    StrongWolfe,
}

impl Default for Lbfgs {
    fn default() -> Self {
        Lbfgs {
            lr: 1.0,
            max_iter: 20,
            max_eval: None,
            tolerance_grad: 1e-7,
            tolerance_change: 1e-9,
            history_size: 100,
            line_search: None,
        }
    }
}

impl Lbfgs {
    /// Checks the settings: `lr` ≥ 0 and finite, `max_iter`, `max_eval` and
    /// `history_size` at least 1, tolerances finite and ≥ 0.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, value: f64, allowed: &'static str| {
            Err(Error::InvalidParameter {
                name,
                value,
                allowed,
            })
        };
        if !(self.lr >= 0.0 && self.lr.is_finite()) {
            return bad("lr", self.lr, "finite and ≥ 0");
        }
        if self.max_iter == 0 {
            return bad("max_iter", 0.0, "at least 1");
        }
        if self.max_eval == Some(0) {
            return bad("max_eval", 0.0, "at least 1");
        }
        if self.history_size == 0 {
            return bad("history_size", 0.0, "at least 1");
        }
        for (name, v) in [
            ("tolerance_grad", self.tolerance_grad),
            ("tolerance_change", self.tolerance_change),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(name, v, "finite and ≥ 0");
            }
        }
        Ok(())
    }

    /// The optimizer, with no state yet.
    pub fn build<B: Backend>(self) -> Result<LbfgsOptimizer<B>> {
        self.validate()?;
        Ok(LbfgsOptimizer {
            config: self,
            memory: None,
            n_iter: 0,
            func_evals: 0,
        })
    }

    fn max_eval(&self) -> usize {
        self.max_eval.unwrap_or(self.max_iter * 5 / 4)
    }
}

/// A vector over all of a model's parameters, on its backend, laid out as
/// [`Model::whole_tensors`]: the flat tensor where the model has one, else
/// one tensor per parameter.
struct ParamVector<B: Backend>(Vec<B::Tensor>);

impl<B: Backend> ParamVector<B> {
    /// A copy of the model's gradients (`grads`) or parameters.
    fn of(b: &B, model: &mut Model<B>, grads: bool) -> Result<Self> {
        let tensors = model.whole_tensors(grads);
        let mut out = Vec::with_capacity(tensors.len());
        for t in tensors {
            let mut copy = b.zeros(t.rows(), t.cols())?;
            b.copy(t, &mut copy)?;
            out.push(copy);
        }
        Ok(ParamVector(out))
    }

    /// Overwrites `self` with the model's gradients or parameters.
    fn copy_from(&mut self, b: &B, model: &mut Model<B>, grads: bool) -> Result<()> {
        for (dst, src) in self.0.iter_mut().zip(model.whole_tensors(grads)) {
            b.copy(src, dst)?;
        }
        Ok(())
    }

    fn copy_from_vector(&mut self, b: &B, other: &Self) -> Result<()> {
        for (dst, src) in self.0.iter_mut().zip(&other.0) {
            b.copy(src, dst)?;
        }
        Ok(())
    }

    fn duplicate(&self, b: &B) -> Result<Self> {
        let mut out = Vec::with_capacity(self.0.len());
        for t in &self.0 {
            let mut copy = b.zeros(t.rows(), t.cols())?;
            b.copy(t, &mut copy)?;
            out.push(copy);
        }
        Ok(ParamVector(out))
    }

    /// `self ← α·self`.
    fn scale(&mut self, b: &B, alpha: f64) -> Result<()> {
        self.0.iter_mut().try_for_each(|t| b.scale(t, alpha))
    }

    /// `self ← self + α·x`.
    fn axpy(&mut self, b: &B, alpha: f64, x: &Self) -> Result<()> {
        for (y, x) in self.0.iter_mut().zip(&x.0) {
            b.axpy(alpha, x, y)?;
        }
        Ok(())
    }

    /// `self · other`, one readback.
    fn dot(&self, b: &B, other: &Self) -> Result<f64> {
        let mut acc = b.zeros(1, 1)?;
        for (x, y) in self.0.iter().zip(&other.0) {
            b.accumulate_dot(x, y, &mut acc)?;
        }
        Ok(b.download(&acc)?[0])
    }

    /// `max |x|` (`AbsMax`) or `Σ |x|` (`AbsSum`).
    fn norm(&self, b: &B, op: Reduce) -> Result<f64> {
        let mut out = 0.0f64;
        let mut r = b.zeros(1, 1)?;
        for t in &self.0 {
            b.reduce(op, t, &mut r)?;
            let v = b.download(&r)?[0];
            out = match op {
                Reduce::AbsMax if v.is_nan() => f64::NAN,
                Reduce::AbsMax => out.max(v),
                _ => out + v,
            };
        }
        Ok(out)
    }
}

/// The model's parameters `θ ← θ + t·d` (PyTorch's `_add_grad`).
fn add_to_params<B: Backend>(
    b: &B,
    model: &mut Model<B>,
    t: f64,
    d: &ParamVector<B>,
) -> Result<()> {
    for (p, d) in model.whole_tensors(false).into_iter().zip(&d.0) {
        b.axpy(t, d, p)?;
    }
    Ok(())
}

/// What L-BFGS carries from one step to the next.
struct Memory<B: Backend> {
    d: ParamVector<B>,
    t: f64,
    /// Gradient changes y and steps s, oldest first, with ρ = 1/(y·s).
    old_dirs: VecDeque<ParamVector<B>>,
    old_stps: VecDeque<ParamVector<B>>,
    ro: VecDeque<f64>,
    h_diag: f64,
    prev_flat_grad: ParamVector<B>,
    prev_loss: f64,
}

/// [`Lbfgs`] with its state: call [`LbfgsOptimizer::step`] with a closure
/// as PyTorch's `optimizer.step(closure)`.
pub struct LbfgsOptimizer<B: Backend> {
    config: Lbfgs,
    memory: Option<Memory<B>>,
    /// Iterations and closure evaluations over all steps (PyTorch's
    /// `state["n_iter"]` and `state["func_evals"]`).
    n_iter: usize,
    func_evals: usize,
}

impl<B: Backend> LbfgsOptimizer<B> {
    /// The settings.
    pub fn config(&self) -> &Lbfgs {
        &self.config
    }

    /// Iterations taken over all steps so far.
    pub fn iterations(&self) -> usize {
        self.n_iter
    }

    /// Closure evaluations over all steps so far.
    pub fn evaluations(&self) -> usize {
        self.func_evals
    }

    /// Up to `max_iter` L-BFGS iterations; returns the loss the first
    /// closure call gave (PyTorch's `orig_loss`). `closure` must evaluate
    /// the loss at the model's current parameters and leave its gradients
    /// in the model (e.g. `forward_backward`, or [`FullBatch`] over a data
    /// set). A non-finite loss or gradient is an error, not a step.
    ///
    /// [`FullBatch`]: crate::train::FullBatch
    pub fn step(
        &mut self,
        model: &mut Model<B>,
        mut closure: impl FnMut(&mut Model<B>) -> Result<f64>,
    ) -> Result<f64> {
        let b = model.backend().clone();
        let c = self.config;
        let max_eval = c.max_eval();
        let mut evaluate = |model: &mut Model<B>| -> Result<f64> {
            let loss = closure(model)?;
            if !loss.is_finite() {
                return Err(Error::NonFinite {
                    what: "the L-BFGS closure's loss".into(),
                    index: 0,
                    value: loss,
                });
            }
            Ok(loss)
        };
        let orig_loss = evaluate(model)?;
        let mut loss = orig_loss;
        let mut current_evals = 1;
        self.func_evals += 1;
        let mut flat_grad = ParamVector::of(&b, model, true)?;
        let mut opt_cond = flat_grad.norm(&b, Reduce::AbsMax)? <= c.tolerance_grad;
        if opt_cond {
            return Ok(orig_loss);
        }
        let mut n_iter = 0;
        while n_iter < c.max_iter {
            n_iter += 1;
            self.n_iter += 1;
            // The direction: steepest descent first, then the two-loop
            // recursion over the history.
            let memory = match self.memory.take() {
                None => {
                    let mut d = flat_grad.duplicate(&b)?;
                    d.scale(&b, -1.0)?;
                    Memory {
                        d,
                        t: 0.0,
                        old_dirs: VecDeque::new(),
                        old_stps: VecDeque::new(),
                        ro: VecDeque::new(),
                        h_diag: 1.0,
                        prev_flat_grad: flat_grad.duplicate(&b)?,
                        prev_loss: loss,
                    }
                }
                Some(mut m) => {
                    // y = g − g_prev and s = t·d join the history when the
                    // curvature y·s is positive (the oldest pair leaves).
                    let mut y = flat_grad.duplicate(&b)?;
                    y.axpy(&b, -1.0, &m.prev_flat_grad)?;
                    let mut s = m.d.duplicate(&b)?;
                    s.scale(&b, m.t)?;
                    let ys = y.dot(&b, &s)?;
                    if ys > 1e-10 {
                        if m.old_dirs.len() == c.history_size {
                            m.old_dirs.pop_front();
                            m.old_stps.pop_front();
                            m.ro.pop_front();
                        }
                        m.h_diag = ys / y.dot(&b, &y)?;
                        m.old_dirs.push_back(y);
                        m.old_stps.push_back(s);
                        m.ro.push_back(1.0 / ys);
                    }
                    let num_old = m.old_dirs.len();
                    let mut al = vec![0.0; num_old];
                    // q = −g, then back through the history.
                    let mut q = flat_grad.duplicate(&b)?;
                    q.scale(&b, -1.0)?;
                    for i in (0..num_old).rev() {
                        al[i] = m.old_stps[i].dot(&b, &q)? * m.ro[i];
                        q.axpy(&b, -al[i], &m.old_dirs[i])?;
                    }
                    // r = H₀·q, then forward through it: the direction.
                    q.scale(&b, m.h_diag)?;
                    for (i, al_i) in al.iter().enumerate() {
                        let be_i = m.old_dirs[i].dot(&b, &q)? * m.ro[i];
                        q.axpy(&b, al_i - be_i, &m.old_stps[i])?;
                    }
                    m.d = q;
                    m.prev_flat_grad.copy_from_vector(&b, &flat_grad)?;
                    m
                }
            };
            let mut m = memory;
            m.prev_loss = loss;
            // The step length: scaled to the gradient the first time.
            m.t = if self.n_iter == 1 {
                (1.0f64).min(1.0 / flat_grad.norm(&b, Reduce::AbsSum)?) * c.lr
            } else {
                c.lr
            };
            let gtd = flat_grad.dot(&b, &m.d)?;
            if gtd > -c.tolerance_change {
                self.memory = Some(m);
                break;
            }
            let mut ls_func_evals = 0;
            match c.line_search {
                Some(LineSearch::StrongWolfe) => {
                    let x_init = ParamVector::of(&b, model, false)?;
                    let search = strong_wolfe(
                        &b,
                        model,
                        &mut evaluate,
                        &x_init,
                        m.t,
                        &m.d,
                        loss,
                        &flat_grad,
                        gtd,
                        c.tolerance_change,
                        max_eval.saturating_sub(current_evals),
                    )?;
                    loss = search.loss;
                    flat_grad = search.grad;
                    m.t = search.t;
                    ls_func_evals = search.evals;
                    add_to_params(&b, model, m.t, &m.d)?;
                    opt_cond = flat_grad.norm(&b, Reduce::AbsMax)? <= c.tolerance_grad;
                }
                None => {
                    add_to_params(&b, model, m.t, &m.d)?;
                    if n_iter != c.max_iter {
                        loss = evaluate(model)?;
                        flat_grad.copy_from(&b, model, true)?;
                        opt_cond = flat_grad.norm(&b, Reduce::AbsMax)? <= c.tolerance_grad;
                        ls_func_evals = 1;
                    }
                }
            }
            current_evals += ls_func_evals;
            self.func_evals += ls_func_evals;
            let step_max = m.d.norm(&b, Reduce::AbsMax)? * m.t.abs();
            let prev_loss = m.prev_loss;
            self.memory = Some(m);
            if n_iter == c.max_iter
                || current_evals >= max_eval
                || opt_cond
                || step_max <= c.tolerance_change
                || (loss - prev_loss).abs() < c.tolerance_change
            {
                break;
            }
        }
        Ok(orig_loss)
    }
}

/// Where the line search ended: the step, and the loss and gradient there.
struct Found<B: Backend> {
    loss: f64,
    grad: ParamVector<B>,
    t: f64,
    evals: usize,
}

/// The loss and gradient at `x + t·d`; the parameters go back to `x`
/// (PyTorch's `_directional_evaluate`).
fn directional_evaluate<B: Backend>(
    b: &B,
    model: &mut Model<B>,
    evaluate: &mut dyn FnMut(&mut Model<B>) -> Result<f64>,
    x: &ParamVector<B>,
    t: f64,
    d: &ParamVector<B>,
) -> Result<(f64, ParamVector<B>)> {
    add_to_params(b, model, t, d)?;
    let loss = evaluate(model);
    let grad = ParamVector::of(b, model, true);
    for (p, x) in model.whole_tensors(false).into_iter().zip(&x.0) {
        b.copy(x, p)?;
    }
    Ok((loss?, grad?))
}

/// The minimiser of the cubic through (x₁, f₁, g₁) and (x₂, f₂, g₂), kept
/// within `bounds` (PyTorch's `_cubic_interpolate`).
fn cubic_interpolate(
    (x1, f1, g1): (f64, f64, f64),
    (x2, f2, g2): (f64, f64, f64),
    bounds: Option<(f64, f64)>,
) -> f64 {
    let (lo, hi) = bounds.unwrap_or(if x1 <= x2 { (x1, x2) } else { (x2, x1) });
    let d1 = g1 + g2 - 3.0 * (f1 - f2) / (x1 - x2);
    let d2_square = d1 * d1 - g1 * g2;
    if d2_square >= 0.0 {
        let d2 = d2_square.sqrt();
        let min_pos = if x1 <= x2 {
            x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2.0 * d2))
        } else {
            x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2.0 * d2))
        };
        min_pos.max(lo).min(hi)
    } else {
        (lo + hi) / 2.0
    }
}

/// One end of the line search's bracket.
struct Point<B: Backend> {
    t: f64,
    f: f64,
    g: ParamVector<B>,
    gtd: f64,
}

/// PyTorch's `_strong_wolfe` (c₁ = 1e-4, c₂ = 0.9, at most `max_ls`
/// evaluations): bracket a step satisfying the strong Wolfe conditions,
/// then zoom in by cubic interpolation.
#[allow(clippy::too_many_arguments)]
fn strong_wolfe<B: Backend>(
    b: &B,
    model: &mut Model<B>,
    evaluate: &mut dyn FnMut(&mut Model<B>) -> Result<f64>,
    x: &ParamVector<B>,
    mut t: f64,
    d: &ParamVector<B>,
    f: f64,
    g: &ParamVector<B>,
    gtd: f64,
    tolerance_change: f64,
    max_ls: usize,
) -> Result<Found<B>> {
    const C1: f64 = 1e-4;
    const C2: f64 = 0.9;
    let d_norm = d.norm(b, Reduce::AbsMax)?;
    let (mut f_new, g_first) = directional_evaluate(b, model, evaluate, x, t, d)?;
    let mut evals = 1;
    let mut gtd_new = g_first.dot(b, d)?;
    // The newest point's gradient, until a bracket takes it.
    let mut g_new = Some(g_first);
    let mut prev = Point {
        t: 0.0,
        f,
        g: g.duplicate(b)?,
        gtd,
    };
    let mut done = false;
    let mut ls_iter = 0;
    // The bracket: one point when the first conditions already hold.
    let mut bracket: Option<Vec<Point<B>>> = None;
    while ls_iter < max_ls {
        let newest = |g_new: &mut Option<ParamVector<B>>| Point {
            t,
            f: f_new,
            g: g_new.take().expect("the newest point's gradient"),
            gtd: gtd_new,
        };
        // PyTorch's order: sufficient decrease fails, the Wolfe conditions
        // hold, the slope turned.
        if f_new > f + C1 * t * gtd || (ls_iter > 1 && f_new >= prev.f) {
            bracket = Some(vec![prev, newest(&mut g_new)]);
            break;
        }
        if gtd_new.abs() <= -C2 * gtd {
            bracket = Some(vec![newest(&mut g_new)]);
            done = true;
            break;
        }
        if gtd_new >= 0.0 {
            bracket = Some(vec![prev, newest(&mut g_new)]);
            break;
        }
        let (min_step, max_step) = (t + 0.01 * (t - prev.t), t * 10.0);
        let next = cubic_interpolate(
            (prev.t, prev.f, prev.gtd),
            (t, f_new, gtd_new),
            Some((min_step, max_step)),
        );
        prev = newest(&mut g_new);
        t = next;
        let (f_t, g_t) = directional_evaluate(b, model, evaluate, x, t, d)?;
        f_new = f_t;
        gtd_new = g_t.dot(b, d)?;
        g_new = Some(g_t);
        evals += 1;
        ls_iter += 1;
    }
    let mut bracket = match bracket {
        Some(bracket) => bracket,
        // Out of evaluations: PyTorch brackets [0, t] and does not zoom
        // (the loop below needs evaluations left).
        None => vec![
            Point {
                t: 0.0,
                f,
                g: g.duplicate(b)?,
                gtd,
            },
            Point {
                t,
                f: f_new,
                g: g_new.take().expect("no bracket took it"),
                gtd: gtd_new,
            },
        ],
    };
    let order = |br: &[Point<B>]| {
        if br[0].f <= br[br.len() - 1].f {
            (0, 1)
        } else {
            (1, 0)
        }
    };
    let (mut low, mut high) = order(&bracket);
    let mut insuf_progress = false;
    while !done && ls_iter < max_ls {
        if (bracket[1].t - bracket[0].t).abs() * d_norm < tolerance_change {
            break;
        }
        t = cubic_interpolate(
            (bracket[0].t, bracket[0].f, bracket[0].gtd),
            (bracket[1].t, bracket[1].f, bracket[1].gtd),
            None,
        );
        let (b_max, b_min) = (
            bracket[0].t.max(bracket[1].t),
            bracket[0].t.min(bracket[1].t),
        );
        let eps = 0.1 * (b_max - b_min);
        if (b_max - t).min(t - b_min) < eps {
            if insuf_progress || t >= b_max || t <= b_min {
                t = if (t - b_max).abs() < (t - b_min).abs() {
                    b_max - eps
                } else {
                    b_min + eps
                };
                insuf_progress = false;
            } else {
                insuf_progress = true;
            }
        } else {
            insuf_progress = false;
        }
        let (f_t, g_t) = directional_evaluate(b, model, evaluate, x, t, d)?;
        evals += 1;
        let gtd_t = g_t.dot(b, d)?;
        ls_iter += 1;
        let point = Point {
            t,
            f: f_t,
            g: g_t,
            gtd: gtd_t,
        };
        if f_t > f + C1 * t * gtd || f_t >= bracket[low].f {
            bracket[high] = point;
            (low, high) = order(&bracket);
        } else {
            if gtd_t.abs() <= -C2 * gtd {
                done = true;
            } else if gtd_t * (bracket[high].t - bracket[low].t) >= 0.0 {
                // The old high end becomes the new low end's partner.
                let old_low = Point {
                    t: bracket[low].t,
                    f: bracket[low].f,
                    g: bracket[low].g.duplicate(b)?,
                    gtd: bracket[low].gtd,
                };
                bracket[high] = old_low;
            }
            bracket[low] = point;
        }
    }
    let best = bracket.swap_remove(low);
    Ok(Found {
        loss: best.f,
        grad: best.g,
        t: best.t,
        evals,
    })
}
