//! The page's bindings: what `web/app.js` calls.

use crate::job::{self, Data, Events, Manifest, Options};
use serde_json::json;
use wasm_bindgen::prelude::*;
use wgtrain::web::fetch_bytes;
use wgtrain::{Error, Gpu};

/// A finished run, as the page reads it.
#[wasm_bindgen]
pub struct Trained {
    outcome: job::Outcome,
}

#[wasm_bindgen]
impl Trained {
    /// The run as JSON (see [`job::Outcome::summary`]).
    #[wasm_bindgen(getter)]
    pub fn summary(&self) -> String {
        self.outcome.summary.to_string()
    }

    /// The grid's digits, 784 bytes each.
    #[wasm_bindgen(getter)]
    pub fn grid_pixels(&self) -> Vec<u8> {
        self.outcome.grid_pixels.clone()
    }

    /// The trained model as a safetensors file (`model.safetensors`).
    #[wasm_bindgen(getter)]
    pub fn model(&self) -> Vec<u8> {
        self.outcome.model.clone()
    }
}

/// The page's callback, taking one JSON event per call.
struct PageEvents(js_sys::Function);

impl Events for PageEvents {
    fn emit(&self, event: serde_json::Value) {
        let _ = self
            .0
            .call1(&JsValue::NULL, &JsValue::from_str(&event.to_string()));
    }
}

/// The default options as JSON: what the page's form starts from.
#[wasm_bindgen]
pub fn default_options() -> String {
    serde_json::to_string(&Options::default()).expect("options serialize")
}

/// Runs the job as `options` (JSON) says, reporting to `on_event`; fails
/// with a JavaScript `Error` whose message says what happened and what to do.
#[wasm_bindgen]
pub async fn train(options: String, on_event: js_sys::Function) -> Result<Trained, JsValue> {
    let options = Options::from_json(&options)?;
    let events = PageEvents(on_event);
    let data = load(&options, &events).await?;
    events.emit(json!({"kind": "status", "text": "requesting a WebGPU adapter"}));
    let gpu = Gpu::new_async().await.map_err(|_| Error::NoAdapter {
        detail: "the browser offered no WebGPU adapter. This page needs WebGPU: a current \
                 Chrome, Edge or Safari has it; on Linux start Chromium with \
                 --enable-unsafe-webgpu"
            .into(),
    })?;
    let outcome = job::run(&gpu, &data, &options, &events).await?;
    Ok(Trained { outcome })
}

/// Fetches the manifest and the four files it names (relative to it).
async fn load(options: &Options, events: &PageEvents) -> wgtrain::Result<Data> {
    let hint = |e: Error| match e {
        Error::Fetch { url, detail } => Error::Fetch {
            url,
            detail: format!(
                "{detail}. Serve the page with `bash scripts/web_serve.sh`, which puts MNIST \
                 and its manifest beside it"
            ),
        },
        other => other,
    };
    events.emit(json!({"kind": "status", "text": format!("fetching {}", options.manifest)}));
    let text = fetch_bytes(&options.manifest).await.map_err(hint)?;
    let manifest = Manifest::from_json(&text, &options.manifest)?;
    let base = options.manifest.rsplit_once('/').map_or("", |(dir, _)| dir);
    let mut bytes: [Vec<u8>; 4] = Default::default();
    for (slot, name) in bytes.iter_mut().zip(manifest.files()) {
        events.emit(json!({"kind": "status", "text": format!("fetching {name}")}));
        let url = if base.is_empty() {
            name.to_string()
        } else {
            format!("{base}/{name}")
        };
        *slot = fetch_bytes(&url).await.map_err(hint)?;
    }
    Data::parse(&manifest, &bytes, options)
}
