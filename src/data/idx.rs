//! The IDX format of MNIST and Fashion-MNIST: a big-endian magic number
//! (`0x00000801` for a vector of `u8` labels, `0x00000803` for a 3-D array of
//! `u8` images), one big-endian `u32` count per dimension, then the bytes.

use super::Dataset;
use crate::error::{Error, Result};
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use std::io::{Read, Write};
use std::path::Path;

const LABELS_MAGIC: u32 = 0x0000_0801;
const IMAGES_MAGIC: u32 = 0x0000_0803;

/// The contents of an IDX image file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Pixel rows per image.
    pub rows: usize,
    /// Pixel columns per image.
    pub cols: usize,
    /// `count × rows × cols` pixels, image after image, row-major.
    pub pixels: Vec<u8>,
}

/// The largest IDX file read (4 GiB of data, 85 times MNIST's training
/// images): a header declaring more is refused before anything is inflated.
pub const MAX_IDX_BYTES: u64 = 1 << 32;

/// Reads a whole file, gunzipping it when it starts with the gzip magic bytes
/// (so that a `.gz` file renamed without its suffix still loads). Memory
/// stays bounded: a raw file larger than [`MAX_IDX_BYTES`] is refused by its
/// size, and a gzip stream is inflated no further than its IDX header (with
/// `dims` dimensions) declares, plus one byte to notice trailing data.
fn read_maybe_gz(path: &Path, dims: usize) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    let too_large = |bytes: u64| Error::TooLarge {
        what: format!("the IDX file {}", path.display()),
        bytes,
        limit: MAX_IDX_BYTES,
    };
    let header = 4 + 4 * dims as u64;
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut magic = [0u8; 2];
    let gzip = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    if !gzip {
        if size > MAX_IDX_BYTES + header {
            return Err(too_large(size));
        }
        return std::fs::read(path).map_err(io);
    }
    let corrupt = |e: std::io::Error| Error::Format {
        path: path.into(),
        detail: format!("gzip data is corrupt or truncated: {e}"),
    };
    let open = || -> Result<MultiGzDecoder<std::io::BufReader<std::fs::File>>> {
        let f = std::fs::File::open(path).map_err(io)?;
        Ok(MultiGzDecoder::new(std::io::BufReader::new(f)))
    };
    // The header first, to learn how much the stream may hold.
    let mut head = Vec::new();
    open()?
        .take(header)
        .read_to_end(&mut head)
        .map_err(corrupt)?;
    let declared = (1..=dims)
        .filter_map(|i| head.get(4 * i..4 * i + 4))
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64)
        .try_fold(1u64, |acc, c| acc.checked_mul(c));
    let limit = match declared {
        Some(d) if d <= MAX_IDX_BYTES => header + d,
        Some(d) => return Err(too_large(header + d)),
        // A short or overflowing header: `parse` names the problem.
        None => header + MAX_IDX_BYTES,
    };
    let mut out = Vec::new();
    open()?
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    Ok(out)
}

/// Checks the magic number and returns the dimension counts and the payload.
fn parse(path: &Path, bytes: &[u8], magic: u32, dims: usize) -> Result<(Vec<usize>, usize)> {
    let bad = |detail: String| Error::Format {
        path: path.into(),
        detail,
    };
    let header = 4 + 4 * dims;
    let truncated = || {
        bad(format!(
            "truncated: {} bytes, but an IDX header with {dims} dimension(s) needs {header}",
            bytes.len()
        ))
    };
    let word = |i: usize| -> Option<u32> {
        let b = bytes.get(4 * i..4 * i + 4)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    // The magic number is checked before the header length, so that a label
    // file passed as images is reported as such rather than as "truncated".
    let found = word(0).ok_or_else(truncated)?;
    if found != magic {
        let kind = |m: u32| match m {
            LABELS_MAGIC => "a label file",
            IMAGES_MAGIC => "an image file",
            _ => "not an IDX u8 file",
        };
        return Err(bad(format!(
            "magic number {found:#010x} ({}), expected {magic:#010x} ({})",
            kind(found),
            kind(magic)
        )));
    }
    if bytes.len() < header {
        return Err(truncated());
    }
    let counts: Vec<usize> = (1..=dims).filter_map(word).map(|c| c as usize).collect();
    let payload = counts.iter().try_fold(1usize, |acc, &c| acc.checked_mul(c));
    let have = bytes.len() - header;
    match payload {
        Some(p) if p == have => Ok((counts, header)),
        Some(p) if p > have => Err(bad(format!(
            "truncated: the header's counts {counts:?} need {p} data bytes, the file has {have}"
        ))),
        Some(p) => Err(bad(format!(
            "{} bytes beyond the {p} data bytes that the header's counts {counts:?} describe",
            have - p
        ))),
        None => Err(bad(format!("the header's counts {counts:?} overflow"))),
    }
}

/// Reads an IDX image file (`0x00000803`), raw or gzip-compressed.
///
/// ```no_run
/// let img = wgtrain::data::read_idx_images("data/mnist/t10k-images-idx3-ubyte.gz".as_ref())?;
/// assert_eq!((img.rows, img.cols), (28, 28));
/// # Ok::<(), wgtrain::Error>(())
/// ```
pub fn read_idx_images(path: &Path) -> Result<IdxImages> {
    let bytes = read_maybe_gz(path, 3)?;
    let (c, start) = parse(path, &bytes, IMAGES_MAGIC, 3)?;
    Ok(IdxImages {
        count: c[0],
        rows: c[1],
        cols: c[2],
        pixels: bytes[start..].to_vec(),
    })
}

/// Reads an IDX label file (`0x00000801`), raw or gzip-compressed.
///
/// ```no_run
/// let labels = wgtrain::data::read_idx_labels("data/mnist/t10k-labels-idx1-ubyte.gz".as_ref())?;
/// assert!(labels.iter().all(|&l| l < 10));
/// # Ok::<(), wgtrain::Error>(())
/// ```
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_maybe_gz(path, 1)?;
    let (_, start) = parse(path, &bytes, LABELS_MAGIC, 1)?;
    Ok(bytes[start..].to_vec())
}

/// Loads an image file and its label file as a classification [`Dataset`]:
/// one row of `rows × cols` pixels scaled to `[0, 1]` per image.
///
/// The two files must hold the same number of items, and every label must be
/// below `classes` (IDX label files do not say how many classes there are).
///
/// ```no_run
/// use wgtrain::data::load_idx;
///
/// let test = load_idx("data/mnist/t10k-images-idx3-ubyte".as_ref(), "data/mnist/t10k-labels-idx1-ubyte".as_ref(), 10)?;
/// assert_eq!((test.len(), test.dim()), (10_000, 784));
/// # Ok::<(), wgtrain::Error>(())
/// ```
pub fn load_idx(images: &Path, labels: &Path, classes: usize) -> Result<Dataset> {
    let img = read_idx_images(images)?;
    let lab = read_idx_labels(labels)?;
    if img.count != lab.len() {
        return Err(Error::Shape {
            op: "load_idx",
            detail: format!(
                "{} holds {} images but {} holds {} labels",
                images.display(),
                img.count,
                labels.display(),
                lab.len()
            ),
        });
    }
    let features = img.pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    Dataset::classification(
        features,
        img.rows * img.cols,
        lab.into_iter().map(u32::from).collect(),
        classes,
    )
}

/// Writes bytes to `path`, gzip-compressed when the name ends in `.gz`.
fn write_maybe_gz(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    let data = if path.extension().is_some_and(|e| e == "gz") {
        let mut enc = GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).map_err(io)?;
        enc.finish().map_err(io)?
    } else {
        bytes.to_vec()
    };
    std::fs::write(path, data).map_err(io)
}

/// A count as the `u32` an IDX header stores, or the error a too-large one deserves.
fn header_count(path: &Path, what: &str, n: usize) -> Result<[u8; 4]> {
    u32::try_from(n)
        .map(u32::to_be_bytes)
        .map_err(|_| Error::Format {
            path: path.into(),
            detail: format!("{what} {n} does not fit an IDX header (u32)"),
        })
}

/// Writes an IDX image file; gzip-compressed when `path` ends in `.gz`.
///
/// ```
/// use wgtrain::data::{read_idx_images, write_idx_images};
///
/// let path = std::env::temp_dir().join(format!("doc-{}-images-idx3-ubyte", std::process::id()));
/// write_idx_images(&path, 2, 3, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])?;
/// let back = read_idx_images(&path)?;
/// assert_eq!((back.count, back.rows, back.cols), (2, 2, 3));
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), wgtrain::Error>(())
/// ```
pub fn write_idx_images(path: &Path, rows: usize, cols: usize, pixels: &[u8]) -> Result<()> {
    let per = rows * cols;
    if per == 0 || !pixels.len().is_multiple_of(per) {
        return Err(Error::Shape {
            op: "write_idx_images",
            detail: format!(
                "{} pixels do not divide into {rows}x{cols} images",
                pixels.len()
            ),
        });
    }
    let mut bytes = IMAGES_MAGIC.to_be_bytes().to_vec();
    for (what, n) in [
        ("image count", pixels.len() / per),
        ("row count", rows),
        ("column count", cols),
    ] {
        bytes.extend(header_count(path, what, n)?);
    }
    bytes.extend_from_slice(pixels);
    write_maybe_gz(path, &bytes)
}

/// Writes an IDX label file; gzip-compressed when `path` ends in `.gz`.
///
/// ```
/// use wgtrain::data::{read_idx_labels, write_idx_labels};
///
/// let path = std::env::temp_dir().join(format!("doc-{}-labels-idx1-ubyte.gz", std::process::id()));
/// write_idx_labels(&path, &[3, 1, 4])?;
/// assert_eq!(read_idx_labels(&path)?, vec![3, 1, 4]);
/// # std::fs::remove_file(&path).unwrap();
/// # Ok::<(), wgtrain::Error>(())
/// ```
pub fn write_idx_labels(path: &Path, labels: &[u8]) -> Result<()> {
    let mut bytes = LABELS_MAGIC.to_be_bytes().to_vec();
    bytes.extend(header_count(path, "label count", labels.len())?);
    bytes.extend_from_slice(labels);
    write_maybe_gz(path, &bytes)
}
