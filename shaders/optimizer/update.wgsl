// Optimizer kernels: one fused update per (flat) parameter tensor, and the
// squared norm that clipping by global norm needs. The rule is an override
// constant, so each optimizer compiles to its own branch-free pipeline; the
// RULE_* and CLIP_* names are generated from src/ops/optimizer/mod.rs and
// placed before this file. Per-step scalars (bias corrections, decayed
// rates, 1 − β) come from the host, where they are computed in f64 exactly
// as the CPU reference computes them.

// Mirrors UpdateParams in src/ops/optimizer/gpu.rs field for field.
struct Params {
    n: u32,             // elements (update, sq_partial); partials (sq_final)
    first: u32,         // 1 at step 1: SGD's momentum buffer starts as the gradient
    step_size: f32,     // lr, lr/(1−βᵗ), lr/(1−β₁ᵗ), or Adagrad's decayed lr
    weight_decay: f32,  // coupled L2: g += λ·θ (0 when decoupled)
    decay: f32,         // decoupled: θ *= 1 − lr·λ (1 otherwise)
    l1: f32,            // g += l1·sign(θ)
    clip: f32,          // clip value, or maximum global norm
    a: f32,             // SGD μ, EMA β, RMSprop α, Adam β₁
    a_c: f32,           // SGD 1 − dampening, EMA 1 − β, RMSprop 1 − α, Adam 1 − β₁
    b: f32,             // RMSprop momentum, Adam β₂
    b_c: f32,           // Adam 1 − β₂
    eps: f32,
    bc2_sqrt: f32,      // Adam √(1 − β₂ᵗ)
}

@group(0) @binding(0) var<uniform> p: Params;

override RULE: u32;           // one of the RULE_* constants
override FLAG: u32 = 0u;      // SGD Nesterov, RMSprop centred, Adam AMSGrad
override MOMENTUM: u32 = 0u;  // SGD and RMSprop keep a momentum buffer
override CLIP: u32;           // one of the CLIP_* constants
const WG: u32 = 256u;

// ---- update: one optimizer step ---------------------------------------------
// State positions are fixed per rule (see UpdateMethod::slots); unused ones
// are bound to a scratch word and never touched.
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> s0: array<f32>;  // momentum_buffer | exp_avg | sum | square_avg
@group(0) @binding(4) var<storage, read_write> s1: array<f32>;  // RMSprop grad_avg | Adam exp_avg_sq
@group(0) @binding(5) var<storage, read_write> s2: array<f32>;  // RMSprop momentum_buffer | Adam max_exp_avg_sq
@group(0) @binding(6) var<storage, read> sq_norm: array<f32>;   // Σ g² over every gradient of the step

@compute @workgroup_size(WG)
fn update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WG;
    if (i >= p.n) {
        return;
    }
    var g = grad[i];
    if (CLIP == CLIP_VALUE) {
        g = clamp(g, -p.clip, p.clip);
    } else if (CLIP == CLIP_NORM) {
        // torch.nn.utils.clip_grad_norm_: the 1e-6 keeps a zero norm finite.
        g = g * min(p.clip / (sqrt(sq_norm[0]) + 1e-6), 1.0);
    }
    let w0 = param[i];
    g = g + p.l1 * sign(w0) + p.weight_decay * w0;
    let w = w0 * p.decay;
    var d = g;
    // Every rule has its case; WGSL's required default shares Adam's, and no
    // other code exists (RULE comes from UpdateMethod::code).
    switch RULE {
        case RULE_SGD: {
            if (MOMENTUM == 1u) {
                let buf = select(p.a * s0[i] + p.a_c * g, g, p.first == 1u);
                s0[i] = buf;
                d = select(buf, g + p.a * buf, FLAG == 1u);
            }
        }
        case RULE_EMA_MOMENTUM: {
            let v = p.a * s0[i] + p.a_c * g;
            s0[i] = v;
            d = v;
        }
        case RULE_ADAGRAD: {
            let sum = s0[i] + g * g;
            s0[i] = sum;
            d = g / (sqrt(sum) + p.eps);
        }
        case RULE_RMSPROP: {
            let sq = p.a * s0[i] + p.a_c * g * g;
            s0[i] = sq;
            var centred = sq;
            if (FLAG == 1u) {
                let ga = s1[i] + p.a_c * (g - s1[i]);
                s1[i] = ga;
                centred = sq - ga * ga;
            }
            // b_c is ε under the root in seed 000's form, 0 in PyTorch's.
            d = g / (sqrt(centred + p.b_c) + p.eps);
            if (MOMENTUM == 1u) {
                let buf = p.b * s2[i] + d;
                s2[i] = buf;
                d = buf;
            }
        }
        case RULE_ADAM, default: {
            // torch's lerp_ form of the first moment: m + (1−β₁)(g − m).
            let m = s0[i] + p.a_c * (g - s0[i]);
            let v = p.b * s1[i] + p.b_c * g * g;
            s0[i] = m;
            s1[i] = v;
            var second = v;
            if (FLAG == 1u) {
                second = max(s2[i], v);
                s2[i] = second;
            }
            d = m / (sqrt(second) / p.bc2_sqrt + p.eps);
        }
    }
    param[i] = w - p.step_size * d;
}

// ---- sum of squares, accumulated: acc[0] += Σ x² -----------------------------
// Two passes with a fixed order of summation, as in reduce.wgsl.
@group(0) @binding(1) var<storage, read> sq_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> sq_out: array<f32>;

// Summed by workgroup_reduce (common/workgroup_sum.wgsl).
fn combine(a: f32, b: f32) -> f32 {
    return a + b;
}

// Pass 1: sq_out[g] = Σ x·y over the elements workgroup g strides over
// (y bound to x itself for a sum of squares).
@group(0) @binding(3) var<storage, read> dot_in: array<f32>;

@compute @workgroup_size(WG)
fn sq_partial(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    var v = 0.0;
    let stride = groups.x * WG;
    for (var i = wid.x * WG + lid.x; i < p.n; i += stride) {
        v += sq_in[i] * dot_in[i];
    }
    let r = workgroup_reduce(lid.x, v);
    if (lid.x == 0u) {
        sq_out[wid.x] = r;
    }
}

// Pass 2, one workgroup: sq_out[0] += Σ of the partials.
@compute @workgroup_size(WG)
fn sq_final(@builtin(local_invocation_id) lid: vec3<u32>) {
    var v = 0.0;
    for (var i = lid.x; i < p.n; i += WG) {
        v += sq_in[i];
    }
    let r = workgroup_reduce(lid.x, v);
    if (lid.x == 0u) {
        sq_out[0] += r;
    }
}
