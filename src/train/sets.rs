//! Checkpoint sets committed as one unit, so that a crash at any moment
//! leaves either the previous set or the new one, never a mix.
//!
//! A checkpoint folder holds:
//!
//! ```text
//! sets/epoch-000003/   last.safetensors best.safetensors optimizer.safetensors
//!                      history.json history.csv manifest.json
//! sets/epoch-000004/   …
//! current -> sets/epoch-000004          (a symbolic link, replaced by one rename)
//! last.safetensors -> current/last.safetensors   (and the other files alike)
//! ```
//!
//! A commit writes a new set in a temporary folder (files a commit does not
//! rewrite are hard-linked from the previous set), records every file's
//! size and CRC-32 in `manifest.json`, flushes them, renames the folder into
//! place, then points `current` at it with one atomic rename. Resuming
//! verifies the manifest first. Temporary folders of an interrupted commit
//! are removed by the next run; the two newest sets are kept.

use crate::checkpoint::io_err as io;
use crate::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The files of a set.
pub(crate) const FILES: [&str; 5] = [
    super::LAST,
    super::BEST,
    super::OPTIMIZER,
    "history.json",
    "history.csv",
];
const MANIFEST: &str = "manifest.json";
const SETS: &str = "sets";
const CURRENT: &str = "current";

/// Size and CRC-32 of a file.
fn checksum(path: &Path) -> Result<(u64, u32)> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let (mut crc, mut bytes) = (flate2::Crc::new(), 0u64);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            return Ok((bytes, crc.sum()));
        }
        crc.update(&buf[..n]);
        bytes += n as u64;
    }
}

/// Flushes a folder's entries (its renames) to disk.
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    let _ = dir;
    Ok(())
}

/// The checkpoint folder of a run.
pub(crate) struct Sets {
    dir: PathBuf,
}

impl Sets {
    /// Makes the folder, and removes what an interrupted commit left.
    pub fn open(dir: &Path) -> Result<Sets> {
        let sets = dir.join(SETS);
        std::fs::create_dir_all(&sets).map_err(io(&sets))?;
        for entry in std::fs::read_dir(&sets).map_err(io(&sets))?.flatten() {
            if entry.file_name().to_string_lossy().contains(".tmp") {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        for entry in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(Sets {
            dir: dir.to_path_buf(),
        })
    }

    /// Commits the set of `epoch`: `write` puts files into the folder it is
    /// given; the files of [`FILES`] it leaves out are linked from the
    /// current set.
    pub fn commit(&self, epoch: usize, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
        let sets = self.dir.join(SETS);
        // A new name even when this epoch has a set already (the run's
        // final history): the current set is never removed.
        let name = (1..)
            .map(|k| match k {
                1 => format!("epoch-{epoch:06}"),
                k => format!("epoch-{epoch:06}-{k}"),
            })
            .find(|n| !sets.join(n).exists())
            .expect("a free name");
        let tmp = sets.join(format!("{name}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        let result = (|| {
            write(&tmp)?;
            let previous = current_set(&self.dir)?;
            let mut manifest = serde_json::Map::new();
            for file in FILES {
                let path = tmp.join(file);
                if !path.exists() {
                    let Some(prev) = &previous else { continue };
                    let from = prev.join(file);
                    if !from.exists() {
                        continue;
                    }
                    std::fs::hard_link(&from, &path)
                        .or_else(|_| std::fs::copy(&from, &path).map(drop))
                        .map_err(io(&path))?;
                }
                let (bytes, crc) = checksum(&path)?;
                manifest.insert(
                    file.into(),
                    serde_json::json!({ "bytes": bytes, "crc32": crc }),
                );
            }
            let text = serde_json::json!({ "epoch": epoch, "files": manifest }).to_string();
            let path = tmp.join(MANIFEST);
            std::fs::write(&path, text).map_err(io(&path))?;
            for entry in std::fs::read_dir(&tmp).map_err(io(&tmp))?.flatten() {
                std::fs::File::open(entry.path())
                    .and_then(|f| f.sync_all())
                    .map_err(io(&entry.path()))?;
            }
            sync_dir(&tmp)
        })();
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        let set = sets.join(&name);
        std::fs::rename(&tmp, &set).map_err(io(&set))?;
        sync_dir(&sets)?;
        self.point_current_at(&name)?;
        self.prune(&name);
        Ok(())
    }

    /// `current` → `sets/<name>` by one rename, and the top-level names.
    fn point_current_at(&self, name: &str) -> Result<()> {
        let target = Path::new(SETS).join(name);
        let current = self.dir.join(CURRENT);
        #[cfg(unix)]
        {
            let tmp = self
                .dir
                .join(format!(".{CURRENT}.{}.tmp", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(&target, &tmp).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &current).map_err(io(&current))?;
            for file in FILES {
                let top = self.dir.join(file);
                // A regular file there is an older layout's: replaced by the link.
                if std::fs::read_link(&top).is_err() {
                    let _ = std::fs::remove_file(&top);
                    std::os::unix::fs::symlink(Path::new(CURRENT).join(file), &top)
                        .map_err(io(&top))?;
                }
            }
        }
        #[cfg(not(unix))]
        {
            // No symbolic links: `current` is a file naming the set, and
            // the top-level files are copies (the set stays authoritative).
            super::write_atomic(&current, target.to_string_lossy().as_bytes())?;
            for file in FILES {
                let from = self.dir.join(&target).join(file);
                if from.exists() {
                    std::fs::copy(&from, self.dir.join(file)).map_err(io(&from))?;
                }
            }
        }
        sync_dir(&self.dir)
    }

    /// Keeps the newest two sets.
    fn prune(&self, newest: &str) {
        let sets = self.dir.join(SETS);
        let Ok(entries) = std::fs::read_dir(&sets) else {
            return;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("epoch-") && !n.contains(".tmp") && n.as_str() <= newest)
            .collect();
        names.sort();
        let keep = names.len().saturating_sub(2);
        for old in &names[..keep] {
            let _ = std::fs::remove_dir_all(sets.join(old));
        }
    }
}

/// The folder of the current set, if the folder has one.
fn current_set(dir: &Path) -> Result<Option<PathBuf>> {
    let current = dir.join(CURRENT);
    #[cfg(unix)]
    let target = match std::fs::read_link(&current) {
        Ok(t) => t,
        Err(_) => return Ok(None),
    };
    #[cfg(not(unix))]
    let target = match std::fs::read_to_string(&current) {
        Ok(t) => PathBuf::from(t.trim()),
        Err(_) => return Ok(None),
    };
    Ok(Some(dir.join(target)))
}

/// Where a resumed run reads its files: the current set, after checking
/// every file against its manifest; or, for a folder written before
/// checkpoint sets existed, the folder itself.
pub(crate) fn verified(dir: &Path) -> Result<PathBuf> {
    let Some(set) = current_set(dir)? else {
        return Ok(dir.to_path_buf());
    };
    let damaged = |detail: String| Error::Format {
        path: set.clone(),
        detail: format!(
            "{detail}: this checkpoint set is damaged; resume from the previous set in {} \
             (point `current` at it) or start afresh",
            dir.join(SETS).display()
        ),
    };
    let path = set.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    let manifest: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| damaged(format!("manifest.json: {e}")))?;
    let files = manifest["files"]
        .as_object()
        .ok_or_else(|| damaged("manifest.json lists no files".into()))?;
    for file in [super::LAST, super::OPTIMIZER, "history.json"] {
        if !files.contains_key(file) {
            return Err(damaged(format!("manifest.json does not list {file}")));
        }
    }
    for (file, expected) in files {
        let (bytes, crc) = checksum(&set.join(file))?;
        if expected["bytes"].as_u64() != Some(bytes)
            || expected["crc32"].as_u64() != Some(crc as u64)
        {
            return Err(damaged(format!(
                "{file} has {bytes} bytes with CRC-32 {crc:08x}, the manifest says {} bytes, CRC-32 {:08x}",
                expected["bytes"],
                expected["crc32"].as_u64().unwrap_or(0)
            )));
        }
    }
    Ok(set)
}
