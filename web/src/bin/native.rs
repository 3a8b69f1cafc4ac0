//! The page's job natively, for the same figures on the native adapter
//! (or the CPU backend) beside the browser's:
//!
//! ```text
//! bash scripts/web_build.sh      # puts MNIST and mnist.json in web/data
//! cargo run --release -p wgtrain-web --bin native -- backend=cpu epochs=1
//! ```
//!
//! Arguments are `key=value` pairs over the page's defaults, as the page's
//! query string takes them; events print as JSON lines, the summary last.
//!
//! `--evaluate FILE` (first) instead loads a model the page let you
//! download (`model.safetensors`) into the page's network and prints its
//! test loss and accuracy on the CPU backend, as JSON: how
//! `scripts/web_test.sh` checks that the download loads natively.

use std::path::Path;
use wgtrain::train::evaluate_dataset;
use wgtrain::{checkpoint, Cpu, Error, Gpu, Loss};
use wgtrain_web::job::{self, Data, Events, Manifest, Options};

struct Lines;

impl Events for Lines {
    fn emit(&self, event: serde_json::Value) {
        if event["kind"] != "steps" {
            println!("{event}");
        }
    }
}

fn main() -> Result<(), Error> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let evaluate = match args.first().map(String::as_str) {
        Some("--evaluate") => {
            let file = args.get(1).cloned().ok_or_else(|| Error::Setting {
                name: "--evaluate",
                value: String::new(),
                allowed: "a safetensors file",
            })?;
            args.drain(..2);
            Some(file)
        }
        _ => None,
    };
    let mut options = serde_json::to_value(Options::default()).expect("options serialize");
    for arg in args {
        let (key, value) = arg.split_once('=').ok_or_else(|| Error::Setting {
            name: "argument",
            value: arg.clone(),
            allowed: "key=value, a key of the page's options",
        })?;
        // Numbers stay numbers; anything else is a string.
        options[key] = serde_json::from_str(value).unwrap_or_else(|_| value.into());
    }
    let options = Options::from_json(&options.to_string())?;
    // The manifest's folder is the page's: web/ beside this crate.
    let web = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = web.join(&options.manifest);
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| Error::Io {
            path: p.into(),
            source,
        })
    };
    let manifest = Manifest::from_json(&read(&path)?, &options.manifest)?;
    let dir = path.parent().expect("a file in a folder");
    let mut bytes: [Vec<u8>; 4] = Default::default();
    for (slot, name) in bytes.iter_mut().zip(manifest.files()) {
        *slot = read(&dir.join(name))?;
    }
    let data = Data::parse(&manifest, &bytes, &options)?;
    if let Some(file) = evaluate {
        let cpu = Cpu::<f32>::new();
        let mut model = job::spec(&options).build(&cpu, 0)?;
        checkpoint::load_model(file.as_ref(), &mut model)?;
        let (loss, accuracy) = evaluate_dataset(&mut model, &data.test, Loss::SoftmaxCrossEntropy)?;
        let summary = serde_json::json!({"file": file, "test_loss": loss, "test_accuracy": accuracy, "test_digits": data.test.len()});
        println!("{summary}");
        return Ok(());
    }
    let gpu = Gpu::new()?;
    let outcome = pollster::block_on(job::run(&gpu, &data, &options, &Lines))?;
    println!("{}", outcome.summary);
    Ok(())
}
