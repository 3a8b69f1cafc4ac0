//! Training curves as a PNG image (feature `plot`).
//!
//! Text is drawn with Noto Sans embedded in the binary (through plotters'
//! `ab_glyph` feature) rather than with system fonts, so that building needs
//! no system library (fontconfig) and a plot looks the same on every machine.

use super::history::{write_atomic, EpochRecord, History};
use crate::{Error, Result};
use plotters::prelude::*;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

/// Image size in pixels.
const WIDTH: u32 = 1200;
const HEIGHT: u32 = 500;

/// A family name of our own, so that registering the embedded font does not
/// replace a "sans-serif" that the application registered with plotters.
const FONT: &str = "wgtrain-noto-sans";

const TRAIN_COLOR: RGBColor = RGBColor(31, 119, 180);
const VAL_COLOR: RGBColor = RGBColor(230, 110, 0);
const BEST_COLOR: RGBColor = RGBColor(90, 90, 90);
const GRID_COLOR: RGBColor = RGBColor(235, 235, 235);

/// Above this many epochs the points are not marked: the markers would merge
/// into a thick line.
const MAX_MARKED_EPOCHS: usize = 40;

/// Boxed so that errors from the drawing area (generic over the backend) and
/// from the font registry travel through one `?`.
type DrawResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Draws the training curves of `history` into a PNG of about 1200×500
/// pixels at `path`: loss (training and validation) on the left, accuracy in
/// percent on the right, against the epoch, with a dashed line at
/// [`History::best_epoch`] when set. Missing values (no validation set, a
/// non-finite loss) are left out; without any accuracy (regression) the loss
/// panel takes the whole width.
///
/// The file is written through a temporary file in the same folder and a
/// rename, so a reader never sees a half-written image.
///
/// Errors: [`Error::Io`] when the file cannot be written, [`Error::Plot`] when
/// drawing or encoding fails.
///
/// ```no_run
/// # fn main() -> wgtrain::Result<()> {
/// # let history = wgtrain::train::History::default();
/// wgtrain::train::plot_history(&history, std::path::Path::new("curves.png"), "MNIST, MLP")?;
/// # Ok(())
/// # }
/// ```
pub fn plot_history(history: &History, path: &Path, title: &str) -> Result<()> {
    let plot_error = |detail: String| Error::Plot {
        path: path.to_path_buf(),
        detail,
    };
    let mut rgb = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    draw(history, title, &mut rgb).map_err(|e| plot_error(e.to_string()))?;
    let png = encode_png(&rgb, WIDTH, HEIGHT).map_err(|e| plot_error(e.to_string()))?;
    write_atomic(path, &png)
}

/// The learning-rate range test as a PNG at `path`: each step's loss and
/// the smoothed loss against the rate on a log axis, with a dashed line at
/// the suggested rate.
///
/// ```no_run
/// # fn main() -> wgtrain::Result<()> {
/// # let found = wgtrain::train::LrFindResult { lrs: vec![1e-3, 1e-2], losses: vec![2.0, 1.0],
/// #     smoothed: vec![2.0, 1.5], suggestion: Some(1e-2), diverged_at: None };
/// wgtrain::train::plot_lr_find(&found, std::path::Path::new("lr_find.png"), "MNIST, MLP")?;
/// # Ok(())
/// # }
/// ```
pub fn plot_lr_find(found: &super::LrFindResult, path: &Path, title: &str) -> Result<()> {
    let plot_error = |detail: String| Error::Plot {
        path: path.to_path_buf(),
        detail,
    };
    let mut rgb = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    draw_lr_find(found, title, &mut rgb).map_err(|e| plot_error(e.to_string()))?;
    let png = encode_png(&rgb, WIDTH, HEIGHT).map_err(|e| plot_error(e.to_string()))?;
    write_atomic(path, &png)
}

fn draw_lr_find(found: &super::LrFindResult, title: &str, rgb: &mut [u8]) -> DrawResult {
    register_font()?;
    let root = BitMapBackend::with_buffer(rgb, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let points = |values: &[f64]| -> Vec<(f64, f64)> {
        found
            .lrs
            .iter()
            .zip(values)
            .filter(|(_, v)| v.is_finite())
            .map(|(&lr, &v)| (lr, v))
            .collect()
    };
    let (raw, smoothed) = (points(&found.losses), points(&found.smoothed));
    let first = found.lrs.first().copied().unwrap_or(1e-6);
    let last = found.lrs.last().copied().unwrap_or(1.0).max(first * 10.0);
    // Up to a little over the start: the blow-up would flatten the rest.
    let top = smoothed.first().map_or(1.0, |p| p.1) * 1.5;
    let bottom = smoothed
        .iter()
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min)
        .min(top)
        * 0.9;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d((first..last).log_scale(), bottom..top)?;
    chart
        .configure_mesh()
        .light_line_style(GRID_COLOR)
        .x_desc("learning rate")
        .y_desc("loss")
        .label_style((FONT, 16))
        .draw()?;
    let clip = |p: &(f64, f64)| (p.0, p.1.min(top));
    chart
        .draw_series(LineSeries::new(raw.iter().map(clip), VAL_COLOR.mix(0.5)))?
        .label("minibatch loss")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], VAL_COLOR));
    chart
        .draw_series(LineSeries::new(
            smoothed.iter().map(clip),
            TRAIN_COLOR.stroke_width(2),
        ))?
        .label("smoothed")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], TRAIN_COLOR));
    if let Some(lr) = found.suggestion {
        chart
            .draw_series(DashedLineSeries::new(
                [(lr, bottom), (lr, top)],
                6,
                4,
                BEST_COLOR.stroke_width(1),
            ))?
            .label(format!("suggested {lr:.2e}"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BEST_COLOR));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.8))
        .border_style(GRID_COLOR)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Gradient norms by depth, one curve per network, as a PNG at `path`:
/// `networks` are (name, norms), `norms[l]` the gradient norm of the
/// `l`-th weight from the input (e.g. an [`EpochRecord::grad_norms`]'s
/// weights), drawn on a log scale, so that a gradient that vanishes on the
/// way to the first layers is a falling line (seed 002). Non-finite or zero
/// norms are left out.
///
/// ```no_run
/// let plain = ("sigmoid".to_string(), vec![1e-6, 1e-5, 1e-4, 1e-3]);
/// wgtrain::train::plot_layer_norms(&[plain], "norms.png".as_ref(), "gradient by depth").unwrap();
/// ```
pub fn plot_layer_norms(networks: &[(String, Vec<f64>)], path: &Path, title: &str) -> Result<()> {
    let plot_error = |detail: String| Error::Plot {
        path: path.to_path_buf(),
        detail,
    };
    let mut rgb = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    draw_layer_norms(networks, title, &mut rgb).map_err(|e| plot_error(e.to_string()))?;
    let png = encode_png(&rgb, WIDTH, HEIGHT).map_err(|e| plot_error(e.to_string()))?;
    write_atomic(path, &png)
}

fn draw_layer_norms(networks: &[(String, Vec<f64>)], title: &str, rgb: &mut [u8]) -> DrawResult {
    const COLORS: [RGBColor; 4] = [TRAIN_COLOR, VAL_COLOR, RGBColor(44, 160, 44), BEST_COLOR];
    register_font()?;
    let root = BitMapBackend::with_buffer(rgb, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let shown = |v: &f64| v.is_finite() && *v > 0.0;
    let all = || {
        networks
            .iter()
            .flat_map(|(_, n)| n.iter().copied().filter(shown))
    };
    let low = all().fold(f64::INFINITY, f64::min);
    let high = all().fold(0.0, f64::max);
    let (low, high) = if low <= high {
        (low / 2.0, high * 2.0)
    } else {
        (1e-3, 1.0)
    };
    let depth = networks.iter().map(|(_, n)| n.len()).max().unwrap_or(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 26))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0.5..depth as f64 + 0.5, (low..high).log_scale())?;
    chart
        .configure_mesh()
        .light_line_style(GRID_COLOR)
        .x_desc("layer (1 = next to the input)")
        .y_desc("gradient norm of its weights")
        .x_labels(depth.min(20))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0e}"))
        .label_style((FONT, 16))
        .draw()?;
    for ((name, norms), color) in networks.iter().zip(COLORS.iter().cycle()) {
        let points: Vec<(f64, f64)> = norms
            .iter()
            .enumerate()
            .filter(|(_, v)| shown(v))
            .map(|(l, &v)| (l as f64 + 1.0, v))
            .collect();
        let color = *color;
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color));
        chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font((FONT, 16))
        .background_style(WHITE.mix(0.8))
        .border_style(GRID_COLOR)
        .draw()?;
    root.present()?;
    Ok(())
}

/// Grey images side by side with a caption under each, as a PNG at `path`:
/// `images` are (pixels, caption), each `height × width` bytes with 0 as
/// black, drawn dark on white at 3× in rows of 8 under `title`. What the
/// `predict` example shows its most confidently wrong digits with.
///
/// ```no_run
/// let zero = vec![0u8; 28 * 28];
/// wgtrain::train::plot_images(&[(&zero[..], "7 → 1 (98%)".to_string())], 28, 28, "wrong".as_ref(), "digits").unwrap();
/// ```
pub fn plot_images(
    images: &[(&[u8], String)],
    height: usize,
    width: usize,
    path: &Path,
    title: &str,
) -> Result<()> {
    let plot_error = |detail: String| Error::Plot {
        path: path.to_path_buf(),
        detail,
    };
    if let Some((bad, _)) = images.iter().find(|(px, _)| px.len() != height * width) {
        return Err(plot_error(format!(
            "an image of {} bytes is not {height} × {width}",
            bad.len()
        )));
    }
    const SCALE: usize = 3;
    const COLUMNS: usize = 8;
    let cell = (width * SCALE + 16, height * SCALE + 26);
    let rows = images.len().div_ceil(COLUMNS).max(1);
    let (w, h) = ((COLUMNS * cell.0) as u32, (rows * cell.1 + 36) as u32);
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    (|| -> DrawResult {
        register_font()?;
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        root.draw_text(title, &(FONT, 18).into_font().color(&BLACK), (8, 8))?;
        for (i, (pixels, caption)) in images.iter().enumerate() {
            let (x0, y0) = ((i % COLUMNS) * cell.0 + 8, (i / COLUMNS) * cell.1 + 36);
            for (k, &v) in pixels.iter().enumerate() {
                let (x, y) = (x0 + (k % width) * SCALE, y0 + (k / width) * SCALE);
                let grey = 255 - v;
                root.draw(&Rectangle::new(
                    [
                        (x as i32, y as i32),
                        ((x + SCALE) as i32, (y + SCALE) as i32),
                    ],
                    RGBColor(grey, grey, grey).filled(),
                ))?;
            }
            let at = (x0 as i32, (y0 + height * SCALE + 4) as i32);
            root.draw_text(caption, &(FONT, 14).into_font().color(&BLACK), at)?;
        }
        root.present()?;
        Ok(())
    })()
    .map_err(|e| plot_error(e.to_string()))?;
    let png = encode_png(&rgb, w, h).map_err(|e| plot_error(e.to_string()))?;
    write_atomic(path, &png)
}

/// Registers the embedded font with plotters once per process.
fn register_font() -> DrawResult {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, ttf_noto_sans::REGULAR).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("the embedded font could not be parsed".into())
    }
}

/// One line of a panel: its contiguous runs of finite values.
struct Curve {
    label: &'static str,
    color: RGBColor,
    runs: Vec<Vec<(usize, f64)>>,
}

impl Curve {
    /// Splits at missing or non-finite values, so that a gap is drawn as a
    /// gap rather than bridged by a straight line.
    fn new(
        label: &'static str,
        color: RGBColor,
        epochs: &[EpochRecord],
        value: impl Fn(&EpochRecord) -> Option<f64>,
    ) -> Curve {
        let mut runs = Vec::new();
        let mut run = Vec::new();
        for e in epochs {
            match value(e).filter(|v| v.is_finite()) {
                Some(v) => run.push((e.epoch, v)),
                None if !run.is_empty() => runs.push(std::mem::take(&mut run)),
                None => {}
            }
        }
        if !run.is_empty() {
            runs.push(run);
        }
        Curve { label, color, runs }
    }

    fn values(&self) -> impl Iterator<Item = f64> + '_ {
        self.runs.iter().flatten().map(|&(_, v)| v)
    }
}

fn draw(history: &History, title: &str, rgb: &mut [u8]) -> DrawResult {
    register_font()?;
    let root = BitMapBackend::with_buffer(rgb, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let body = if title.is_empty() {
        root.clone()
    } else {
        root.titled(title, (FONT, 26))?
    };

    let epochs = &history.epochs;
    let loss = [
        Curve::new("training", TRAIN_COLOR, epochs, |e| Some(e.train_loss)),
        Curve::new("validation", VAL_COLOR, epochs, |e| e.val_loss),
    ];
    let percent = |a: Option<f64>| a.map(|a| 100.0 * a);
    let accuracy = [
        Curve::new("training", TRAIN_COLOR, epochs, |e| {
            percent(e.train_accuracy)
        }),
        Curve::new("validation", VAL_COLOR, epochs, |e| percent(e.val_accuracy)),
    ];
    // Loss falls, leaving the upper right free.
    const LOSS_LEGEND: SeriesLabelPosition = SeriesLabelPosition::UpperRight;
    let x = epoch_range(history);
    let loss_y = value_range(&loss, 0.0, f64::INFINITY);
    if accuracy.iter().all(|c| c.runs.is_empty()) {
        panel(
            &body,
            "Loss",
            "loss",
            &loss,
            history,
            x,
            loss_y,
            LOSS_LEGEND,
        )?;
    } else {
        let (left, right) = body.split_horizontally(WIDTH / 2);
        panel(
            &left,
            "Loss",
            "loss",
            &loss,
            history,
            x.clone(),
            loss_y,
            LOSS_LEGEND,
        )?;
        let accuracy_y = value_range(&accuracy, 0.0, 100.0);
        panel(
            &right,
            "Accuracy",
            "accuracy (%)",
            &accuracy,
            history,
            x,
            accuracy_y,
            // Accuracy rises, leaving the lower right free.
            SeriesLabelPosition::LowerRight,
        )?;
    }
    root.present()?;
    Ok(())
}

/// The epochs shown, widened around a single epoch so the axis has a span.
fn epoch_range(history: &History) -> Range<usize> {
    let first = history.epochs.iter().map(|e| e.epoch).min().unwrap_or(1);
    let last = history.epochs.iter().map(|e| e.epoch).max().unwrap_or(1);
    let last = history.best_epoch.map_or(last, |b| last.max(b));
    if first == last {
        first.saturating_sub(1)..last + 1
    } else {
        first..last
    }
}

/// The span of the curves' values with a margin, kept within the values'
/// natural bounds (a loss is rarely negative, accuracy is within 0..100).
fn value_range(curves: &[Curve], floor: f64, ceiling: f64) -> Range<f64> {
    let (lo, hi) = curves
        .iter()
        .flat_map(Curve::values)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if lo > hi {
        // Nothing to draw: an empty panel with a unit axis.
        return 0.0..1.0;
    }
    let pad = if hi > lo {
        0.05 * (hi - lo)
    } else {
        0.05 * lo.abs().max(1.0)
    };
    // Only clamp values that respect the bound, so outliers stay visible.
    let lo = if lo >= floor {
        (lo - pad).max(floor)
    } else {
        lo - pad
    };
    let hi = if hi <= ceiling {
        (hi + pad).min(ceiling)
    } else {
        hi + pad
    };
    if hi > lo {
        lo..hi
    } else {
        lo..lo + 1.0
    }
}

#[allow(clippy::too_many_arguments)] // one call site per panel, all distinct
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    y_desc: &str,
    curves: &[Curve],
    history: &History,
    x: Range<usize>,
    y: Range<f64>,
    legend: SeriesLabelPosition,
) -> DrawResult {
    let x_labels = (x.end - x.start + 1).min(10);
    let (y_lo, y_hi) = (y.start, y.end);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .x_labels(x_labels)
        .y_labels(8)
        .light_line_style(GRID_COLOR)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()?;

    let marked = history.epochs.len() <= MAX_MARKED_EPOCHS;
    for curve in curves {
        let style = curve.color.stroke_width(2);
        for (i, run) in curve.runs.iter().enumerate() {
            let line = chart.draw_series(LineSeries::new(run.iter().copied(), style))?;
            if i == 0 {
                let color = curve.color;
                line.label(curve.label).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
                });
            }
            // A run of one point has no line to show it.
            if marked || run.len() == 1 {
                chart.draw_series(run.iter().map(|&p| Circle::new(p, 3, curve.color.filled())))?;
            }
        }
    }
    if let Some(best) = history.best_epoch {
        chart
            .draw_series(DashedLineSeries::new(
                [(best, y_lo), (best, y_hi)],
                6,
                4,
                BEST_COLOR.stroke_width(1),
            ))?
            .label(format!("best epoch ({best})"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BEST_COLOR));
    }
    if curves.iter().any(|c| !c.runs.is_empty()) || history.best_epoch.is_some() {
        chart
            .configure_series_labels()
            .position(legend)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .draw()?;
    }
    Ok(())
}

fn encode_png(
    rgb: &[u8],
    width: u32,
    height: u32,
) -> std::result::Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}
