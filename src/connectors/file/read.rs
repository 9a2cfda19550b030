//! Reading a dropped file into records: pure, no I/O. CSV gives one record
//! per row (a flat JSON object keyed by the header row), JSON lines one per
//! line, XML one per file. Every JSON record also gets `_file`: the file's
//! `name`, `sha256`, the 1-based data `row` and its `line`, so a mapping can
//! build a stable id from them.

use serde_json::{Map, Value};

use crate::config::file::FileFormat;

/// One record, ready for the partner's inbound mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// 1-based line of the file where the record starts.
    pub line: u64,
    /// The document handed to the mapping (JSON object, or the XML file).
    pub body: Vec<u8>,
}

/// A record that could not be read; the rest of the file still is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRecord {
    /// 1-based line.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// The file as a whole cannot be read (encoding, header).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ReadError {
    /// 1-based line.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

/// Where the records come from, for `_file`.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// File name.
    pub name: &'a str,
    /// Hex SHA-256 of the file.
    pub sha256: &'a str,
}

/// Splits `bytes` into records.
pub fn records(
    format: FileFormat,
    encoding: &'static encoding_rs::Encoding,
    bytes: &[u8],
    origin: Origin<'_>,
) -> Result<Vec<Result<Record, BadRecord>>, ReadError> {
    match format {
        FileFormat::Xml => Ok(vec![Ok(Record {
            line: 1,
            body: bytes.to_vec(),
        })]),
        FileFormat::Csv => csv_records(&decode(encoding, bytes)?, origin),
        FileFormat::Jsonl => Ok(jsonl_records(&decode(encoding, bytes)?, origin)),
    }
}

/// Decodes the text; a byte-order mark wins over the configured encoding.
fn decode(encoding: &'static encoding_rs::Encoding, bytes: &[u8]) -> Result<String, ReadError> {
    let (text, used, had_errors) = encoding.decode(bytes);
    if had_errors {
        let line = text.find('\u{FFFD}').map_or(1, |at| text[..at].matches('\n').count() as u64 + 1);
        return Err(ReadError {
            line,
            message: format!("the file is not valid {} text (set `encoding` in [file])", used.name()),
        });
    }
    Ok(text.into_owned())
}

fn file_meta(origin: Origin<'_>, row: u64, line: u64) -> Value {
    serde_json::json!({ "name": origin.name, "sha256": origin.sha256, "row": row, "line": line })
}

fn csv_records(text: &str, origin: Origin<'_>) -> Result<Vec<Result<Record, BadRecord>>, ReadError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ReadError {
            line: 1,
            message: format!("the header row cannot be read: {e}"),
        })?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if headers.is_empty() || headers.iter().all(String::is_empty) {
        return Err(ReadError {
            line: 1,
            message: "the file has no header row".into(),
        });
    }
    for (i, h) in headers.iter().enumerate() {
        if h.is_empty() {
            return Err(ReadError {
                line: 1,
                message: format!("column {} has no name in the header row", i + 1),
            });
        }
        if h == "_file" || headers[..i].contains(h) {
            return Err(ReadError {
                line: 1,
                message: format!("column name {h:?} is used twice or reserved"),
            });
        }
    }
    let mut out = Vec::new();
    let mut row = 0u64;
    let mut lines = LineCounter::new(text);
    for result in reader.records() {
        row += 1;
        match result {
            Ok(rec) => {
                let line = lines.line_at(rec.position().map_or(0, csv::Position::byte));
                let mut obj = Map::new();
                for (h, v) in headers.iter().zip(rec.iter()) {
                    // An empty cell is an absent value, so `required`,
                    // `default` and first-present `from` lists work.
                    if !v.trim().is_empty() {
                        obj.insert(h.clone(), Value::from(v));
                    }
                }
                obj.insert("_file".into(), file_meta(origin, row, line));
                out.push(Ok(Record {
                    line,
                    body: serde_json::to_vec(&Value::Object(obj)).unwrap_or_default(),
                }));
            }
            Err(e) => {
                let line = lines.line_at(e.position().map_or(0, csv::Position::byte));
                let message = match e.kind() {
                    csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                        format!("the row has {len} fields; the header row has {expected_len}")
                    }
                    _ => format!("the row cannot be read: {e}"),
                };
                out.push(Err(BadRecord { line, message }));
            }
        }
    }
    Ok(out)
}

/// 1-based lines of byte offsets that only grow: counted incrementally, so
/// a large file is not rescanned for every row. An offset that points at the
/// end of the previous line (CRLF) is moved to the start of the next one.
struct LineCounter<'a> {
    text: &'a str,
    at: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, at: 0, line: 1 }
    }

    fn line_at(&mut self, byte: u64) -> u64 {
        let bytes = self.text.as_bytes();
        let mut byte = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
        while byte < bytes.len() && (bytes[byte] == b'\r' || bytes[byte] == b'\n') {
            byte += 1;
        }
        if byte >= self.at {
            self.line += bytes[self.at..byte].iter().filter(|b| **b == b'\n').count() as u64;
            self.at = byte;
        }
        self.line
    }
}

fn jsonl_records(text: &str, origin: Origin<'_>) -> Vec<Result<Record, BadRecord>> {
    let mut out = Vec::new();
    let mut row = 0u64;
    for (i, l) in text.lines().enumerate() {
        let line = i as u64 + 1;
        if l.trim().is_empty() {
            continue;
        }
        row += 1;
        match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(mut obj)) => {
                obj.insert("_file".into(), file_meta(origin, row, line));
                out.push(Ok(Record {
                    line,
                    body: serde_json::to_vec(&Value::Object(obj)).unwrap_or_default(),
                }));
            }
            Ok(_) => out.push(Err(BadRecord {
                line,
                message: "the line is not a JSON object".into(),
            })),
            Err(e) => out.push(Err(BadRecord {
                line,
                message: format!("malformed JSON at column {}: {e}", e.column()),
            })),
        }
    }
    out
}

/// Whether `name` matches the glob `pattern` (`*` any run, `?` one character).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: Origin<'static> = Origin {
        name: "reg.csv",
        sha256: "ab12",
    };

    fn json(r: &Result<Record, BadRecord>) -> Value {
        serde_json::from_slice(&r.as_ref().expect("record").body).expect("json")
    }

    #[test]
    fn csv_rows_become_flat_objects_with_their_file() {
        let text = "统一社会信用代码,企业名称,登记状态\n91350206MA2XK7P16K,厦门鹭江精密电路有限公司,存续\n\"91350205MA34TR6H50\",\"厦门, 海沧\",\n";
        let recs = records(FileFormat::Csv, encoding_rs::UTF_8, text.as_bytes(), ORIGIN).unwrap();
        assert_eq!(recs.len(), 2);
        let first = json(&recs[0]);
        assert_eq!(first["统一社会信用代码"], "91350206MA2XK7P16K");
        assert_eq!(
            first["_file"],
            serde_json::json!({"name": "reg.csv", "sha256": "ab12", "row": 1, "line": 2})
        );
        let second = json(&recs[1]);
        assert_eq!(second["企业名称"], "厦门, 海沧");
        assert!(second.get("登记状态").is_none(), "an empty cell is absent: {second}");
        assert_eq!(recs[1].as_ref().unwrap().line, 3);
        let crlf = "a,b\r\n1,2\r\n3\r\n\r\n4,5\r\n";
        let recs = records(FileFormat::Csv, encoding_rs::UTF_8, crlf.as_bytes(), ORIGIN).unwrap();
        let lines: Vec<u64> = recs.iter().map(|r| r.as_ref().map_or_else(|b| b.line, |r| r.line)).collect();
        assert_eq!(lines, [2, 3, 5]);
    }

    #[test]
    fn a_short_row_is_refused_with_its_line_and_the_rest_is_read() {
        let text = "a,b\n1,2\n3\n4,5\n";
        let recs = records(FileFormat::Csv, encoding_rs::UTF_8, text.as_bytes(), ORIGIN).unwrap();
        assert_eq!(recs.len(), 3);
        let bad = recs[1].as_ref().unwrap_err();
        assert_eq!(bad.line, 3);
        assert!(bad.message.contains("1 fields"), "{}", bad.message);
        assert_eq!(json(&recs[2])["a"], "4");
        assert_eq!(json(&recs[2])["_file"]["row"], 3);
    }

    #[test]
    fn gbk_is_decoded_and_a_utf8_bom_is_dropped() {
        let (gbk, _, _) = encoding_rs::GBK.encode("名称,状态\n厦门,存续\n");
        let recs = records(FileFormat::Csv, encoding_rs::GBK, &gbk, ORIGIN).unwrap();
        assert_eq!(json(&recs[0])["名称"], "厦门");
        let bom = "\u{FEFF}名称\n厦门\n";
        let recs = records(FileFormat::Csv, encoding_rs::UTF_8, bom.as_bytes(), ORIGIN).unwrap();
        assert_eq!(json(&recs[0])["名称"], "厦门");
    }

    #[test]
    fn gbk_read_as_utf8_is_refused_with_its_line() {
        let (gbk, _, _) = encoding_rs::GBK.encode("a,b\n1,2\n厦门,x\n");
        let e = records(FileFormat::Csv, encoding_rs::UTF_8, &gbk, ORIGIN).unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.message.contains("UTF-8"), "{e}");
    }

    #[test]
    fn headers_must_be_named_once() {
        let e = records(FileFormat::Csv, encoding_rs::UTF_8, b"a,,b\n1,2,3\n", ORIGIN).unwrap_err();
        assert!(e.message.contains("column 2"), "{e}");
        let e = records(FileFormat::Csv, encoding_rs::UTF_8, b"a,a\n1,2\n", ORIGIN).unwrap_err();
        assert!(e.message.contains("twice"), "{e}");
        let e = records(FileFormat::Csv, encoding_rs::UTF_8, b"", ORIGIN).unwrap_err();
        assert!(e.message.contains("no header"), "{e}");
    }

    #[test]
    fn json_lines_and_xml() {
        let recs = records(FileFormat::Jsonl, encoding_rs::UTF_8, b"{\"a\":1}\n\n[1]\n{\"a\":2}\n", ORIGIN).unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(json(&recs[0])["_file"]["line"], 1);
        assert_eq!(recs[1].as_ref().unwrap_err().line, 3);
        assert_eq!(json(&recs[2])["_file"]["row"], 3);
        let recs = records(FileFormat::Xml, encoding_rs::UTF_8, b"<a/>", ORIGIN).unwrap();
        assert_eq!(
            recs,
            vec![Ok(Record {
                line: 1,
                body: b"<a/>".to_vec()
            })]
        );
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "a.csv"));
        assert!(glob_match("*.csv", "registry-20260301.csv"));
        assert!(!glob_match("*.csv", "registry.csv.part"));
        assert!(glob_match("reg-????.csv", "reg-0301.csv"));
        assert!(!glob_match("reg-????.csv", "reg-031.csv"));
        assert!(glob_match("a*b*c", "aXXbYYc"));
        assert!(!glob_match("a*b*c", "aXXbYY"));
    }
}
