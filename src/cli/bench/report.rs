//! The benchmark's figures: computed from what the load generator and the
//! receiver saw, printed for people or as one JSON object.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use super::load::{LoadResult, percentile_ms};
use crate::sim::receiver::Record;

/// Everything a standard run measured.
pub struct Inputs<'a> {
    pub backend: String,
    pub messages: u32,
    pub destinations: u8,
    pub subjects: u32,
    pub connections: u32,
    pub event_bytes: usize,
    pub http_ceiling_per_s: f64,
    pub storage_ceiling_per_s: f64,
    pub main: &'a mut LoadResult,
    pub paced: &'a mut LoadResult,
    pub paced_rate: u32,
    pub record: &'a Record,
    pub peak_rss_kib: u64,
}

/// The figures.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `standard` or `backlog`.
    pub workload: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Messages sent.
    pub messages: u32,
    /// Messages answered 202.
    pub accepted: usize,
    /// Destinations per message.
    pub destinations: u8,
    /// Distinct subjects.
    pub subjects: u32,
    /// Connections.
    pub connections: u32,
    /// Size of one event.
    pub event_bytes: usize,
    /// Accepted messages per second.
    pub accepted_per_s: f64,
    /// Deliveries per second (first arrivals at the receiver, both destinations).
    pub delivered_per_s: f64,
    /// Accept → receiver latency percentiles (ms).
    pub e2e_latency_ms: Percentiles,
    /// Accept latency under full load (ms).
    pub accept_latency_ms: Percentiles,
    /// Accept latency at the fixed rate (ms).
    pub paced_accept_latency_ms: Percentiles,
    /// The fixed rate.
    pub paced_rate_per_s: u32,
    /// Peak resident memory of the hub process (MiB).
    pub peak_rss_mib: f64,
    /// Accepted messages whose delivery never arrived (per destination).
    pub lost: usize,
    /// Arrivals beyond the first of a message at a destination.
    pub duplicates: u64,
    /// Arrivals out of acceptance order within a subject.
    pub order_violations: u64,
    /// Requests refused (status → count).
    pub refused: HashMap<u16, u64>,
    /// Bare handler, requests per second.
    pub http_ceiling_per_s: f64,
    /// Bare batched insert, messages per second.
    pub storage_ceiling_per_s: f64,
    /// accepted_per_s / http_ceiling_per_s.
    pub ratio_to_http_ceiling: f64,
    /// accepted_per_s / storage_ceiling_per_s.
    pub ratio_to_storage_ceiling: f64,
}

/// p50 / p95 / p99.
#[derive(Debug, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Percentiles {
    fn of(v: &mut [Duration]) -> Self {
        Self {
            p50: percentile_ms(v, 50.0),
            p95: percentile_ms(v, 95.0),
            p99: percentile_ms(v, 99.0),
        }
    }
}

fn per_s(n: usize, d: Option<Duration>) -> f64 {
    d.filter(|d| !d.is_zero()).map(|d| n as f64 / d.as_secs_f64()).unwrap_or(0.0)
}

impl Report {
    /// Computes the standard run's figures.
    pub fn standard(i: Inputs<'_>) -> Self {
        let accepted_ids: HashSet<&String> = i.main.accepted_at.keys().collect();
        // First arrival per (destination path, message id), in arrival order.
        let mut first: HashSet<(&str, &str)> = HashSet::new();
        let mut e2e = Vec::new();
        let mut last_seq: HashMap<(&str, &str), u64> = HashMap::new();
        let mut order_violations = 0;
        let (mut t_first, mut t_last) = (None, None);
        let mut delivered = 0;
        for s in &i.record.accepted {
            if !accepted_ids.contains(&s.message_id) || !first.insert((s.path.as_str(), s.message_id.as_str())) {
                continue;
            }
            delivered += 1;
            t_first = t_first.or(Some(s.at));
            t_last = Some(s.at);
            if let Some(acc) = i.main.accepted_at.get(&s.message_id) {
                e2e.push(s.at.saturating_duration_since(*acc));
            }
            if let Some(seq) = s.seq {
                let key = (s.path.as_str(), s.subject.as_str());
                if let Some(prev) = last_seq.get(&key)
                    && seq <= *prev
                {
                    order_violations += 1;
                }
                last_seq.insert(key, seq);
            }
        }
        let paths: HashSet<&str> = ["/a", "/b"].into_iter().take(usize::from(i.destinations)).collect();
        let lost = accepted_ids
            .iter()
            .map(|id| paths.iter().filter(|p| !first.contains(&(**p, id.as_str()))).count())
            .sum();
        let duplicates = i.record.per_id.values().map(|n| u64::from(n.saturating_sub(1))).sum();
        let accepted_per_s = per_s(i.main.accepted_at.len(), i.main.finished.zip(i.main.started).map(|(b, a)| b - a));
        let delivered_per_s = per_s(delivered, t_last.zip(t_first).map(|(b, a)| b - a));
        Self {
            workload: "standard".into(),
            backend: i.backend,
            messages: i.messages,
            accepted: i.main.accepted_at.len(),
            destinations: i.destinations,
            subjects: i.subjects,
            connections: i.connections,
            event_bytes: i.event_bytes,
            accepted_per_s,
            delivered_per_s,
            e2e_latency_ms: Percentiles::of(&mut e2e),
            accept_latency_ms: Percentiles::of(&mut i.main.latencies),
            paced_accept_latency_ms: Percentiles::of(&mut i.paced.latencies),
            paced_rate_per_s: i.paced_rate,
            peak_rss_mib: i.peak_rss_kib as f64 / 1024.0,
            lost,
            duplicates,
            order_violations,
            refused: i.main.refused.clone(),
            http_ceiling_per_s: i.http_ceiling_per_s,
            storage_ceiling_per_s: i.storage_ceiling_per_s,
            ratio_to_http_ceiling: ratio(accepted_per_s, i.http_ceiling_per_s),
            ratio_to_storage_ceiling: ratio(accepted_per_s, i.storage_ceiling_per_s),
        }
    }

    /// The backlog run's figures.
    pub fn backlog(messages: u32, accepted: usize, accepted_per_s: f64, peak_rss_kib: u64) -> Self {
        Self {
            workload: "backlog".into(),
            backend: String::new(),
            messages,
            accepted,
            destinations: 2,
            subjects: 0,
            connections: 0,
            event_bytes: 0,
            accepted_per_s,
            delivered_per_s: 0.0,
            e2e_latency_ms: Percentiles::default(),
            accept_latency_ms: Percentiles::default(),
            paced_accept_latency_ms: Percentiles::default(),
            paced_rate_per_s: 0,
            peak_rss_mib: peak_rss_kib as f64 / 1024.0,
            lost: 0,
            duplicates: 0,
            order_violations: 0,
            refused: HashMap::new(),
            http_ceiling_per_s: 0.0,
            storage_ceiling_per_s: 0.0,
            ratio_to_http_ceiling: 0.0,
            ratio_to_storage_ceiling: 0.0,
        }
    }

    /// The human summary.
    pub fn human(&self) -> String {
        if self.workload == "backlog" {
            return format!(
                "backlog run: {} of {} messages accepted at {:.0}/s with both destinations down; hub peak RSS {:.1} MiB",
                self.accepted, self.messages, self.accepted_per_s, self.peak_rss_mib
            );
        }
        let p = |x: &Percentiles| format!("p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms", x.p50, x.p95, x.p99);
        format!(
            "wastehub bench ({backend}): {m} events of {b} bytes over {s} subjects, {c} connections, {d} destination(s)\n\
             accepted          {acc}/{m} at {aps:.0}/s  ({rh:.2} of the HTTP ceiling {hc:.0}/s, {rs:.2} of the storage ceiling {sc:.0}/s)\n\
             delivered         {dps:.0}/s sustained\n\
             end-to-end        {e2e}\n\
             accept latency    {al} (full load); {pl} at {pr}/s\n\
             peak RSS          {rss:.1} MiB\n\
             lost {lost} · duplicates {dup} · order violations {ov} · refused {refused:?}",
            backend = self.backend,
            m = self.messages,
            d = self.destinations,
            b = self.event_bytes,
            s = self.subjects,
            c = self.connections,
            acc = self.accepted,
            aps = self.accepted_per_s,
            rh = self.ratio_to_http_ceiling,
            hc = self.http_ceiling_per_s,
            rs = self.ratio_to_storage_ceiling,
            sc = self.storage_ceiling_per_s,
            dps = self.delivered_per_s,
            e2e = p(&self.e2e_latency_ms),
            al = p(&self.accept_latency_ms),
            pl = p(&self.paced_accept_latency_ms),
            pr = self.paced_rate_per_s,
            rss = self.peak_rss_mib,
            lost = self.lost,
            dup = self.duplicates,
            ov = self.order_violations,
            refused = self.refused,
        )
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}
