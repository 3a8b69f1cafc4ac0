//! The CPU backend's Adam update alone, on the parameters of the peers'
//! 784-512-512-10 network (669,706 floats in six tensors), beside
//! `scripts/torch_adam_step.py`, which times PyTorch's fused Adam
//! (`torch._fused_adam_`) on the same shapes. Run them in turn, a few
//! times, on a shared machine:
//!
//! `cargo run --release --example adam_step; python3 scripts/torch_adam_step.py`

use std::time::Instant;
use wgtrain::{Backend, Cpu, GradClip, UpdateMethod, UpdateRule};

fn main() -> wgtrain::Result<()> {
    let cpu = Cpu::<f32>::new();
    // Weights and biases, PyTorch's `[out, in]`.
    let shapes = [
        (512, 784),
        (1, 512),
        (512, 512),
        (1, 512),
        (10, 512),
        (1, 10),
    ];
    let rule = UpdateRule {
        method: UpdateMethod::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            amsgrad: false,
        },
        lr: 1e-3,
        weight_decay: 0.0,
        decoupled_weight_decay: false,
        l1: 0.0,
        clip: GradClip::None,
    };
    let mut tensors = Vec::new();
    for &(r, c) in &shapes {
        let param = cpu.upload(r, c, &vec![0.5; r * c])?;
        let grad = cpu.upload(r, c, &vec![0.01; r * c])?;
        tensors.push((param, grad, vec![cpu.zeros(r, c)?, cpu.zeros(r, c)?]));
    }
    let (steps, mut step) = (500, 0);
    // The first repeat warms the caches and the thread pool, untimed.
    for repeat in 0..6 {
        let t = Instant::now();
        for _ in 0..steps {
            step += 1;
            for (param, grad, state) in tensors.iter_mut() {
                cpu.optimizer_update(&rule, step, param, grad, state, None)?;
            }
        }
        if repeat > 0 {
            let ms = t.elapsed().as_secs_f64() / steps as f64 * 1e3;
            println!("wgtrain CPU Adam step: {ms:.3} ms");
        }
    }
    Ok(())
}
