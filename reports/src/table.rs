//! A report as a table, and the writers that turn its rows into a file as
//! they come (never the whole report in memory): CSV (RFC 4180, UTF-8, a
//! header row) and JSON (`columns`, `rows`, `generated_at`, `params`).
//! Each writes to a local temporary file, counting its bytes and hashing
//! them (SHA-256) on the way, for the record and the download's ETag.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

use chrono::{DateTime, SecondsFormat, Utc};
use hangar_shared::kinds::ReportFormat;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What a column holds (the JSON document names it; spreadsheets type by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// Text.
    Text,
    /// A whole number.
    Integer,
    /// A time (RFC 3339, UTC).
    Time,
}

/// One column: its name in the header and its type.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Column {
    /// Header name (snake_case).
    pub name: &'static str,
    /// What it holds.
    #[serde(rename = "type")]
    pub kind: ColumnType,
}

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Nothing (an empty CSV field, JSON null).
    Null,
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A time.
    Time(DateTime<Utc>),
}

impl From<Option<String>> for Cell {
    fn from(v: Option<String>) -> Self {
        v.map_or(Self::Null, Self::Text)
    }
}

impl From<Option<i64>> for Cell {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Self::Null, Self::Int)
    }
}

impl From<Option<DateTime<Utc>>> for Cell {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        v.map_or(Self::Null, Self::Time)
    }
}

fn time_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Cell {
    fn text(&self) -> String {
        match self {
            Self::Null => String::new(),
            Self::Text(s) => s.clone(),
            Self::Int(n) => n.to_string(),
            Self::Time(t) => time_text(t),
        }
    }

    fn json(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Text(s) => Value::String(s.clone()),
            Self::Int(n) => Value::from(*n),
            Self::Time(t) => Value::String(time_text(t)),
        }
    }
}

/// A writer that counts and hashes what goes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The finished local file.
#[derive(Debug, Clone)]
pub struct Written {
    /// Where it is (a temporary file the caller publishes, then removes).
    pub path: PathBuf,
    /// Data rows (the header not counted).
    pub rows: u64,
    /// Its size.
    pub bytes: u64,
    /// SHA-256 of its bytes, hex.
    pub sha256: String,
}

enum Body {
    Csv(Box<csv::Writer<Hashing<BufWriter<File>>>>),
    Json(Hashing<BufWriter<File>>),
}

/// A report being written to a local file.
pub struct TableWriter {
    body: Body,
    path: PathBuf,
    rows: u64,
}

impl TableWriter {
    /// Starts the file at `path` in `format` with `columns`; `params` and
    /// `generated_at` go into a JSON document's head.
    pub fn create(
        path: &Path,
        format: ReportFormat,
        columns: &[Column],
        params: &Value,
        generated_at: DateTime<Utc>,
    ) -> io::Result<Self> {
        let out = Hashing {
            inner: BufWriter::with_capacity(256 * 1024, File::create(path)?),
            hash: Sha256::new(),
            bytes: 0,
        };
        let body = match format {
            ReportFormat::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(out);
                w.write_record(columns.iter().map(|c| c.name))?;
                Body::Csv(Box::new(w))
            }
            ReportFormat::Json => {
                let mut out = out;
                write!(
                    out,
                    "{{\"generated_at\":{},\"params\":{},\"columns\":{},\"rows\":[",
                    serde_json::to_string(&time_text(&generated_at))?,
                    serde_json::to_string(params)?,
                    serde_json::to_string(columns)?,
                )?;
                Body::Json(out)
            }
        };
        Ok(Self {
            body,
            path: path.to_owned(),
            rows: 0,
        })
    }

    /// Appends one row (as many cells as columns).
    pub fn row(&mut self, cells: &[Cell]) -> io::Result<()> {
        match &mut self.body {
            Body::Csv(w) => w.write_record(cells.iter().map(Cell::text))?,
            Body::Json(out) => {
                if self.rows > 0 {
                    out.write_all(b",")?;
                }
                let row: Vec<Value> = cells.iter().map(Cell::json).collect();
                serde_json::to_writer(&mut *out, &row)?;
            }
        }
        self.rows += 1;
        Ok(())
    }

    /// Data rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Ends the file and flushes it to disk.
    pub fn finish(self) -> io::Result<Written> {
        let mut out = match self.body {
            Body::Csv(w) => w.into_inner().map_err(|e| e.into_error())?,
            Body::Json(mut out) => {
                out.write_all(b"]}\n")?;
                out
            }
        };
        out.flush()?;
        out.inner.get_ref().sync_all()?;
        Ok(Written {
            path: self.path,
            rows: self.rows,
            bytes: out.bytes,
            sha256: out.hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLUMNS: &[Column] = &[
        Column {
            name: "id",
            kind: ColumnType::Text,
        },
        Column {
            name: "n",
            kind: ColumnType::Integer,
        },
        Column {
            name: "at",
            kind: ColumnType::Time,
        },
    ];

    fn rows() -> Vec<Vec<Cell>> {
        let at = DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z")
            .unwrap()
            .to_utc();
        vec![
            vec![Cell::Text("a,\"b\"\nc".into()), Cell::Int(3), Cell::Time(at)],
            vec![Cell::Text("é".into()), Cell::Null, Cell::Null],
        ]
    }

    fn write(format: ReportFormat, rows: &[Vec<Cell>]) -> (Written, Vec<u8>) {
        let path = std::env::temp_dir().join(format!("hangar-table-{}", ulid::Ulid::new()));
        let at = DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .to_utc();
        let mut w = TableWriter::create(&path, format, COLUMNS, &serde_json::json!({"x": 1}), at).unwrap();
        for r in rows {
            w.row(r).unwrap();
        }
        let written = w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        (written, bytes)
    }

    #[test]
    fn csv_is_rfc_4180_with_a_header_row() {
        let (written, bytes) = write(ReportFormat::Csv, &rows());
        assert_eq!(
            String::from_utf8(bytes.clone()).unwrap(),
            "id,n,at\r\n\"a,\"\"b\"\"\nc\",3,2026-11-30T10:00:00Z\r\né,,\r\n"
        );
        assert_eq!((written.rows, written.bytes), (2, bytes.len() as u64));
        let digest: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(written.sha256, digest);
    }

    #[test]
    fn json_is_one_document_with_columns_and_rows() {
        let (written, bytes) = write(ReportFormat::Json, &rows());
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["generated_at"], "2026-12-01T00:00:00Z");
        assert_eq!(doc["params"], serde_json::json!({"x": 1}));
        assert_eq!(
            doc["columns"][1],
            serde_json::json!({"name": "n", "type": "integer"})
        );
        assert_eq!(
            doc["rows"],
            serde_json::json!([["a,\"b\"\nc", 3, "2026-11-30T10:00:00Z"], ["é", null, null]])
        );
        assert_eq!(written.rows, 2);
    }

    #[test]
    fn an_empty_report_is_a_valid_file_with_its_header() {
        let (_, csv) = write(ReportFormat::Csv, &[]);
        assert_eq!(csv, b"id,n,at\r\n");
        let (_, json) = write(ReportFormat::Json, &[]);
        let doc: Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(doc["rows"], serde_json::json!([]));
    }
}
