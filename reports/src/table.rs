//! A report as a table, and the writers that turn its rows into a file as
//! they come (never the whole report in memory): CSV (RFC 4180, UTF-8, a
//! header row), JSON (`columns`, `rows`, `generated_at`, `params`) and XLSX
//! (rust_xlsxwriter in constant-memory mode: each row goes to disk as the
//! next one starts; typed cells, a bold frozen header with an autofilter,
//! and an "About" sheet with the parameters, generation time and data
//! freshness). Each writes to a local temporary file; its bytes are counted
//! and hashed (SHA-256) for the record and the download's ETag.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
};

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use hangar_shared::kinds::ReportFormat;
use rust_decimal::{Decimal, prelude::ToPrimitive};
use rust_xlsxwriter::{Format, Workbook, Worksheet, XlsxError};
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
    /// A number with a fraction (hours, say).
    Number,
    /// An amount of money: an exact decimal (a string in JSON, so nothing
    /// is rounded; two decimals in a spreadsheet).
    Money,
    /// A calendar day (`YYYY-MM-DD`).
    Date,
    /// A time (RFC 3339, UTC).
    Time,
}

impl ColumnType {
    /// A spreadsheet column's width (characters) for values of this type.
    fn width(self) -> f64 {
        match self {
            Self::Text => 18.0,
            Self::Integer | Self::Number => 10.0,
            Self::Money => 12.0,
            Self::Date => 11.0,
            Self::Time => 20.0,
        }
    }
}

/// A text column.
pub const fn text(name: &'static str) -> Column {
    Column {
        name,
        kind: ColumnType::Text,
    }
}

/// A column of `kind`.
pub const fn col(name: &'static str, kind: ColumnType) -> Column {
    Column { name, kind }
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
    /// A number with a fraction.
    Float(f64),
    /// Money, exact.
    Money(Decimal),
    /// A calendar day.
    Date(NaiveDate),
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

impl From<Option<f64>> for Cell {
    fn from(v: Option<f64>) -> Self {
        v.map_or(Self::Null, Self::Float)
    }
}

impl From<Option<Decimal>> for Cell {
    fn from(v: Option<Decimal>) -> Self {
        v.map_or(Self::Null, Self::Money)
    }
}

impl From<Option<NaiveDate>> for Cell {
    fn from(v: Option<NaiveDate>) -> Self {
        v.map_or(Self::Null, Self::Date)
    }
}

impl From<Option<DateTime<Utc>>> for Cell {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        v.map_or(Self::Null, Self::Time)
    }
}

/// Appends `t` as RFC 3339 in whole seconds, UTC (`2026-11-30T10:00:00Z`),
/// digit by digit: chrono's `format` parses its pattern on every call, which
/// was the CSV writer's largest cost (a profile of a 200,000-row report).
fn push_time(buf: &mut String, t: &DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let year = t.year();
    if !(0..=9999).contains(&year) {
        buf.push_str(&time_text(t));
        return;
    }
    let digits = |buf: &mut String, n: u32, width: u32| {
        for i in (0..width).rev() {
            buf.push(char::from(b'0' + (n / 10u32.pow(i) % 10) as u8));
        }
    };
    digits(buf, year as u32, 4);
    buf.push('-');
    digits(buf, t.month(), 2);
    buf.push('-');
    digits(buf, t.day(), 2);
    buf.push('T');
    digits(buf, t.hour(), 2);
    buf.push(':');
    digits(buf, t.minute(), 2);
    buf.push(':');
    digits(buf, t.second(), 2);
    buf.push('Z');
}

fn time_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Cell {
    /// The cell as CSV writes it: text as it is, anything else formatted
    /// into `scratch` (reused from cell to cell: no allocation per cell).
    fn csv_field<'a>(&'a self, scratch: &'a mut String) -> &'a [u8] {
        use std::fmt::Write as _;
        scratch.clear();
        let _ = match self {
            Self::Null => return b"",
            Self::Text(s) => return s.as_bytes(),
            Self::Int(n) => write!(scratch, "{n}"),
            Self::Float(x) => write!(scratch, "{x}"),
            Self::Money(d) => write!(scratch, "{}", d.normalize()),
            Self::Date(d) => write!(scratch, "{d}"),
            Self::Time(t) => {
                push_time(scratch, t);
                Ok(())
            }
        };
        scratch.as_bytes()
    }

    /// The cell's text, owned (what CSV writes).
    fn text(&self) -> String {
        let mut scratch = String::new();
        String::from_utf8_lossy(self.csv_field(&mut scratch)).into_owned()
    }

    fn json(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Int(n) => Value::from(*n),
            Self::Float(x) => Value::from(*x),
            Self::Text(_) | Self::Money(_) | Self::Date(_) | Self::Time(_) => Value::String(self.text()),
        }
    }

    /// Writes the cell at (`row`, `col`) of a spreadsheet, typed.
    fn xlsx(&self, sheet: &mut Worksheet, row: u32, col: u16, formats: &Formats) -> Result<(), XlsxError> {
        match self {
            Self::Null => {}
            Self::Text(s) => {
                sheet.write_string(row, col, s)?;
            }
            // Excel's numbers are doubles: exact up to 2^53.
            Self::Int(n) => {
                sheet.write_number(row, col, *n as f64)?;
            }
            Self::Float(x) => {
                sheet.write_number(row, col, *x)?;
            }
            Self::Money(d) => {
                sheet.write_number_with_format(row, col, d.to_f64().unwrap_or(f64::NAN), &formats.money)?;
            }
            Self::Date(d) => {
                sheet.write_date_with_format(row, col, d, &formats.date)?;
            }
            Self::Time(t) => {
                // Whole seconds, as the CSV and JSON files state them.
                let t = DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(*t);
                sheet.write_datetime_with_format(row, col, t.naive_utc(), &formats.time)?;
            }
        }
        Ok(())
    }
}

/// The cell formats of a spreadsheet report.
struct Formats {
    header: Format,
    money: Format,
    date: Format,
    time: Format,
}

impl Formats {
    fn new() -> Self {
        Self {
            header: Format::new().set_bold(),
            money: Format::new().set_num_format("#,##0.00"),
            date: Format::new().set_num_format("yyyy-mm-dd"),
            time: Format::new().set_num_format("yyyy-mm-dd hh:mm:ss"),
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

/// What a report's file says about itself: its sheet's title, columns,
/// parameters, when it was generated and how fresh its sources were.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    /// The data sheet's name (at most 31 characters, as Excel allows).
    pub title: &'a str,
    /// The columns.
    pub columns: &'a [Column],
    /// The report's parameters.
    pub params: &'a Value,
    /// When it was generated.
    pub generated_at: DateTime<Utc>,
    /// When each source was last synced.
    pub freshness: &'a Value,
}

/// A spreadsheet being written: the workbook (its data sheet streams rows to
/// a temporary file), the next row, and what the About sheet will say.
struct Sheet {
    book: Workbook,
    formats: Formats,
    columns: usize,
    about: Vec<(String, String)>,
}

enum Body {
    Csv(Box<csv::Writer<Hashing<BufWriter<File>>>>),
    Json(Hashing<BufWriter<File>>),
    Xlsx(Box<Sheet>),
}

fn xlsx_error(e: XlsxError) -> io::Error {
    io::Error::other(e)
}

/// A report being written to a local file.
pub struct TableWriter {
    body: Body,
    path: PathBuf,
    rows: u64,
    scratch: String,
}

impl TableWriter {
    /// Starts the file at `path` in `format` as `head` describes it.
    pub fn create(path: &Path, format: ReportFormat, head: &Head<'_>) -> io::Result<Self> {
        let body = match format {
            ReportFormat::Csv => {
                let mut w = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(hashing(path)?);
                w.write_record(head.columns.iter().map(|c| c.name))?;
                Body::Csv(Box::new(w))
            }
            ReportFormat::Json => {
                let mut out = hashing(path)?;
                write!(
                    out,
                    "{{\"generated_at\":{},\"params\":{},\"freshness\":{},\"columns\":{},\"rows\":[",
                    serde_json::to_string(&time_text(&head.generated_at))?,
                    serde_json::to_string(head.params)?,
                    serde_json::to_string(head.freshness)?,
                    serde_json::to_string(head.columns)?,
                )?;
                Body::Json(out)
            }
            ReportFormat::Xlsx => Body::Xlsx(Box::new(Sheet::start(path, head).map_err(xlsx_error)?)),
        };
        Ok(Self {
            body,
            path: path.to_owned(),
            rows: 0,
            scratch: String::with_capacity(64),
        })
    }

    /// Appends one row (as many cells as columns).
    pub fn row(&mut self, cells: &[Cell]) -> io::Result<()> {
        match &mut self.body {
            Body::Csv(w) => {
                for cell in cells {
                    w.write_field(cell.csv_field(&mut self.scratch))?;
                }
                w.write_record(None::<&[u8]>)?;
            }
            Body::Json(out) => {
                if self.rows > 0 {
                    out.write_all(b",")?;
                }
                let row: Vec<Value> = cells.iter().map(Cell::json).collect();
                serde_json::to_writer(&mut *out, &row)?;
            }
            Body::Xlsx(sheet) => sheet.row(self.rows, cells).map_err(xlsx_error)?,
        }
        self.rows += 1;
        Ok(())
    }

    /// Data rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Calls `progress` with the row count every 5,000 rows (the job's
    /// progress; more often would only load Redis).
    pub fn tick(&self, progress: &mut impl FnMut(u64)) {
        if self.rows.is_multiple_of(5_000) {
            progress(self.rows);
        }
    }

    /// Ends the file (its bytes written, not yet synced to disk).
    pub fn finish(self) -> io::Result<Written> {
        let (bytes, sha256) = match self.body {
            Body::Csv(w) => sealed(w.into_inner().map_err(|e| e.into_error())?)?,
            Body::Json(mut out) => {
                out.write_all(b"]}\n")?;
                sealed(out)?
            }
            Body::Xlsx(sheet) => {
                sheet.save(&self.path, self.rows).map_err(xlsx_error)?;
                digest_of(&self.path)?
            }
        };
        Ok(Written {
            path: self.path,
            rows: self.rows,
            bytes,
            sha256,
        })
    }
}

fn hashing(path: &Path) -> io::Result<Hashing<BufWriter<File>>> {
    Ok(Hashing {
        inner: BufWriter::with_capacity(256 * 1024, File::create(path)?),
        hash: Sha256::new(),
        bytes: 0,
    })
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Ends a streamed file: its size and digest. (Publishing makes it
/// durable where it stays on disk: [`crate::ReportStore::publish`].)
fn sealed(mut out: Hashing<BufWriter<File>>) -> io::Result<(u64, String)> {
    out.flush()?;
    Ok((out.bytes, hex(&out.hash.finalize())))
}

/// The size and digest of a finished file (a zip is written whole at the
/// end, so it is read back once).
fn digest_of(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hash = Hashing {
        inner: io::sink(),
        hash: Sha256::new(),
        bytes: 0,
    };
    io::copy(&mut file, &mut hash)?;
    Ok((hash.bytes, hex(&hash.hash.finalize())))
}

/// Excel's limit on a sheet's rows (the header is one).
const XLSX_MAX_ROWS: u64 = 1_048_576;

impl Sheet {
    fn start(path: &Path, head: &Head<'_>) -> Result<Self, XlsxError> {
        let mut book = Workbook::new();
        // The row spool sits next to the report's own temporary file.
        if let Some(dir) = path.parent() {
            book.set_tempdir(dir)?;
        }
        let formats = Formats::new();
        let sheet = book.add_worksheet_with_constant_memory()?;
        sheet.set_name(head.title)?;
        for (col, column) in head.columns.iter().enumerate() {
            let col = col as u16;
            let width = column.kind.width().max(column.name.len() as f64 + 2.0);
            sheet.set_column_width(col, width)?;
            sheet.write_string_with_format(0, col, column.name, &formats.header)?;
        }
        sheet.set_freeze_panes(1, 0)?;
        let mut about = vec![
            ("report".to_owned(), head.title.to_owned()),
            ("generated_at (UTC)".to_owned(), time_text(&head.generated_at)),
            ("times".to_owned(), "UTC".to_owned()),
        ];
        if let Some(params) = head.params.as_object() {
            about.extend(params.iter().map(|(k, v)| (format!("param: {k}"), plain(v))));
        }
        if let Some(sources) = head.freshness.as_object() {
            for (source, places) in sources {
                match places.as_object() {
                    Some(places) if !places.is_empty() => about.extend(
                        places
                            .iter()
                            .map(|(place, at)| (format!("{source} last succeeded: {place}"), plain(at))),
                    ),
                    _ => about.push((format!("{source} last succeeded"), "never".to_owned())),
                }
            }
        }
        Ok(Self {
            book,
            formats,
            columns: head.columns.len(),
            about,
        })
    }

    fn data(&mut self) -> Result<&mut Worksheet, XlsxError> {
        self.book.worksheet_from_index(0)
    }

    fn row(&mut self, index: u64, cells: &[Cell]) -> Result<(), XlsxError> {
        if index + 1 >= XLSX_MAX_ROWS {
            return Err(XlsxError::RowColumnLimitError);
        }
        let row = (index + 1) as u32;
        let Self { book, formats, .. } = self;
        let sheet = book.worksheet_from_index(0)?;
        for (col, cell) in cells.iter().enumerate() {
            cell.xlsx(sheet, row, col as u16, formats)?;
        }
        Ok(())
    }

    fn save(mut self, path: &Path, rows: u64) -> Result<(), XlsxError> {
        let last_col = (self.columns.max(1) - 1) as u16;
        self.data()?.autofilter(0, 0, rows as u32, last_col)?;
        let header = self.formats.header.clone();
        let about = self.book.add_worksheet();
        about.set_name("About")?;
        about.set_column_width(0, 36)?;
        about.set_column_width(1, 60)?;
        about.write_string_with_format(0, 0, "about", &header)?;
        about.write_string_with_format(0, 1, "value", &header)?;
        for (i, (key, value)) in self.about.iter().enumerate() {
            about.write_string(i as u32 + 1, 0, key)?;
            about.write_string(i as u32 + 1, 1, value)?;
        }
        self.book.save(path)
    }
}

/// A JSON value as a spreadsheet cell's text (strings without quotes).
fn plain(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
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
        let params = serde_json::json!({"x": 1});
        let freshness = serde_json::json!({"sync.workspaces": {"prod/us-east-1": "2026-11-30T23:00:00Z"}});
        let head = Head {
            title: "Test",
            columns: COLUMNS,
            params: &params,
            generated_at: at,
            freshness: &freshness,
        };
        let mut w = TableWriter::create(&path, format, &head).unwrap();
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
        assert_eq!(written.sha256, hex(&Sha256::digest(&bytes)));
    }

    #[test]
    fn json_is_one_document_with_columns_and_rows() {
        let (written, bytes) = write(ReportFormat::Json, &rows());
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["generated_at"], "2026-12-01T00:00:00Z");
        assert_eq!(doc["params"], serde_json::json!({"x": 1}));
        assert_eq!(
            doc["freshness"]["sync.workspaces"]["prod/us-east-1"],
            "2026-11-30T23:00:00Z"
        );
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
    fn times_are_written_digit_by_digit_as_rfc_3339_would() {
        for text in [
            "2026-11-30T10:00:00Z",
            "0999-01-02T03:04:05Z",
            "2024-02-29T23:59:59Z",
        ] {
            let t = DateTime::parse_from_rfc3339(text).unwrap().to_utc();
            let mut buf = String::new();
            push_time(&mut buf, &t);
            assert_eq!(buf, text);
            assert_eq!(buf, time_text(&t));
        }
        let odd = DateTime::parse_from_rfc3339("2026-11-30T10:00:00.75Z")
            .unwrap()
            .to_utc();
        let mut buf = String::new();
        push_time(&mut buf, &odd);
        assert_eq!(buf, "2026-11-30T10:00:00Z", "whole seconds, as in every format");
    }

    #[test]
    fn typed_cells_read_as_text_and_json() {
        let cells = [
            Cell::Money(Decimal::new(123_4500, 4)),
            Cell::Float(1.5),
            Cell::Date(NaiveDate::from_ymd_opt(2026, 11, 3).unwrap()),
        ];
        let text: Vec<String> = cells.iter().map(Cell::text).collect();
        assert_eq!(text, ["123.45", "1.5", "2026-11-03"]);
        let json: Vec<Value> = cells.iter().map(Cell::json).collect();
        assert_eq!(
            json,
            [
                serde_json::json!("123.45"),
                serde_json::json!(1.5),
                serde_json::json!("2026-11-03")
            ]
        );
    }

    #[test]
    fn xlsx_is_a_zip_with_the_data_sheet_and_about() {
        let (written, bytes) = write(ReportFormat::Xlsx, &rows());
        assert_eq!(&bytes[..2], b"PK", "an XLSX file is a zip");
        assert_eq!((written.rows, written.bytes), (2, bytes.len() as u64));
        assert_eq!(written.sha256, hex(&Sha256::digest(&bytes)));
        // Cell values are checked through openpyxl in the integration tests.
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
