//! Numeric CSV files with a header row and one column of class labels.

use super::Dataset;
use crate::error::{Error, Result};
use std::path::Path;

/// Which CSV column holds the labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    /// The column whose header cell is this name (after trimming spaces and quotes).
    Name(String),
    /// The column at this 0-based position.
    Index(usize),
}

/// A cell with surrounding spaces and one pair of double quotes removed.
fn cell(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(s)
}

/// Loads a comma-separated file: a header row, then one row per sample of
/// numeric cells. The `label` column holds class indices (non-negative
/// integers); every other column becomes a feature, in file order.
/// `classes` defaults to the largest label plus one.
///
/// Blank lines are skipped. Quoted cells are unquoted, but a comma inside
/// quotes is not supported (numeric data has none). Every error names the
/// 1-based line and the column, so a bad cell can be found in an editor.
///
/// ```
/// use wgtrain::data::{load_csv, Column};
///
/// let path = std::env::temp_dir().join(format!("doc-{}.csv", std::process::id()));
/// std::fs::write(&path, "x,y,class\n0.5,1,0\n2,-3e-1,2\n")?;
/// let d = load_csv(&path, Column::Name("class".into()), None)?;
/// assert_eq!((d.len(), d.dim(), d.classes()), (2, 2, Some(3)));
/// assert_eq!(d.features(), &[0.5, 1.0, 2.0, -0.3]);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_csv(path: &Path, label: Column, classes: Option<usize>) -> Result<Dataset> {
    let bad = |detail: String| Error::Format {
        path: path.into(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = lines
        .next()
        .ok_or_else(|| bad("no header row: the file is empty".into()))?;
    let names: Vec<&str> = header.split(',').map(cell).collect();
    let label_col = match &label {
        Column::Name(name) => names.iter().position(|n| n == name).ok_or_else(|| {
            bad(format!(
                "no column named {name:?}; the header has {names:?}"
            ))
        })?,
        Column::Index(i) if *i < names.len() => *i,
        Column::Index(i) => {
            return Err(bad(format!(
                "label column index {i}, but the header has {} columns",
                names.len()
            )))
        }
    };
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for (line, text) in lines {
        let cells: Vec<&str> = text.split(',').map(cell).collect();
        if cells.len() != names.len() {
            return Err(bad(format!(
                "line {line}: {} cells, but the header has {} columns",
                cells.len(),
                names.len()
            )));
        }
        for (col, value) in cells.iter().enumerate() {
            let at = || format!("line {line}, column {} ({:?})", col + 1, names[col]);
            if col == label_col {
                let l = value.parse::<u32>().map_err(|_| {
                    bad(format!(
                        "{}: label {value:?} is not a non-negative integer",
                        at()
                    ))
                })?;
                labels.push(l);
            } else {
                let v = value.parse::<f32>().ok().filter(|v| v.is_finite());
                features.push(v.ok_or_else(|| {
                    bad(format!("{}: cell {value:?} is not a finite number", at()))
                })?);
            }
        }
    }
    if labels.is_empty() {
        return Err(bad("no data rows after the header".into()));
    }
    if names.len() == 1 {
        return Err(bad(
            "the label is the only column, so there are no features".into(),
        ));
    }
    let classes = classes.unwrap_or_else(|| labels.iter().max().map_or(0, |&m| m as usize + 1));
    Dataset::classification(features, names.len() - 1, labels, classes)
}
