//! A department registry served page by page, as the department simulators
//! (`transport`, `health`) serve it: the paged `GET` of the `poll`
//! connector's contract, a bearer token, a page-size limit, an
//! `updated_since` cursor, stable page tokens, records that change over
//! time, a share of failed requests and an outage switch.
//!
//! **Order and cursor.** Records are listed by (`updated_at`, `id`). A
//! request with `updated_since = c` lists the records changed after `c`
//! (strictly). Every page answer carries `next_cursor`, the cursor a client
//! may resume from after this page without missing a record: the
//! `updated_at` of the page's last item, except that a group of records
//! sharing one `updated_at` is never split (the cursor then stays before the
//! group, and the group is listed again on resume: duplicates, not gaps).
//!
//! **Page tokens** name a position, not a snapshot: the next page starts
//! after the last item of the previous one (keyset paging), so the same
//! token gives the same page while nothing changes, and a record changed
//! during a run moves to the end of the run instead of being skipped.
//!
//! **Changes.** A touched record gets `version + 1` and an `updated_at`
//! later than every stamp given before (milliseconds, strictly increasing),
//! so it is listed after any cursor handed out earlier.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::synth::rfc3339_ms;

/// Changes one record in place (not its id, version or update time).
pub type Mutator = Arc<dyn Fn(&mut Value, &mut fastrand::Rng) + Send + Sync>;

/// How a registry answers.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// The bearer token a client must send; empty accepts any request.
    pub token: String,
    /// Largest `limit` accepted; above it the answer is `400`.
    pub max_page: usize,
    /// Page size when the request has no `limit`.
    pub default_page: usize,
    /// Share of page requests answered `500` (0.0-1.0).
    pub fail_share: f64,
    /// Seed of the changes made by touches.
    pub seed: u64,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            token: String::new(),
            max_page: 200,
            default_page: 50,
            fail_share: 0.0,
            seed: 1,
        }
    }
}

/// What a registry holds and how its records are read.
pub struct RegistrySpec {
    /// The paged path, e.g. `/api/v1/carriers`.
    pub path: &'static str,
    /// Field holding a record's id.
    pub id_field: &'static str,
    /// Field holding its version (an integer raised at every change).
    pub version_field: &'static str,
    /// Field holding its update time (RFC 3339 with milliseconds).
    pub updated_field: &'static str,
    /// The records, each with the three fields above.
    pub records: Vec<Value>,
    /// How a touch changes a record.
    pub mutate: Mutator,
}

/// What the registry counted.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    /// Pages answered `200`.
    pub pages: u64,
    /// Items in those pages.
    pub items: u64,
    /// Answered `401`.
    pub unauthorized: u64,
    /// Answered `400`.
    pub bad_requests: u64,
    /// Answered `500` (the failure share).
    pub failures: u64,
    /// Answered `503` (outage).
    pub unavailable: u64,
    /// Records changed by touches.
    pub touched: u64,
}

/// One changed record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Touched {
    /// Its id.
    pub id: String,
    /// Its new version.
    pub version: i64,
    /// Its new update time.
    pub updated_at: String,
}

struct Book {
    /// (update time in ms, id) → record: the listing order.
    by_key: BTreeMap<(i64, String), Value>,
    /// id → update time in ms.
    stamp_of: HashMap<String, i64>,
    /// The latest stamp given; a new one is always later.
    last_stamp: i64,
    outage: bool,
    counts: Counts,
    rng: fastrand::Rng,
}

struct Inner {
    cfg: RegistryConfig,
    spec: RegistrySpec,
    book: Mutex<Book>,
}

/// A registry (cheap to clone; clones share the records).
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl Registry {
    /// Indexes the records. Records without an id or a readable update
    /// time are an error: the generators must not make them.
    pub fn new(cfg: RegistryConfig, mut spec: RegistrySpec) -> anyhow::Result<Self> {
        let mut by_key = BTreeMap::new();
        let mut stamp_of = HashMap::new();
        let mut last_stamp = i64::MIN;
        for record in std::mem::take(&mut spec.records) {
            let id = record
                .get(spec.id_field)
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow::anyhow!("a record has no {}", spec.id_field))?
                .to_string();
            let stamp = record
                .get(spec.updated_field)
                .and_then(Value::as_str)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .ok_or_else(|| anyhow::anyhow!("record {id} has no readable {}", spec.updated_field))?
                .timestamp_millis();
            last_stamp = last_stamp.max(stamp);
            anyhow::ensure!(stamp_of.insert(id.clone(), stamp).is_none(), "record id {id} twice");
            by_key.insert((stamp, id), record);
        }
        let rng = fastrand::Rng::with_seed(cfg.seed);
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                spec,
                book: Mutex::new(Book {
                    by_key,
                    stamp_of,
                    last_stamp,
                    outage: false,
                    counts: Counts::default(),
                    rng,
                }),
            }),
        })
    }

    /// The paged `GET` and the `/_sim/touch`, `/_sim/outage` and
    /// `/_sim/counts` controls.
    pub fn router(&self) -> Router {
        Router::new()
            .route(self.inner.spec.path, get(page))
            .route("/_sim/touch", post(touch))
            .route("/_sim/outage", post(outage))
            .route("/_sim/counts", get(counts))
            .with_state(self.inner.clone())
    }

    /// Touches `n` records every `every` until `stop`: records that change
    /// on their own, as a live registry's do.
    pub fn churn(&self, every: Duration, n: usize, stop: CancellationToken) {
        let registry = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => { registry.touch(n); }
                }
            }
        });
    }

    /// Changes `n` records chosen at random (fewer if the registry is smaller).
    pub fn touch(&self, n: usize) -> Vec<Touched> {
        let mut book = self.inner.book();
        let ids: Vec<String> = book.stamp_of.keys().cloned().collect();
        let mut ids = ids;
        ids.sort();
        let chosen = book.rng.choose_multiple(ids, n);
        chosen.into_iter().filter_map(|id| self.inner.touch_one(&mut book, &id)).collect()
    }

    /// Changes the records with these ids (unknown ids are skipped).
    pub fn touch_ids(&self, ids: &[String]) -> Vec<Touched> {
        let mut book = self.inner.book();
        ids.iter().filter_map(|id| self.inner.touch_one(&mut book, id)).collect()
    }

    /// Every record, in listing order.
    pub fn records(&self) -> Vec<Value> {
        self.inner.book().by_key.values().cloned().collect()
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.inner.book().by_key.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Its counters.
    pub fn counts(&self) -> Counts {
        self.inner.book().counts.clone()
    }

    /// Starts or ends an outage (every request answered `503`).
    pub fn set_outage(&self, down: bool) {
        self.inner.book().outage = down;
    }
}

impl Inner {
    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn touch_one(&self, book: &mut Book, id: &str) -> Option<Touched> {
        let old = *book.stamp_of.get(id)?;
        let mut record = book.by_key.remove(&(old, id.to_string()))?;
        (self.spec.mutate)(&mut record, &mut book.rng);
        // Strictly later than every stamp handed out, even within one
        // millisecond or with a clock behind the generated history.
        let now = chrono::Utc::now().timestamp_millis();
        let stamp = now.max(book.last_stamp.saturating_add(1));
        book.last_stamp = stamp;
        let version = record.get(self.spec.version_field).and_then(Value::as_i64).unwrap_or(0) + 1;
        let updated_at = rfc3339_ms(stamp);
        if let Some(obj) = record.as_object_mut() {
            obj.insert(self.spec.version_field.into(), json!(version));
            obj.insert(self.spec.updated_field.into(), json!(updated_at));
        }
        book.stamp_of.insert(id.to_string(), stamp);
        book.by_key.insert((stamp, id.to_string()), record);
        book.counts.touched += 1;
        Some(Touched {
            id: id.to_string(),
            version,
            updated_at,
        })
    }
}

/// A department API error answer: `{"code", "message"}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({ "code": code, "message": message }))).into_response()
}

/// Where a page starts: the cursor so far and, after the first page, the
/// last item of the previous page.
#[derive(Debug, PartialEq, Eq)]
struct Position {
    /// Cursor (ms, floored) the run resumes from; `None` before any.
    cursor: Option<i64>,
    /// (update time, id) of the previous page's last item.
    after: Option<(i64, String)>,
}

/// Encodes a page token: opaque to clients, hex so it needs no escaping.
fn encode_token(cursor: Option<i64>, last: &(i64, String)) -> String {
    let cursor = cursor.map_or_else(|| "-".to_string(), |c| c.to_string());
    hex::encode(format!("v1|{cursor}|{}|{}", last.0, last.1))
}

fn decode_token(token: &str) -> Option<Position> {
    let text = String::from_utf8(hex::decode(token).ok()?).ok()?;
    let mut parts = text.splitn(4, '|');
    if parts.next()? != "v1" {
        return None;
    }
    let cursor = match parts.next()? {
        "-" => None,
        c => Some(c.parse().ok()?),
    };
    let last_ms: i64 = parts.next()?.parse().ok()?;
    let id = parts.next()?.to_string();
    Some(Position {
        cursor,
        after: Some((last_ms, id)),
    })
}

/// Why a page request is refused with `400`.
#[derive(Debug)]
struct BadRequest {
    code: &'static str,
    message: String,
}

/// The query of a page request, checked.
fn position(cfg: &RegistryConfig, q: &HashMap<String, String>) -> Result<(Position, usize), BadRequest> {
    let bad = |code: &'static str, message: String| BadRequest { code, message };
    let limit = match q.get("limit") {
        None => cfg.default_page.min(cfg.max_page),
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=cfg.max_page).contains(&n) => n,
            _ => {
                return Err(bad("INVALID_PARAMETER", format!("limit 必须是 1 到 {} 之间的整数", cfg.max_page)));
            }
        },
    };
    // A page token carries the position; updated_since is then not read.
    if let Some(token) = q.get("page_token").filter(|t| !t.is_empty()) {
        return decode_token(token)
            .map(|p| (p, limit))
            .ok_or_else(|| bad("INVALID_PAGE_TOKEN", "page_token 无效".into()));
    }
    let cursor = match q.get("updated_since").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => match chrono::DateTime::parse_from_rfc3339(c) {
            // Records carry whole milliseconds: "after c" is "after floor(c)".
            Ok(t) => Some(t.timestamp_micros().div_euclid(1000)),
            Err(_) => {
                return Err(bad("INVALID_PARAMETER", "updated_since 必须是带时区的 RFC 3339 时间".into()));
            }
        },
    };
    Ok((Position { cursor, after: None }, limit))
}

/// The items of one page, the next page token and the next cursor (the
/// Unix epoch when a run without `updated_since` has not passed a whole
/// group of records yet: resuming there lists everything again).
fn build_page(book: &Book, pos: &Position, limit: usize) -> (Vec<Value>, Option<String>, i64) {
    let start = match (&pos.after, pos.cursor) {
        (Some(after), _) => Bound::Excluded(after.clone()),
        (None, Some(c)) => Bound::Included((c.saturating_add(1), String::new())),
        (None, None) => Bound::Unbounded,
    };
    let mut taken: Vec<(&(i64, String), &Value)> = book.by_key.range((start, Bound::Unbounded)).take(limit + 1).collect();
    let next = if taken.len() > limit { taken.pop() } else { None };
    let items: Vec<Value> = taken.iter().map(|(_, v)| (*v).clone()).collect();
    let last = taken.last().map(|(k, _)| (*k).clone());
    let safe = match &next {
        // Never split a group sharing one update time: resume before it.
        Some((next_key, _)) => taken.iter().rev().map(|(k, _)| k.0).find(|t| *t < next_key.0),
        None => last.as_ref().map(|k| k.0),
    };
    let cursor = match (pos.cursor, safe) {
        (Some(c), Some(s)) => Some(c.max(s)),
        (c, s) => c.or(s),
    };
    let token = match (&next, &last) {
        (Some(_), Some(last)) => Some(encode_token(cursor, last)),
        _ => None,
    };
    (items, token, cursor.unwrap_or(0))
}

async fn page(State(st): State<Arc<Inner>>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut book = st.book();
    if book.outage {
        book.counts.unavailable += 1;
        let mut r = error(StatusCode::SERVICE_UNAVAILABLE, "SERVICE_UNAVAILABLE", "系统维护中，请稍后重试");
        r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
        return r;
    }
    if !st.cfg.token.is_empty() {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if presented != Some(st.cfg.token.as_str()) {
            book.counts.unauthorized += 1;
            let mut r = error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "访问令牌无效或已过期");
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    let (pos, limit) = match position(&st.cfg, &q) {
        Ok(p) => p,
        Err(b) => {
            book.counts.bad_requests += 1;
            return error(StatusCode::BAD_REQUEST, b.code, &b.message);
        }
    };
    if st.cfg.fail_share > 0.0 && book.rng.f64() < st.cfg.fail_share {
        book.counts.failures += 1;
        return error(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_ERROR", "系统繁忙，请稍后重试");
    }
    let (items, token, cursor) = build_page(&book, &pos, limit);
    book.counts.pages += 1;
    book.counts.items += items.len() as u64;
    axum::Json(json!({
        "items": items,
        "next_page_token": token,
        "next_cursor": rfc3339_ms(cursor),
    }))
    .into_response()
}

#[derive(Deserialize, Default)]
struct TouchBody {
    /// How many records to change at random.
    #[serde(default)]
    count: Option<usize>,
    /// Or exactly these.
    #[serde(default)]
    ids: Vec<String>,
}

/// Most records one touch request changes.
const MAX_TOUCH: usize = 10_000;

async fn touch(State(st): State<Arc<Inner>>, body: Option<axum::Json<TouchBody>>) -> axum::Json<Value> {
    let body = body.map(|b| b.0).unwrap_or_default();
    let registry = Registry { inner: st };
    let touched = if body.ids.is_empty() {
        registry.touch(body.count.unwrap_or(1).min(MAX_TOUCH))
    } else {
        registry.touch_ids(&body.ids[..body.ids.len().min(MAX_TOUCH)])
    };
    axum::Json(json!({ "touched": touched }))
}

#[derive(Deserialize)]
struct OutageBody {
    down: bool,
}

async fn outage(State(st): State<Arc<Inner>>, axum::Json(b): axum::Json<OutageBody>) -> StatusCode {
    st.book().outage = b.down;
    StatusCode::NO_CONTENT
}

async fn counts(State(st): State<Arc<Inner>>) -> axum::Json<Counts> {
    axum::Json(st.book().counts.clone())
}

#[cfg(test)]
mod tests;
