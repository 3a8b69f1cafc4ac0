// Activations and their derivatives, shared by matmul.wgsl (fused epilogue)
// and elementwise.wgsl. `code` matches Activation::code() in src/backend/ops.rs;
// it is an override constant at every call site, so the switch folds away.

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

fn activate(x: f32, code: u32, param: f32) -> f32 {
    switch code {
        case 1u: { return sigmoid(x); }
        case 2u: { return safe_tanh(x); }
        case 3u: { return 1.7159 * safe_tanh(x * (2.0 / 3.0)); }
        case 4u: { return safe_tanh(x) + param * x; }
        case 5u: { return max(x, 0.0); }
        case 6u: { return select(param * x, x, x > 0.0); }
        default: { return x; }
    }
}

fn activate_grad(x: f32, code: u32, param: f32) -> f32 {
    switch code {
        case 1u: { let s = sigmoid(x); return s * (1.0 - s); }
        case 2u: { let t = safe_tanh(x); return 1.0 - t * t; }
        case 3u: { let t = safe_tanh(x * (2.0 / 3.0)); return 1.7159 * (2.0 / 3.0) * (1.0 - t * t); }
        case 4u: { let t = safe_tanh(x); return 1.0 - t * t + param; }
        case 5u: { return select(0.0, 1.0, x > 0.0); }
        case 6u: { return select(param, 1.0, x > 0.0); }
        default: { return 1.0; }
    }
}
