//! The `file` connector kind: a drop folder whose CSV files are taken once,
//! their rows committed and delivered, and the files moved to `done/` or
//! `failed/` with a reason; transient refusals and crashes leave the file in
//! `processing/` to be resumed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::support::{FakePartner, HubSpec, Reply, TestApp, eventually, repo};

const HEADER: &str =
    "统一社会信用代码,企业名称,住所,行政区划代码,行业代码,单位类别,管理类别,法定代表人,联系电话,经度,纬度,登记状态,状态说明,核准日期";

/// Valid rows (real check characters, existing divisions).
const ROWS: [&str; 4] = [
    "91350206MA2XK7P16K,厦门鹭江精密电路有限公司,厦门市湖里区火炬高新区信息光电园创新路18号,350206,C3982,产废单位,重点监管,吴国栋,0592-5761234,118.1846,24.5132,存续,,2026-02-27",
    "91350303MA1XG6125R,莆田市涵江区鑫达电镀有限公司,莆田市涵江区江口镇电镀集控区8号,350303,3360,产废单位,登记管理,黄德明,0594-3651234,,,注销,企业整体搬迁入园，原厂区关闭,2026-01-15",
    "52350212MAD4H3J9XL,厦门市同安区五显镇明溪村卫生所,厦门市同安区五显镇明溪村明溪里42号,350212,Q8423,医疗机构,,苏丽华,13799281234,,,存续,,2025-11-03",
    "91350205MA34TR6H50,厦门海沧绿源环境服务有限公司,厦门市海沧区南部工业区港南路66号,350205,N7724,经营单位,,林建伟,0592-6519800,117.9936,24.4611,存续,,2026-02-01",
];

fn csv(rows: &[&str]) -> String {
    let mut s = format!("{HEADER}\r\n");
    for r in rows {
        s.push_str(r);
        s.push_str("\r\n");
    }
    s
}

struct Drop {
    app: TestApp,
    partner: FakePartner,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

/// A hub with connector `registry` (kind file) on a temp drop folder and a
/// destination `partner` for enterprise registrations.
async fn hub(file_extra: &str, config: &str, partner: FakePartner, before_start: impl FnOnce(&Path)) -> Drop {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("drop");
    before_start(&dir);
    let connector = format!(
        "name = \"registry\"\nkind = \"file\"\n[inbound]\nsources = [\"urn:test:registry\"]\n[inbound.mappings]\n\
         \"enterprise-registration\" = \"market-regulation/enterprise-registration-in\"\n[file]\ndir = \"{}\"\n\
         type = \"enterprise-registration\"\nformat = \"csv\"\npoll_interval = \"100ms\"\n{}{file_extra}\n",
        dir.display(),
        if file_extra.contains("settle") {
            ""
        } else {
            "settle = \"200ms\"\n"
        }
    );
    let mut spec = HubSpec::new()
        .config(&format!("[mappings]\ndir = \"{}\"", repo().join("mappings").display()))
        .destination("partner", &partner.url, "\"enterprise-registration\"", "")
        .config(config);
    spec.connectors.push(("registry".into(), connector));
    let app = TestApp::spawn(spec).await;
    Drop {
        app,
        partner,
        dir,
        _tmp: tmp,
    }
}

impl Drop {
    fn put(&self, name: &str, bytes: &[u8]) {
        std::fs::create_dir_all(&self.dir).expect("mkdir");
        let tmp = self.dir.join(format!(".{name}.part"));
        std::fs::write(&tmp, bytes).expect("write");
        std::fs::rename(tmp, self.dir.join(name)).expect("rename");
    }

    fn files(&self, sub: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.dir.join(sub))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    async fn wait_in(&self, sub: &str, name: &str) -> bool {
        eventually(Duration::from_secs(20), || async { self.files(sub).iter().any(|f| f == name) }).await
    }

    async fn messages(&self) -> Vec<Value> {
        let (_, list) = self.app.op_get("/api/v1/messages?limit=100").await;
        list["items"].as_array().cloned().unwrap_or_default()
    }

    async fn delivered(&self, n: usize) -> bool {
        eventually(Duration::from_secs(20), || async { self.partner.accepted().len() >= n }).await
    }

    async fn runs(&self) -> Vec<(String, String, String)> {
        let db = wastehub::config::DatabaseConfig {
            url: wastehub::config::Secret::new(self.app.database.clone()),
            max_connections: 1,
            sqlite_synchronous: wastehub::config::SqliteSynchronous::Normal,
        };
        let store = wastehub::store::Store::connect(&db).await.expect("store");
        let runs = store.file_runs("registry").await.expect("runs");
        store.close().await;
        runs
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test]
async fn csv_rows_are_committed_delivered_and_the_same_file_is_not_taken_twice() {
    let d = hub("", "", FakePartner::start().await, |_| {}).await;
    let body = csv(&ROWS[..3]);
    d.put("registry-0301.csv", body.as_bytes());
    assert!(d.wait_in("done", "registry-0301.csv").await, "done: {:?}", d.files("done"));
    assert!(d.delivered(3).await, "all three rows reach the partner");
    assert_eq!(d.messages().await.len(), 3);
    let got = d.partner.accepted();
    let usci: Vec<&str> = got.iter().filter_map(|r| r.body["data"]["usci"].as_str()).collect();
    assert!(usci.contains(&"91350303MA1XG6125R"), "{usci:?}");
    assert!(d.files("processing").is_empty());
    let runs = d.runs().await;
    assert_eq!(runs[0], ("registry-0301.csv".into(), sha256_hex(body.as_bytes()), "done".into()));

    // The same content again, under the same name: noted, not submitted.
    d.put("registry-0301.csv", body.as_bytes());
    assert!(d.wait_in("done", "registry-0301.1.csv").await, "done: {:?}", d.files("done"));
    let note = std::fs::read_to_string(d.dir.join("done/registry-0301.1.csv.duplicate.txt")).expect("note");
    assert!(note.contains("not submitted again"), "{note}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(d.messages().await.len(), 3, "nothing new was stored");
    assert_eq!(d.partner.accepted().len(), 3);
    assert_eq!(d.runs().await[0].2, "duplicate");
}

#[tokio::test]
async fn a_gbk_file_is_read_in_its_encoding() {
    let d = hub("encoding = \"GBK\"", "", FakePartner::start().await, |_| {}).await;
    let text = csv(&ROWS[..2]);
    let (gbk, _, bad) = encoding_rs::GBK.encode(&text);
    assert!(!bad);
    d.put("gbk.csv", &gbk);
    assert!(d.wait_in("done", "gbk.csv").await, "failed: {:?}", d.files("failed"));
    assert!(d.delivered(2).await);
    let names: Vec<String> = d
        .partner
        .accepted()
        .iter()
        .filter_map(|r| r.body["data"]["name"].as_str().map(String::from))
        .collect();
    assert!(names.contains(&"厦门鹭江精密电路有限公司".to_string()), "{names:?}");
}

#[tokio::test]
async fn a_bad_row_sends_the_file_to_failed_with_its_line_and_the_good_rows_stay_committed() {
    let d = hub("", "", FakePartner::start().await, |_| {}).await;
    let bad_status = ROWS[3].replace(",存续,", ",清算中,");
    let bad_usci = ROWS[2].replace("52350212MAD4H3J9XL", "52350212MAD4H3J9XA");
    d.put(
        "mixed.csv",
        csv(&[ROWS[0], &bad_status, ROWS[1], &bad_usci, "only,three,cells"]).as_bytes(),
    );
    assert!(d.wait_in("failed", "mixed.csv").await, "failed: {:?}", d.files("failed"));
    let reason = std::fs::read_to_string(d.dir.join("failed/mixed.csv.reason.txt")).expect("reason file");
    assert!(reason.contains("line 3: 422 mapping_failed"), "{reason}");
    assert!(reason.contains("清算中"), "{reason}");
    assert!(reason.contains("line 5: 422 validation_failed"), "{reason}");
    assert!(reason.contains("/data/usci"), "{reason}");
    assert!(reason.contains("line 6: the row has 3 fields"), "{reason}");
    assert!(reason.contains("committed: 2, refused: 3"), "{reason}");
    assert!(d.delivered(2).await, "the good rows are delivered");
    assert_eq!(d.messages().await.len(), 2);
    assert_eq!(d.runs().await[0].2, "failed");
}

#[tokio::test]
async fn a_half_written_file_is_not_taken_before_it_settles() {
    let d = hub("settle = \"1s\"", "", FakePartner::start().await, |_| {}).await;
    let body = csv(&ROWS);
    let (head, tail) = body.as_bytes().split_at(body.len() / 2);
    let path = d.dir.join("slow.csv");
    std::fs::create_dir_all(&d.dir).expect("mkdir");
    std::fs::write(&path, head).expect("write");
    // Keep writing for a while, as a slow copy would.
    for chunk in tail.chunks(tail.len() / 3 + 1) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(path.exists(), "taken while still being written");
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(chunk))
            .expect("append");
    }
    assert!(d.files("processing").is_empty() && d.files("done").is_empty());
    assert!(d.wait_in("done", "slow.csv").await, "failed: {:?}", d.files("failed"));
    assert!(d.delivered(4).await, "every row of the whole file");
}

#[tokio::test]
async fn a_file_left_in_processing_is_resumed_at_start() {
    let body = csv(&ROWS[..2]);
    let d = hub("", "", FakePartner::start().await, |dir| {
        std::fs::create_dir_all(dir.join("processing")).expect("mkdir");
        std::fs::write(dir.join("processing/left.csv"), body.as_bytes()).expect("write");
    })
    .await;
    assert!(d.wait_in("done", "left.csv").await, "failed: {:?}", d.files("failed"));
    assert!(d.delivered(2).await);
}

#[tokio::test]
async fn a_full_backlog_keeps_the_file_in_processing_until_it_drains() {
    let partner = FakePartner::scripted(|_, _| Reply::status(503)).await;
    let d = hub("", "[ingest]\nmax_backlog = 2\nbacklog_retry_after = \"1s\"", partner, |_| {}).await;
    d.put("big.csv", csv(&ROWS).as_bytes());
    assert!(d.wait_in("processing", "big.csv").await);
    assert!(
        eventually(Duration::from_secs(10), || async { d.messages().await.len() == 2 }).await,
        "two rows fill the backlog"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(d.files("processing"), vec!["big.csv".to_string()], "the file waits");
    assert!(d.files("done").is_empty() && d.files("failed").is_empty());
    d.partner.set_script(|_, _| Reply::status(200));
    assert!(d.wait_in("done", "big.csv").await, "failed: {:?}", d.files("failed"));
    assert!(d.delivered(4).await);
    assert_eq!(d.messages().await.len(), 4, "the resumed rows were not stored twice");
}

#[tokio::test]
async fn an_oversized_file_fails_with_a_reason() {
    let d = hub("max_file = \"1KiB\"", "", FakePartner::start().await, |_| {}).await;
    d.put("huge.csv", csv(&[ROWS[0]; 8]).as_bytes());
    assert!(d.wait_in("failed", "huge.csv").await, "failed: {:?}", d.files("failed"));
    let reason = std::fs::read_to_string(d.dir.join("failed/huge.csv.reason.txt")).expect("reason");
    assert!(reason.contains("larger than max_file (1024 bytes)"), "{reason}");
    assert!(d.messages().await.is_empty());
}
