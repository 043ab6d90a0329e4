//! `results.jsonl` and `results.csv`, written one flushed record at a time, and read back.
//!
//! Crash policy: the writer finishes every line with a newline, so the only damage an
//! interrupted run can leave is an incomplete *last* line without one. [`read_records`] reports
//! it as [`ReportError::Truncated`] naming the file and line; [`read_records_recovering`] skips
//! it, returns every complete record and says what it skipped in [`Recovered::warning`]. A
//! broken line anywhere else is an error in both.
//!
//! CSV cells: `None` is an empty cell, `samples` and `warnings` are `;`-joined (a `;` inside a
//! warning is written as `,`), and an empty optional string reads back as `None`. JSON Lines
//! keeps every value exactly.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Number, Value};

use crate::error::ReportError;
use crate::schema::{FieldType, Record, FIELDS, SCHEMA_VERSION};

/// Appends records to `results.jsonl` and `results.csv` in one directory.
#[derive(Debug)]
pub struct ResultWriter {
    jsonl: File,
    csv: csv::Writer<File>,
    jsonl_path: PathBuf,
    csv_path: PathBuf,
}

impl ResultWriter {
    /// Creates `dir` if needed and, in it, `results.jsonl` (empty) and `results.csv` (header
    /// line only). Refuses with [`ReportError::Exists`] if either file is already there, so an
    /// earlier run's results are never overwritten.
    pub fn create(dir: &Path) -> Result<ResultWriter, ReportError> {
        std::fs::create_dir_all(dir).map_err(|e| ReportError::io(dir, e))?;
        let jsonl_path = dir.join("results.jsonl");
        let csv_path = dir.join("results.csv");
        for path in [&jsonl_path, &csv_path] {
            if path.exists() {
                return Err(ReportError::Exists(path.clone()));
            }
        }
        let jsonl = create_new(&jsonl_path)?;
        let csv_file = create_new(&csv_path)?;
        let mut csv = csv::WriterBuilder::new()
            .has_headers(false)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(csv_file);
        let header: Vec<&str> = FIELDS.iter().map(|(name, _)| *name).collect();
        csv.write_record(&header)
            .and_then(|()| csv.flush().map_err(csv::Error::from))
            .map_err(|e| csv_io(&csv_path, e))?;
        Ok(ResultWriter {
            jsonl,
            csv,
            jsonl_path,
            csv_path,
        })
    }

    /// Writes `record` as one line to each file and flushes both to the operating system, so
    /// the files stay valid and complete up to this record if the process dies afterwards.
    pub fn append(&mut self, record: &Record) -> Result<(), ReportError> {
        let encode = |message: String| ReportError::Encode {
            test: record.test.clone(),
            format: record.format.clone(),
            message,
        };
        check_finite(record).map_err(encode)?;
        let mut line = serde_json::to_string(record).map_err(|e| encode(e.to_string()))?;
        line.push('\n');
        let cells = csv_cells(record).map_err(encode)?;
        // One write call per line: a crash leaves at most this line incomplete.
        self.jsonl
            .write_all(line.as_bytes())
            .and_then(|()| self.jsonl.flush())
            .map_err(|e| ReportError::io(&self.jsonl_path, e))?;
        self.csv
            .write_record(&cells)
            .and_then(|()| self.csv.flush().map_err(csv::Error::from))
            .map_err(|e| csv_io(&self.csv_path, e))?;
        Ok(())
    }

    /// `(results.jsonl, results.csv)`.
    pub fn paths(&self) -> (&Path, &Path) {
        (&self.jsonl_path, &self.csv_path)
    }
}

fn create_new(path: &Path) -> Result<File, ReportError> {
    File::create_new(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            ReportError::Exists(path.to_owned())
        } else {
            ReportError::io(path, e)
        }
    })
}

fn csv_io(path: &Path, e: csv::Error) -> ReportError {
    ReportError::io(path, std::io::Error::other(e.to_string()))
}

// JSON has no NaN or infinity; serde_json would silently write null, and the value would be lost.
fn check_finite(record: &Record) -> Result<(), String> {
    let named = [
        ("median", Some(record.median)),
        ("mean", Some(record.mean)),
        ("stddev", Some(record.stddev)),
    ];
    if let Some((name, _)) = named
        .iter()
        .find(|(_, v)| v.is_some_and(|v| !v.is_finite()))
    {
        return Err(format!("{name} is not finite"));
    }
    if record.samples.iter().any(|v| !v.is_finite()) {
        return Err("samples hold a value that is not finite".to_owned());
    }
    Ok(())
}

fn csv_cells(record: &Record) -> Result<Vec<String>, String> {
    let value = serde_json::to_value(record).map_err(|e| e.to_string())?;
    let Value::Object(map) = value else {
        return Err("record did not serialize to an object".to_owned());
    };
    Ok(FIELDS
        .iter()
        .map(|(name, _)| map.get(*name).map(csv_cell).unwrap_or_default())
        .collect())
}

fn csv_cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => items
            .iter()
            .map(|v| csv_cell(v).replace(';', ","))
            .collect::<Vec<_>>()
            .join(";"),
        Value::Object(_) => value.to_string(),
    }
}

/// What [`read_records_recovering`] read.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    /// Every complete record, in file order.
    pub records: Vec<Record>,
    /// Set when an incomplete last line was skipped: which file and line.
    pub warning: Option<String>,
}

/// A results path as every reader takes it: a `.jsonl`/`.csv` file, or a directory holding
/// `results.jsonl` (else `results.csv`).
pub fn results_file(path: &Path) -> Result<PathBuf, ReportError> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    ["results.jsonl", "results.csv"]
        .iter()
        .map(|name| path.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| ReportError::NoResults(path.to_path_buf()))
}

/// Reads a `.jsonl` or `.csv` results file. Any line that is not a valid record, including an
/// incomplete last line left by an interrupted run, is an error naming the file and line.
pub fn read_records(path: &Path) -> Result<Vec<Record>, ReportError> {
    match read_any(path)? {
        (records, None) => Ok(records),
        (_, Some(line)) => Err(ReportError::Truncated {
            path: path.to_owned(),
            line,
        }),
    }
}

/// Like [`read_records`], but skips an incomplete last line (no newline, does not parse: what
/// a crash while writing leaves) and reports it in [`Recovered::warning`].
pub fn read_records_recovering(path: &Path) -> Result<Recovered, ReportError> {
    let (records, truncated) = read_any(path)?;
    Ok(Recovered {
        records,
        warning: truncated.map(|line| {
            format!(
                "{}:{line}: skipped the incomplete last line (the run was probably interrupted)",
                path.display()
            )
        }),
    })
}

// The records, and the line number of an incomplete last line if there was one.
fn read_any(path: &Path) -> Result<(Vec<Record>, Option<u64>), ReportError> {
    let text = std::fs::read_to_string(path).map_err(|e| ReportError::io(path, e))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl") => read_jsonl(path, &text),
        Some("csv") => read_csv(path, &text),
        _ => Err(ReportError::UnknownExtension(path.to_owned())),
    }
}

fn read_jsonl(path: &Path, text: &str) -> Result<(Vec<Record>, Option<u64>), ReportError> {
    let mut records = Vec::new();
    let unterminated_last = !text.is_empty() && !text.ends_with('\n');
    let count = text.lines().count();
    for (i, line) in text.lines().enumerate() {
        let number = i as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_str(line) {
            Ok(value) => value,
            Err(_) if unterminated_last && i + 1 == count => return Ok((records, Some(number))),
            Err(e) => return Err(parse_error(path, number, e.to_string())),
        };
        records.push(record_from_value(path, number, value)?);
    }
    Ok((records, None))
}

fn read_csv(path: &Path, text: &str) -> Result<(Vec<Record>, Option<u64>), ReportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| parse_error(path, 1, e.to_string()))?
        .clone();
    let unterminated_last = !text.is_empty() && !text.ends_with('\n');
    let rows: Vec<_> = reader.records().collect();
    let mut records = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let row = row
            .as_ref()
            .map_err(|e| parse_error(path, csv_error_line(e), e.to_string()))?;
        let number = row.position().map_or(i as u64 + 2, |p| p.line());
        // The writer ends every row with a newline; a row without one was cut short.
        if unterminated_last && i + 1 == rows.len() {
            return Ok((records, Some(number)));
        }
        if row.len() != header.len() {
            return Err(parse_error(
                path,
                number,
                format!("{} cells, the header has {}", row.len(), header.len()),
            ));
        }
        let mut map = Map::new();
        for (name, cell) in header.iter().zip(row.iter()) {
            let Some((_, kind)) = FIELDS.iter().find(|(field, _)| *field == name) else {
                continue; // a column from a newer writer: ignored, as in JSON Lines
            };
            if let Some(value) = csv_value(*kind, cell)
                .map_err(|m| parse_error(path, number, format!("{name}: {m}")))?
            {
                map.insert(name.to_owned(), value);
            }
        }
        records.push(record_from_value(path, number, Value::Object(map))?);
    }
    Ok((records, None))
}

fn csv_error_line(e: &csv::Error) -> u64 {
    e.position().map_or(0, |p| p.line())
}

// `None` leaves the field out, so serde applies its default (or reports it missing).
fn csv_value(kind: FieldType, cell: &str) -> Result<Option<Value>, String> {
    let float = |s: &str| -> Result<Value, String> {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a number"))?;
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| format!("{s:?} is not finite"))
    };
    Ok(match kind {
        FieldType::Str => Some(Value::String(cell.to_owned())),
        _ if cell.is_empty() => match kind {
            FieldType::FloatList | FieldType::StrList => Some(Value::Array(Vec::new())),
            _ => None,
        },
        FieldType::OptStr => Some(Value::String(cell.to_owned())),
        FieldType::Int => {
            let v: u64 = cell
                .trim()
                .parse()
                .map_err(|_| format!("{cell:?} is not a whole number"))?;
            Some(Value::Number(v.into()))
        }
        FieldType::Float => Some(float(cell)?),
        FieldType::Bool => match cell.trim() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            other => return Err(format!("{other:?} is not true or false")),
        },
        FieldType::FloatList => Some(Value::Array(
            cell.split(';').map(float).collect::<Result<_, _>>()?,
        )),
        FieldType::StrList => Some(Value::Array(
            cell.split(';')
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        )),
    })
}

fn record_from_value(path: &Path, line: u64, value: Value) -> Result<Record, ReportError> {
    if let Some(found) = value.get("schema_version").and_then(Value::as_u64) {
        if found > u64::from(SCHEMA_VERSION) {
            return Err(ReportError::SchemaTooNew {
                path: path.to_owned(),
                line,
                found,
                supported: SCHEMA_VERSION,
            });
        }
    }
    serde_json::from_value(value).map_err(|e| parse_error(path, line, e.to_string()))
}

fn parse_error(path: &Path, line: u64, message: String) -> ReportError {
    ReportError::Parse {
        path: path.to_owned(),
        line,
        message,
    }
}
