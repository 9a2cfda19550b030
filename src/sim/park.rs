//! Simulator of the Xiamen Haicang park's cell platform, a partner that
//! *sends*: it posts ledger records in the park's own XML (GBK, pinyin-initial
//! element names, a full-width USCI as the park's clerks type it; contract
//! `contracts/park-xiamen-haicang/`) to the hub's
//! `POST /api/v1/documents/ledger-entry` with the park's API key, one every
//! interval, and reports each answer. It reaches only the hub URL it is given.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Offset, Utc};
use tokio_util::sync::CancellationToken;

/// The park ledger namespace (`contracts/park-xiamen-haicang/README.md`).
pub const NAMESPACE: &str = "http://cell.hcpark.example/ledger/1";

/// Longest the hub may take to answer one record.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How the simulator sends.
#[derive(Clone, Debug)]
pub struct ParkConfig {
    /// The hub's base URL (`http://127.0.0.1:8080`).
    pub hub: String,
    /// The park's API key (its SHA-256 is in `connectors/park-xiamen-haicang.toml`).
    pub key: String,
    /// Pause between two records.
    pub interval: Duration,
    /// Stop after this many records (`None`: until stopped).
    pub count: Option<u64>,
}

/// What the hub answered to one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The record's batch code.
    pub batch: String,
    /// HTTP status (0 when the hub could not be reached).
    pub status: u16,
    /// The answer body, or the transport error.
    pub answer: String,
}

/// One of the park's typical ledger records, numbered `n`, at `at` (Beijing
/// time), as the XML text before GBK encoding. Odd records are generation
/// (产生) in IBC totes in kilograms, even ones storage-in (入库) of drums
/// counted with their weight, linked to the generation batch before them.
pub fn record(n: u64, at: DateTime<FixedOffset>) -> String {
    let day = at.format("%Y%m%d");
    let time = at.format("%Y-%m-%d %H:%M");
    if n % 2 == 1 {
        let batch = format!("HWCS{day}{n:04}");
        let kg = 600 + (n * 37) % 500;
        format!(
            r#"<?xml version="1.0" encoding="GBK"?>
<TZJL xmlns="{NAMESPACE}">
  <JLID>HC-{batch}</JLID>
  <QYDM>９１３５０２０６ＭＡ２ＸＫ７Ｐ１６Ｋ</QYDM>
  <CDBH>S350206-0017</CDBH>
  <HJ>CS</HJ>
  <PCBM>{batch}</PCBM>
  <SJ>{time}</SJ>
  <FWDM>398-004-22</FWDM>
  <FWMC><![CDATA[线路板生产过程中产生的废蚀铜液]]></FWMC>
  <SM>酸性废蚀刻液</SM>
  <SL dw="千克">{kg}</SL>
  <RQ lx="IBC吨桶" sl="1">LJ-IBC-{:04}</RQ>
  <SSDM>MF0021</SSDM>
  <JBR yc="陈志强" js="林晓燕"/>
  <QX>危废贮存库TS001</QX>
  <XZQH>350206</XZQH>
</TZJL>"#,
            200 + n % 100
        )
    } else {
        let batch = format!("HWRK{day}{n:04}");
        let linked = format!("HWCS{day}{:04}", n - 1);
        let drums = 10 + n % 30;
        format!(
            r#"<?xml version="1.0" encoding="GBK"?>
<TZJL xmlns="{NAMESPACE}">
  <JLID>HC-{batch}</JLID>
  <QYDM>91350206MA2XK7P16K</QYDM>
  <CDBH>S350206-0017</CDBH>
  <HJ>RK</HJ>
  <PCBM>{batch}</PCBM>
  <GLPC>{linked}</GLPC>
  <SJ>{time}</SJ>
  <FWDM>900-041-49</FWDM>
  <FWMC>含有或沾染毒性、感染性危险废物的废弃包装物、容器、过滤吸附介质</FWMC>
  <SL dw="桶" zl="{}">{drums}</SL>
  <RQ lx="铁桶" sl="{drums}"/>
  <SSDM>TS001</SSDM>
  <JBR yc="林晓燕" js="王振东"/>
</TZJL>"#,
            drums * 15
        )
    }
}

/// `text` in GBK, as the park sends it.
pub fn gbk(text: &str) -> Vec<u8> {
    encoding_rs::GBK.encode(text).0.into_owned()
}

pub(crate) fn beijing_now() -> DateTime<FixedOffset> {
    // Beijing time: +08:00 without daylight saving.
    let offset = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix());
    Utc::now().with_timezone(&offset)
}

/// Posts records until `stop` fires or `count` are sent; `report` sees each answer.
pub async fn run(cfg: ParkConfig, stop: CancellationToken, mut report: impl FnMut(&Sent)) -> anyhow::Result<Vec<Sent>> {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let url = format!("{}/api/v1/documents/ledger-entry", cfg.hub.trim_end_matches('/'));
    let mut sent = Vec::new();
    let mut n = 0u64;
    loop {
        n += 1;
        let xml = record(n, beijing_now());
        let batch = xml
            .split("<PCBM>")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap_or_default()
            .to_string();
        let answer = client
            .post(&url)
            .bearer_auth(&cfg.key)
            .header(reqwest::header::CONTENT_TYPE, "application/xml")
            .body(gbk(&xml))
            .send()
            .await;
        let s = match answer {
            Ok(r) => {
                let status = r.status().as_u16();
                Sent {
                    batch,
                    status,
                    answer: r.text().await.unwrap_or_default(),
                }
            }
            Err(e) => Sent {
                batch,
                status: 0,
                answer: e.without_url().to_string(),
            },
        };
        report(&s);
        sent.push(s);
        if cfg.count.is_some_and(|c| n >= c) {
            return Ok(sent);
        }
        tokio::select! {
            () = stop.cancelled() => return Ok(sent),
            () = tokio::time::sleep(cfg.interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_gbk_xml_with_their_own_batch_codes() {
        let at = DateTime::parse_from_rfc3339("2026-11-29T21:37:00+08:00").expect("time");
        let first = record(1, at);
        let second = record(2, at);
        assert!(first.contains("<PCBM>HWCS202611290001</PCBM>"), "{first}");
        assert!(second.contains("<GLPC>HWCS202611290001</GLPC>"), "{second}");
        assert!(first.contains("<SJ>2026-11-29 21:37</SJ>"));
        let bytes = gbk(&first);
        let (back, _, errors) = encoding_rs::GBK.decode(&bytes);
        assert!(!errors);
        assert_eq!(back, first);
        assert_ne!(bytes, first.as_bytes(), "encoded, not UTF-8");
    }
}
