//! The IDX format of MNIST and Fashion-MNIST: a big-endian magic number
//! (`0x00000801` for a vector of `u8` labels, `0x00000803` for a 3-D array of
//! `u8` images), one big-endian `u32` count per dimension, then the bytes.

use super::Dataset;
use crate::error::{Error, Result};
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use std::borrow::Cow;
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
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut magic = [0u8; 2];
    let gzip = file.read_exact(&mut magic).is_ok() && magic == GZIP_MAGIC;
    if !gzip {
        check_raw_size(path, size, dims)?;
        return std::fs::read(path).map_err(io);
    }
    inflate_bounded(path, dims, || {
        let f = std::fs::File::open(path).map_err(io)?;
        Ok(std::io::BufReader::new(f))
    })
}

/// As [`read_maybe_gz`], for a file's bytes already in memory (fetched by
/// a page, embedded in a binary); `name` is what errors call it.
fn bytes_maybe_gz<'a>(name: &Path, bytes: &'a [u8], dims: usize) -> Result<Cow<'a, [u8]>> {
    if !bytes.starts_with(&GZIP_MAGIC) {
        check_raw_size(name, bytes.len() as u64, dims)?;
        return Ok(Cow::Borrowed(bytes));
    }
    inflate_bounded(name, dims, || Ok(bytes)).map(Cow::Owned)
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

fn too_large(path: &Path, bytes: u64) -> Error {
    Error::TooLarge {
        what: format!("the IDX file {}", path.display()),
        bytes,
        limit: MAX_IDX_BYTES,
    }
}

fn check_raw_size(path: &Path, size: u64, dims: usize) -> Result<()> {
    if size > MAX_IDX_BYTES + 4 + 4 * dims as u64 {
        return Err(too_large(path, size));
    }
    Ok(())
}

/// Inflates the gzip stream that `open` yields (opened twice: once for the
/// IDX header, to learn how much the stream may hold, then for the whole).
fn inflate_bounded<R: Read>(
    path: &Path,
    dims: usize,
    open: impl Fn() -> Result<R>,
) -> Result<Vec<u8>> {
    let corrupt = |e: std::io::Error| Error::Format {
        path: path.into(),
        detail: format!("gzip data is corrupt or truncated: {e}"),
    };
    let header = 4 + 4 * dims as u64;
    let mut head = Vec::new();
    MultiGzDecoder::new(open()?)
        .take(header)
        .read_to_end(&mut head)
        .map_err(corrupt)?;
    let declared = (1..=dims)
        .filter_map(|i| head.get(4 * i..4 * i + 4))
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64)
        .try_fold(1u64, |acc, c| acc.checked_mul(c));
    let limit = match declared {
        Some(d) if d <= MAX_IDX_BYTES => header + d,
        Some(d) => return Err(too_large(path, header + d)),
        // A short or overflowing header: `parse` names the problem.
        None => header + MAX_IDX_BYTES,
    };
    let mut out = Vec::new();
    MultiGzDecoder::new(open()?)
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
    images_from(path, &read_maybe_gz(path, 3)?)
}

/// Reads an IDX label file (`0x00000801`), raw or gzip-compressed.
///
/// ```no_run
/// let labels = wgtrain::data::read_idx_labels("data/mnist/t10k-labels-idx1-ubyte.gz".as_ref())?;
/// assert!(labels.iter().all(|&l| l < 10));
/// # Ok::<(), wgtrain::Error>(())
/// ```
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>> {
    labels_from(path, &read_maybe_gz(path, 1)?)
}

/// As [`read_idx_images`], from the file's bytes (raw or gzip-compressed)
/// already in memory, as a page fetches them; `name` is what errors call
/// the file.
///
/// ```
/// let mut file = vec![0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2];
/// file.extend([0, 64, 128, 255]);
/// let img = wgtrain::data::parse_idx_images("one.idx", &file)?;
/// assert_eq!((img.count, img.rows, img.cols, img.pixels[3]), (1, 2, 2, 255));
/// # Ok::<(), wgtrain::Error>(())
/// ```
pub fn parse_idx_images(name: &str, bytes: &[u8]) -> Result<IdxImages> {
    let name = Path::new(name);
    images_from(name, &bytes_maybe_gz(name, bytes, 3)?)
}

/// As [`read_idx_labels`], from the file's bytes already in memory.
///
/// ```
/// let labels = wgtrain::data::parse_idx_labels("l.idx", &[0, 0, 8, 1, 0, 0, 0, 2, 7, 3])?;
/// assert_eq!(labels, [7, 3]);
/// # Ok::<(), wgtrain::Error>(())
/// ```
pub fn parse_idx_labels(name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let name = Path::new(name);
    labels_from(name, &bytes_maybe_gz(name, bytes, 1)?)
}

fn images_from(path: &Path, bytes: &[u8]) -> Result<IdxImages> {
    let (c, start) = parse(path, bytes, IMAGES_MAGIC, 3)?;
    Ok(IdxImages {
        count: c[0],
        rows: c[1],
        cols: c[2],
        pixels: bytes[start..].to_vec(),
    })
}

fn labels_from(path: &Path, bytes: &[u8]) -> Result<Vec<u8>> {
    let (_, start) = parse(path, bytes, LABELS_MAGIC, 1)?;
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
    idx_dataset(
        &read_idx_images(images)?,
        images,
        &read_idx_labels(labels)?,
        labels,
        classes,
    )
}

/// As [`load_idx`], from the two files' bytes already in memory (what a
/// page fetched), named `images` and `labels` in errors.
///
/// ```
/// let mut images = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
/// images.extend([0, 255, 51, 102]);
/// let labels = [0, 0, 8, 1, 0, 0, 0, 2, 1, 0];
/// let data = wgtrain::data::parse_idx(("img", &images), ("lab", &labels), 2)?;
/// assert_eq!((data.len(), data.row(1)), (2, &[0.2, 0.4][..]));
/// # Ok::<(), wgtrain::Error>(())
/// ```
pub fn parse_idx(images: (&str, &[u8]), labels: (&str, &[u8]), classes: usize) -> Result<Dataset> {
    idx_dataset(
        &parse_idx_images(images.0, images.1)?,
        Path::new(images.0),
        &parse_idx_labels(labels.0, labels.1)?,
        Path::new(labels.0),
        classes,
    )
}

fn idx_dataset(
    img: &IdxImages,
    images: &Path,
    lab: &[u8],
    labels: &Path,
    classes: usize,
) -> Result<Dataset> {
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
        lab.iter().map(|&l| u32::from(l)).collect(),
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
