// Each activation σ and its derivative σ' at the input x, as act_<name> and
// grad_<name>; `p` is the activation's parameter (β, the slope) or unused.
// The dispatch `activate(x, code, p)` / `activate_grad(x, code, p)` that the
// matmul epilogue, the elementwise kernels and the losses call is generated
// from src/ops/activation/mod.rs (Activation::wgsl_dispatch), one case per
// variant: a new activation is its Rust formulas there and its two
// functions here. Every call site passes the code as an override constant,
// so the switch folds away.

// tanh saturates to ±1 in f32 beyond |x| = 15; clamping keeps drivers that
// compute tanh through exp from returning inf/inf = NaN for large inputs.
fn safe_tanh(x: f32) -> f32 {
    return tanh(clamp(x, -15.0, 15.0));
}

// Stable sigmoid: neither branch's exp can overflow where it is selected.
fn sigmoid(x: f32) -> f32 {
    let e = exp(-abs(x));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), x >= 0.0);
}

fn act_identity(x: f32, p: f32) -> f32 { return x; }
fn grad_identity(x: f32, p: f32) -> f32 { return 1.0; }

fn act_sigmoid(x: f32, p: f32) -> f32 { return sigmoid(x); }
fn grad_sigmoid(x: f32, p: f32) -> f32 { let s = sigmoid(x); return s * (1.0 - s); }

fn act_tanh(x: f32, p: f32) -> f32 { return safe_tanh(x); }
fn grad_tanh(x: f32, p: f32) -> f32 { let t = safe_tanh(x); return 1.0 - t * t; }

// LeCun's 1.7159 · tanh(2x/3).
fn act_scaled_tanh(x: f32, p: f32) -> f32 { return 1.7159 * safe_tanh(x * (2.0 / 3.0)); }
fn grad_scaled_tanh(x: f32, p: f32) -> f32 {
    let t = safe_tanh(x * (2.0 / 3.0));
    return 1.7159 * (2.0 / 3.0) * (1.0 - t * t);
}

// tanh(x) + β·x.
fn act_tanh_plus_linear(x: f32, p: f32) -> f32 { return safe_tanh(x) + p * x; }
fn grad_tanh_plus_linear(x: f32, p: f32) -> f32 { let t = safe_tanh(x); return 1.0 - t * t + p; }

fn act_relu(x: f32, p: f32) -> f32 { return max(x, 0.0); }
fn grad_relu(x: f32, p: f32) -> f32 { return select(0.0, 1.0, x > 0.0); }

fn act_leaky_relu(x: f32, p: f32) -> f32 { return select(p * x, x, x > 0.0); }
fn grad_leaky_relu(x: f32, p: f32) -> f32 { return select(p, 1.0, x > 0.0); }

// x · σ(x); σ' = σ · (1 + x · (1 − σ)).
fn act_silu(x: f32, p: f32) -> f32 { return x * sigmoid(x); }
fn grad_silu(x: f32, p: f32) -> f32 { let s = sigmoid(x); return s * (1.0 + x * (1.0 - s)); }
