//! The one error type of the library: every fallible call returns [`Result`].

use std::path::PathBuf;

/// Everything that can go wrong, each variant naming the problem and the sizes
/// involved so that the message alone tells the user what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No wgpu adapter could be opened.
    #[error(
        "no GPU adapter found ({detail}). Install a Vulkan driver (on Debian/Ubuntu: \
         `apt-get install mesa-vulkan-drivers` gives the lavapipe software adapter) \
         or use the CPU backend (WGTRAIN_DEVICE=cpu)"
    )]
    NoAdapter {
        /// What was tried.
        detail: String,
    },
    /// The adapter was found but the device could not be created.
    #[error("could not open the GPU device: {0}")]
    DeviceRequest(String),
    /// The GPU reported an error (out of memory, lost device, mapping failure).
    #[error("GPU error: {0}")]
    Gpu(String),
    /// Two shapes that must agree do not.
    #[error("shape mismatch in {op}: {detail}")]
    Shape {
        /// The operation that was called.
        op: &'static str,
        /// The shapes involved.
        detail: String,
    },
    /// A tensor with no elements where at least one is needed.
    #[error("{op}: zero-sized tensor ({rows}x{cols})")]
    Empty {
        /// The operation that was called.
        op: &'static str,
        /// Rows asked for.
        rows: usize,
        /// Columns asked for.
        cols: usize,
    },
    /// A tensor larger than the device holds in one buffer (a GPU's
    /// binding limit; on the CPU, the host's physical memory), or one
    /// whose size overflows: refused before anything is allocated.
    #[error("{what} needs {bytes} bytes, more than the {limit} bytes one tensor may take on this device")]
    TooLarge {
        /// What was being allocated.
        what: String,
        /// Bytes asked for.
        bytes: u64,
        /// The device's limit.
        limit: u64,
    },
    /// A file a page asked its server for did not arrive (feature `web`):
    /// no answer, or an HTTP status other than success.
    #[error("could not fetch {url}: {detail}")]
    Fetch {
        /// The address asked for.
        url: String,
        /// What went wrong (the status, or the browser's message).
        detail: String,
    },
    /// Host data whose length does not match the tensor.
    #[error("{op}: expected {expected} elements, got {got}")]
    Length {
        /// The operation that was called.
        op: &'static str,
        /// Elements the shape implies.
        expected: usize,
        /// Elements given.
        got: usize,
    },
    /// A class label outside `0..classes`.
    #[error("label {label} at row {row} is out of range for {classes} classes")]
    LabelRange {
        /// The offending label (i64: labels saved by PyTorch may be negative).
        label: i64,
        /// Where it was found.
        row: usize,
        /// Number of classes.
        classes: usize,
    },
    /// An index outside the rows of the tensor it indexes.
    #[error("{op}: index {index} at position {position} is out of range (must be below {bound})")]
    IndexRange {
        /// The operation that was called.
        op: &'static str,
        /// The offending index.
        index: u32,
        /// Where it was found.
        position: usize,
        /// The exclusive upper bound (rows indexed, or classes).
        bound: usize,
    },
    /// NaN or infinity where finite numbers are required.
    #[error("{what}: non-finite value {value} at element {index}")]
    NonFinite {
        /// What held it (a batch, a loss, a parameter).
        what: String,
        /// The flat index of the first bad element.
        index: usize,
        /// The value found.
        value: f64,
    },
    /// Training diverged: the loss, a parameter or the validation loss
    /// became NaN or infinite (checked after every step: see
    /// [`fit`](crate::train::fit)).
    #[error("training diverged at epoch {epoch}, step {step}: {what} became {value}")]
    Diverged {
        /// Epoch where it happened, 1-based as printed.
        epoch: usize,
        /// Step within the epoch, 1-based as printed (for the validation
        /// loss, the epoch's last step).
        step: usize,
        /// What became non-finite: "the loss", "the parameters" (the
        /// first parameter tensor named), "the validation loss".
        what: String,
        /// The loss value.
        value: f64,
    },
    /// A hyperparameter outside its allowed range.
    #[error("invalid {name} = {value}: must be {allowed}")]
    InvalidParameter {
        /// The parameter's name as in the config.
        name: &'static str,
        /// The value given.
        value: f64,
        /// The allowed range, in words.
        allowed: &'static str,
    },
    /// A setting given as text (an environment variable, an option) that
    /// is not one of the values it takes.
    #[error("invalid {name} = {value:?}: must be {allowed}")]
    Setting {
        /// The setting's name.
        name: &'static str,
        /// The value given.
        value: String,
        /// The values allowed, in words.
        allowed: &'static str,
    },
    /// A model that cannot be run as built (empty, widths that do not chain).
    #[error("invalid model: {0}")]
    Model(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file whose contents are not what its format requires.
    #[error("{path}: corrupt or malformed file: {detail}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A plot could not be drawn or encoded (feature `plot`); I/O failures
    /// while saving it are [`Error::Io`].
    #[error("{path}: could not draw the plot: {detail}")]
    Plot {
        /// The image that was being made.
        path: PathBuf,
        /// What the drawing or encoding library reported.
        detail: String,
    },
    /// A data set that is neither on disk nor obtainable automatically; `help`
    /// says where to put the files or which command fetches them.
    #[error("{dir}: data set not found. {help}")]
    MissingData {
        /// The folder that was searched.
        dir: PathBuf,
        /// What was tried and what to do.
        help: String,
    },
    /// A data-parallel replica failed, so every replica of the run stopped
    /// (rather than waiting for it forever); its own error says why.
    #[error("replica {rank} of {size} stopped the run: {detail}")]
    Replica {
        /// The replica that failed (its rank in the whole run).
        rank: usize,
        /// Replicas in the run.
        size: usize,
        /// That replica's error.
        detail: String,
    },
    /// The verification mode replayed a training step on the CPU reference
    /// and the backend's result differs past the tolerance
    /// ([`TrainConfig::verify_every`](crate::train::TrainConfig::verify_every)).
    #[error(
        "verification failed at step {step}: {what} differ from the CPU reference by {divergence:e} \
         (max |x − ref| / max(1, |ref|); tolerance {tolerance:e})"
    )]
    Verification {
        /// The run's step (1-based, counting a resumed run's).
        step: usize,
        /// "the losses", "the gradients" or "the updated parameters".
        what: &'static str,
        /// The divergence found.
        divergence: f64,
        /// The tolerance it exceeded.
        tolerance: f64,
    },
}

/// Shorthand used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;
