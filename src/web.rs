//! The page's side of the seam (feature `web`, on `wasm32-unknown-unknown`):
//! what a browser page needs besides the library itself, which runs there
//! unchanged ([`Gpu::new_async`](crate::Gpu::new_async) opens WebGPU,
//! [`fit_async`](crate::train::fit_async) trains, the `*_async` read-backs
//! resolve as the browser maps buffers).
//!
//! - Files come over HTTP as bytes ([`fetch_bytes`]), and load with
//!   [`data::parse_idx`](crate::data::parse_idx) and
//!   [`checkpoint::load_model_bytes`](crate::checkpoint::load_model_bytes);
//!   a trained model leaves as bytes
//!   ([`checkpoint::model_to_bytes`](crate::checkpoint::model_to_bytes)).
//! - The training loop hands the event loop back every `report_every`
//!   steps ([`yield_to_event_loop`]), so that the page repaints its curves
//!   even when the CPU backend, which never waits on the device, trains.
//! - A [`crate::Error`] becomes a JavaScript `Error` with its message.
//!
//! The page in `web/` uses all of it:
//!
//! ```ignore
//! let bytes = wgtrain::web::fetch_bytes("data/t10k-images-idx3-ubyte").await?;
//! let images = wgtrain::data::parse_idx_images("t10k-images-idx3-ubyte", &bytes)?;
//! ```

use crate::{Error, Result};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// The global scope's function `name` (`fetch`, `setTimeout`): the same in
/// a window and in a worker.
fn global_function(name: &str) -> std::result::Result<js_sys::Function, JsValue> {
    js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str(name))?.dyn_into()
}

/// A JavaScript exception's message.
fn message(e: JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"))
}

/// Fetches `url` (relative to the page) and returns its body: an
/// [`Error::Fetch`] naming the address when the request fails or the
/// server answers with anything but success (a missing file is a 404).
pub async fn fetch_bytes(url: &str) -> Result<Vec<u8>> {
    let failed = |detail: String| Error::Fetch {
        url: url.to_string(),
        detail,
    };
    let fetch = global_function("fetch").map_err(|e| failed(message(e)))?;
    let promise: js_sys::Promise = fetch
        .call1(&JsValue::NULL, &JsValue::from_str(url))
        .map_err(|e| failed(message(e)))?
        .unchecked_into();
    let response: web_sys::Response = JsFuture::from(promise)
        .await
        .map_err(|e| failed(message(e)))?
        .unchecked_into();
    if !response.ok() {
        return Err(failed(format!(
            "the server answered {} {}",
            response.status(),
            response.status_text()
        )));
    }
    let body = response.array_buffer().map_err(|e| failed(message(e)))?;
    let buffer = JsFuture::from(body).await.map_err(|e| failed(message(e)))?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// Resolves after the browser has run its other tasks (a `setTimeout(0)`),
/// repainting the page among them. A promise that is already resolved would
/// not do: its continuation runs before the page is drawn.
pub async fn yield_to_event_loop() {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        if let Ok(set_timeout) = global_function("setTimeout") {
            let _ = set_timeout.call2(&JsValue::NULL, &resolve, &JsValue::from(0));
        } else {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// A library error as a JavaScript `Error` carrying its message, so that
/// an exported `async fn` can use `?` and the page can `catch` it.
impl From<Error> for JsValue {
    fn from(e: Error) -> JsValue {
        js_sys::Error::new(&e.to_string()).into()
    }
}
