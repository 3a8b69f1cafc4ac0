//! Numeric CSV files with a header row and one column of class labels.

use super::Dataset;
use crate::error::{Error, Result};
use std::io::{BufRead, Read};
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

/// The longest line [`load_csv`] reads (1 MiB): a longer one is an error,
/// not an allocation the size of the line's cells.
pub const MAX_CSV_LINE: usize = 1 << 20;

/// A file's lines, numbered from 1, each read with at most
/// [`MAX_CSV_LINE`] bytes in memory.
struct BoundedLines<'a, R> {
    reader: R,
    number: usize,
    path: &'a Path,
}

impl<R: BufRead> Iterator for BoundedLines<'_, R> {
    type Item = Result<(usize, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut bytes = Vec::new();
        let read = (&mut self.reader)
            .take(MAX_CSV_LINE as u64 + 1)
            .read_until(b'\n', &mut bytes);
        self.number += 1;
        let fail = |detail: String| {
            Some(Err(Error::Format {
                path: self.path.into(),
                detail,
            }))
        };
        match read {
            Err(e) => fail(format!("line {}: {e}", self.number)),
            Ok(0) => None,
            Ok(n) if n > MAX_CSV_LINE => fail(format!(
                "line {} is longer than {MAX_CSV_LINE} bytes (MAX_CSV_LINE)",
                self.number
            )),
            Ok(_) => match String::from_utf8(bytes) {
                Ok(text) => Some(Ok((
                    self.number,
                    text.trim_end_matches(['\n', '\r']).to_string(),
                ))),
                Err(_) => fail(format!("line {} is not UTF-8 text", self.number)),
            },
        }
    }
}

/// Loads a comma-separated file: a header row, then one row per sample of
/// numeric cells. The `label` column holds class indices (non-negative
/// integers); every other column becomes a feature, in file order.
/// `classes` defaults to the largest label plus one.
///
/// Blank lines are skipped. Quoted cells are unquoted, but a comma inside
/// quotes is not supported (numeric data has none). Every error names the
/// 1-based line and the column, so a bad cell can be found in an editor.
/// Lines are read one at a time, each at most [`MAX_CSV_LINE`] bytes.
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
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    let mut lines = BoundedLines {
        reader: std::io::BufReader::new(file),
        number: 0,
        path,
    }
    .filter(|l| !matches!(l, Ok((_, text)) if text.trim().is_empty()));
    let (_, header) = lines
        .next()
        .transpose()?
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
    for next in lines {
        let (line, text) = next?;
        // Counted before they are collected: a line of a million cells
        // costs no million-entry vector.
        let count = text.split(',').count();
        if count != names.len() {
            return Err(bad(format!(
                "line {line}: {count} cells, but the header has {} columns",
                names.len()
            )));
        }
        let cells: Vec<&str> = text.split(',').map(cell).collect();
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
