//! The page that trains MNIST in the browser (`web/index.html` drives it)
//! and its native twin (`cargo run --release -p wgtrain-web --bin native`):
//! the same [`job`] on the wgtrain library, built for
//! `wasm32-unknown-unknown` with its `web` feature (WebGPU, or the CPU
//! backend inside the page) or natively (Vulkan, Metal, DX12, or the CPU),
//! so that the two can be compared on the same network and batch.

pub mod job;
#[cfg(target_arch = "wasm32")]
mod page;
