//! The load generator: `connections` keep-alive senders, each owning a share
//! of the subjects and sending each subject's events one after another (so
//! acceptance order per subject is the order sent), numbered with the
//! `benchseq` extension so the receiver can check order.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// What one load run saw.
#[derive(Default)]
pub struct LoadResult {
    /// Message id → when its 202 arrived.
    pub accepted_at: HashMap<String, Instant>,
    /// Accept latency of each 202.
    pub latencies: Vec<Duration>,
    /// Responses other than 202, by status.
    pub refused: HashMap<u16, u64>,
    /// Transport errors.
    pub errors: u64,
    /// First send.
    pub started: Option<Instant>,
    /// Last answer.
    pub finished: Option<Instant>,
}

/// A prepared request body (event bytes) for one (subject, sequence) pair.
pub type BodyFn = Arc<dyn Fn(u32, u32, u32) -> Value + Send + Sync>;

/// Sends `total` events over `subjects` subjects with `connections` senders.
/// With `rate` set, paces the whole run to that many events per second.
pub async fn run(url: &str, key: &str, total: u32, subjects: u32, connections: u32, rate: Option<u32>, body: BodyFn) -> LoadResult {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections as usize)
        .build()
        .unwrap_or_default();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..connections {
        let (client, url, key, body) = (client.clone(), url.to_string(), key.to_string(), body.clone());
        tasks.spawn(async move {
            let mut out = LoadResult::default();
            let mut seq_of: HashMap<u32, u32> = HashMap::new();
            // Event i goes to subject i % subjects, and every subject has one
            // sender (subject % connections), which sends its events in order.
            let subjects = subjects.max(1);
            for i in (0..total).filter(|i| (i % subjects) % connections == c) {
                if let Some(r) = rate {
                    let due = started + Duration::from_secs_f64(f64::from(i) / f64::from(r.max(1)));
                    tokio::time::sleep_until(due.into()).await;
                }
                let subject = i % subjects;
                let seq = seq_of.entry(subject).or_insert(0);
                let ev = body(i, subject, *seq);
                *seq += 1;
                let t0 = Instant::now();
                let resp = client
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/cloudevents+json")
                    .body(ev.to_string())
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().as_u16() == 202 => {
                        let v: Value = r.json().await.unwrap_or_default();
                        let now = Instant::now();
                        out.latencies.push(now - t0);
                        out.accepted_at.insert(v["id"].as_str().unwrap_or_default().to_string(), now);
                    }
                    Ok(r) => *out.refused.entry(r.status().as_u16()).or_default() += 1,
                    Err(_) => out.errors += 1,
                }
            }
            out
        });
    }
    let mut all = LoadResult {
        started: Some(started),
        ..Default::default()
    };
    while let Some(Ok(part)) = tasks.join_next().await {
        all.accepted_at.extend(part.accepted_at);
        all.latencies.extend(part.latencies);
        for (k, v) in part.refused {
            *all.refused.entry(k).or_default() += v;
        }
        all.errors += part.errors;
    }
    all.finished = Some(Instant::now());
    all
}

/// The p-th percentile (0-100) of `v` in milliseconds.
pub fn percentile_ms(v: &mut [Duration], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[idx.min(v.len() - 1)].as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_rank() {
        let mut v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile_ms(&mut v, 50.0), 51.0);
        assert_eq!(percentile_ms(&mut v, 99.0), 99.0);
        assert_eq!(percentile_ms(&mut [], 99.0), 0.0);
    }
}
