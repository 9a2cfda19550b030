//! Simulator of the provincial market regulation's registry extracts, a
//! partner that sends *files*: it writes CSV extracts of the enterprise
//! registry (GB18030, CRLF, the header row of
//! `contracts/market-regulation/README.md`) into the hub's drop folder, one
//! file every interval, as the department's export job would. Each file is
//! written under a hidden temporary name and renamed into place, so the hub
//! never sees half a file. It touches nothing but the folder it is given.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{Days, NaiveDate};
use tokio_util::sync::CancellationToken;

/// The header row of an extract (contract: `contracts/market-regulation/`).
pub const HEADER: [&str; 18] = [
    "统一社会信用代码",
    "企业名称",
    "住所",
    "经营场所",
    "行政区划代码",
    "行业代码",
    "行业名称",
    "单位类别",
    "管理类别",
    "法定代表人",
    "联系电话",
    "环保负责人",
    "环保负责人电话",
    "经度",
    "纬度",
    "登记状态",
    "状态说明",
    "核准日期",
];

/// Registered units the extracts cycle through, as rows of every column of
/// [`HEADER`] but the approval date (no cell holds a comma): real check
/// characters, existing divisions.
const UNITS: [&str; 6] = [
    "91350206MA2XK7P16K,厦门鹭江精密电路有限公司,厦门市湖里区火炬高新区信息光电园创新路18号,,350206,C3982,电子电路制造,产废单位,重点监管,吴国栋,0592-5761234,陈志强,13906051234,118.1846,24.5132,存续,",
    "91350303MA1XG6125R,莆田市涵江区鑫达电镀有限公司,莆田市涵江区江口镇电镀集控区8号,,350303,3360,,产废单位,登记管理,黄德明,0594-3651234,,,,,注销,",
    "52350212MAD4H3J9XL,厦门市同安区五显镇明溪村卫生所,厦门市同安区五显镇明溪村委会楼下,厦门市同安区五显镇明溪村明溪里42号,350212,Q8423,,医疗机构,登记管理,苏丽华,13799281234,,,,,存续,",
    "91350205MA34TR6H50,厦门海沧绿源环境服务有限公司,厦门市海沧区南部工业区港南路66号,,350205,N7724,,经营单位,重点监管,林建伟,0592-6519800,林雅婷,0592-6519876,117.9936,24.4611,存续,",
    "91350211MA31BN8C5A,厦门集美顺安危险货物运输有限公司,厦门市集美区灌口镇安仁大道1号,,350211,G5430,,运输单位,,黄建华,0592-6281234,,,,,存续,",
    "91350303MA1XG6125R,莆田市涵江区鑫达电镀有限公司,莆田市涵江区江口镇电镀集控区8号,,350303,3360,,产废单位,登记管理,黄德明,0594-3651234,,,,,停业,停产整治",
];

/// How the simulator writes.
#[derive(Clone, Debug)]
pub struct DropConfig {
    /// The drop folder the hub watches (`MARKET_DROP_DIR`).
    pub dir: PathBuf,
    /// Pause between two files.
    pub interval: Duration,
    /// Rows per file (1 to 100).
    pub rows: usize,
    /// Stop after this many files (`None`: until stopped).
    pub count: Option<u64>,
}

/// Extract number `n` (from 1) made on `today`: `rows` units, approval
/// dates in the month before, as CSV text (before GB18030 encoding).
pub fn extract(n: u64, rows: usize, today: NaiveDate) -> String {
    let mut out = HEADER.join(",");
    out.push_str("\r\n");
    for i in 0..rows as u64 {
        let k = (n - 1) * rows as u64 + i;
        let unit = UNITS[(k % UNITS.len() as u64) as usize];
        let approved = today.checked_sub_days(Days::new(k % 30)).unwrap_or(today);
        let mut cells: Vec<String> = unit.split(',').map(csv_cell).collect();
        cells.push(approved.format("%Y-%m-%d").to_string());
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Quotes a cell when it holds a comma, quote or line break (RFC 4180).
fn csv_cell(c: &str) -> String {
    if c.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", c.replace('"', "\"\""))
    } else {
        c.to_string()
    }
}

/// Writes extract `n` into `dir` as `registry-<timestamp>-<n>.csv` in
/// GB18030; returns its path.
pub fn write_extract(dir: &Path, n: u64, rows: usize) -> std::io::Result<PathBuf> {
    let now = super::park::beijing_now();
    let name = format!("registry-{}-{n:04}.csv", now.format("%Y%m%d%H%M%S"));
    let text = extract(n, rows, now.date_naive());
    let (bytes, _, _) = encoding_rs::GB18030.encode(&text);
    std::fs::create_dir_all(dir)?;
    let part = dir.join(format!(".{name}.part"));
    std::fs::write(&part, &bytes)?;
    let path = dir.join(&name);
    std::fs::rename(&part, &path)?;
    Ok(path)
}

/// Writes files until `stop` fires or `count` are written; `report` sees each path.
pub async fn run(cfg: DropConfig, stop: CancellationToken, mut report: impl FnMut(&Path)) -> std::io::Result<Vec<PathBuf>> {
    let rows = cfg.rows.clamp(1, 100);
    let mut written = Vec::new();
    let mut n = 0u64;
    loop {
        n += 1;
        let (dir, this) = (cfg.dir.clone(), n);
        let path = tokio::task::spawn_blocking(move || write_extract(&dir, this, rows))
            .await
            .map_err(std::io::Error::other)??;
        report(&path);
        written.push(path);
        if cfg.count.is_some_and(|c| n >= c) {
            return Ok(written);
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(written),
            () = tokio::time::sleep(cfg.interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_have_the_contract_header_and_cycle_through_units() {
        let today = NaiveDate::from_ymd_opt(2026, 11, 29).expect("date");
        let text = extract(2, 3, today);
        let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0], HEADER.join(","));
        assert!(lines[1].starts_with("91350205MA34TR6H50,"), "{}", lines[1]);
        assert!(lines[1].ends_with(",2026-11-26"), "{}", lines[1]);
        for l in &lines[1..] {
            assert_eq!(l.split(',').count(), HEADER.len(), "{l}");
        }
        for u in UNITS {
            assert_eq!(u.split(',').count(), HEADER.len() - 1, "{u}");
        }
    }

    #[test]
    fn files_appear_whole_in_gb18030() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_extract(dir.path(), 1, 2).expect("write");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        let bytes = std::fs::read(path).expect("read");
        let (text, _, errors) = encoding_rs::GB18030.decode(&bytes);
        assert!(!errors && text.starts_with("统一社会信用代码,"));
    }
}
