//! The negotiation tables (`crate::xp`): records with their version,
//! history rows, the letters exchanged with other provinces with their
//! receipts, and whitelist entries. Rules live in `crate::xp`; this module
//! only reads and writes rows.

use sqlx::FromRow;

use super::{Result, Store, on_read, on_write};
use crate::model::Millis;

/// A stored record: its JSON document and version.
#[derive(Clone, Debug, FromRow)]
pub struct NegotiationRow {
    /// The application number.
    pub application_no: String,
    /// The state (also in the document; here for listing).
    pub state: String,
    /// The record as JSON.
    pub doc: String,
    /// Bumped by every save.
    pub version: i64,
    /// When first stored.
    pub created_at: Millis,
    /// When last saved.
    pub updated_at: Millis,
}

/// The columns a save writes besides the document, for queries.
#[derive(Clone, Debug, Default)]
pub struct NegotiationIndex {
    /// The state.
    pub state: String,
    /// The receiver's USCI.
    pub receiver_usci: Option<String>,
    /// For a whitelist decision: `scheme/whitelist_id`.
    pub whitelist_key: Option<String>,
    /// The calendar year of the decision's first day.
    pub decision_year: Option<i32>,
    /// Millionths of a tonne approved.
    pub approved_micro: Option<i64>,
}

/// One history row.
#[derive(Clone, Debug, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct HistoryRow {
    /// The hub message applied, or `deadline:<kind>:<what>` for the hub's own steps.
    pub message_id: String,
    /// Its type (`xp-reply`, `deadline`).
    pub r#type: String,
    /// `applied`, `parked`, `duplicate` or `refused`.
    pub outcome: String,
    /// What happened, or why not.
    pub note: String,
    /// The state after it.
    pub state: String,
    /// What it sent (JSON array), so a step redone after a crash sends the same.
    #[serde(skip)]
    pub emits: String,
    /// When (Unix ms).
    pub at: Millis,
}

/// A letter exchanged with another province, with its receipt.
#[derive(Clone, Debug, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct LetterRow {
    /// The letter's `source`.
    pub letter_source: String,
    /// The letter's `id`.
    pub letter_id: String,
    /// `in` (from a province) or `out` (to one).
    pub direction: String,
    /// The connector of the province.
    pub connector: String,
    /// The letter's `type`.
    pub r#type: String,
    /// The letter's `subject`.
    pub subject: String,
    /// The letter exactly as sent or received (JSON text).
    pub letter: String,
    /// The signed receipt (JSON text): ours for `in`, theirs for `out`.
    pub receipt: Option<String>,
    /// `accepted` or `refused`.
    pub verdict: String,
    /// Why it was refused.
    pub reason: Option<String>,
    /// The hub message that carried it.
    pub message_id: Option<String>,
    /// When (Unix ms).
    pub at: Millis,
}

/// A stored whitelist entry.
#[derive(Clone, Debug, FromRow)]
pub struct WhitelistRow {
    /// The scheme.
    pub scheme: String,
    /// The entry id.
    pub whitelist_id: String,
    /// The entry (`data`) as JSON.
    pub entry: String,
    /// The `time` of the event that carried this version.
    pub event_time: String,
    /// The hub message that carried it.
    pub message_id: String,
    /// When stored.
    pub updated_at: Millis,
}

/// A whitelist entry version to store.
#[derive(Clone, Copy, Debug)]
pub struct WhitelistPut<'a> {
    /// The scheme.
    pub scheme: &'a str,
    /// The entry id.
    pub whitelist_id: &'a str,
    /// The facility's USCI (entries are looked up by it).
    pub facility_usci: &'a str,
    /// The entry (`data`) as JSON.
    pub entry: &'a str,
    /// The `time` of the event that carried it.
    pub event_time: &'a str,
    /// The same in Unix ms: a version replaces only an older one.
    pub event_millis: Millis,
    /// The hub message that carried it.
    pub message_id: &'a str,
}

fn history_id() -> String {
    format!("xph_{}", ulid::Ulid::generate())
}

/// The insert of one history row, on a pool or inside a transaction (a
/// macro: the body is compiled once per backend, like `on_write!`). A row
/// for a message already recorded is not written (0 rows affected).
macro_rules! insert_history {
    ($store:expr, $executor:expr, $application_no:expr, $h:expr) => {
        sqlx::query($store.sql(
            "INSERT INTO xp_history (id, application_no, message_id, type, outcome, note, state, emits, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (application_no, message_id) DO NOTHING",
        ))
        .bind(history_id())
        .bind($application_no)
        .bind(&$h.message_id)
        .bind(&$h.r#type)
        .bind(&$h.outcome)
        .bind(&$h.note)
        .bind(&$h.state)
        .bind(&$h.emits)
        .bind($h.at)
        .execute($executor)
    };
}

/// The columns of a [`NegotiationRow`].
const NEGOTIATION_COLUMNS: &str = "application_no, state, doc, version, created_at, updated_at";
/// The columns of a [`HistoryRow`].
const HISTORY_COLUMNS: &str = "message_id, type, outcome, note, state, emits, at";
/// The columns of a [`LetterRow`].
const LETTER_COLUMNS: &str =
    "letter_source, letter_id, direction, connector, type, subject, letter, receipt, verdict, reason, message_id, at";
/// The columns of a [`WhitelistRow`].
const WHITELIST_COLUMNS: &str = "scheme, whitelist_id, entry, event_time, message_id, updated_at";

impl Store {
    /// The record of `application_no`.
    pub async fn xp_negotiation(&self, application_no: &str) -> Result<Option<NegotiationRow>> {
        Ok(on_read!(self, |p| {
            sqlx::query_as::<_, NegotiationRow>(self.sql(&format!(
                "SELECT {NEGOTIATION_COLUMNS} FROM xp_negotiations WHERE application_no = $1"
            )))
            .bind(application_no)
            .fetch_optional(p)
            .await
        })?)
    }

    /// Records in `state` (any when `None`), by application number, after `after`.
    pub async fn xp_negotiations(&self, state: Option<&str>, after: &str, limit: i64) -> Result<Vec<NegotiationRow>> {
        Ok(on_read!(self, |p| {
            sqlx::query_as::<_, NegotiationRow>(self.sql(&format!(
                "SELECT {NEGOTIATION_COLUMNS} FROM xp_negotiations \
                 WHERE ($1 IS NULL OR state = $1) AND application_no > $2 ORDER BY application_no LIMIT $3"
            )))
            .bind(state)
            .bind(after)
            .bind(limit)
            .fetch_all(p)
            .await
        })?)
    }

    /// Records whose deadlines may need attention (not final, not awaiting
    /// the request), after `after`.
    pub async fn xp_running(&self, after: &str, limit: i64) -> Result<Vec<NegotiationRow>> {
        Ok(on_read!(self, |p| {
            sqlx::query_as::<_, NegotiationRow>(self.sql(&format!(
                "SELECT {NEGOTIATION_COLUMNS} FROM xp_negotiations \
                 WHERE state IN ('RECEIVED', 'ACCEPTED', 'CONSULTING', 'REPLIED', 'CONSULTED') AND application_no > $1 \
                 ORDER BY application_no LIMIT $2"
            )))
            .bind(after)
            .bind(limit)
            .fetch_all(p)
            .await
        })?)
    }

    /// The history row of `message_id` on `application_no`, if it was applied.
    pub async fn xp_history_of(&self, application_no: &str, message_id: &str) -> Result<Option<HistoryRow>> {
        Ok(on_read!(self, |p| {
            sqlx::query_as::<_, HistoryRow>(self.sql(&format!(
                "SELECT {HISTORY_COLUMNS} FROM xp_history WHERE application_no = $1 AND message_id = $2"
            )))
            .bind(application_no)
            .bind(message_id)
            .fetch_optional(p)
            .await
        })?)
    }

    /// The history of `application_no`, oldest first.
    pub async fn xp_history(&self, application_no: &str) -> Result<Vec<HistoryRow>> {
        Ok(on_read!(self, |p| {
            sqlx::query_as::<_, HistoryRow>(self.sql(&format!(
                "SELECT {HISTORY_COLUMNS} FROM xp_history WHERE application_no = $1 ORDER BY at, id"
            )))
            .bind(application_no)
            .fetch_all(p)
            .await
        })?)
    }

    /// Saves a record if it is still at `expected` (`None`: not stored yet)
    /// and writes its history rows, in one transaction. False, with nothing
    /// written, when another step saved it first (the caller loads and
    /// applies again) or a history row's message was applied already.
    pub async fn xp_save(
        &self,
        application_no: &str,
        doc: &str,
        index: &NegotiationIndex,
        expected: Option<i64>,
        history: &[HistoryRow],
        now: Millis,
    ) -> Result<bool> {
        on_write!(self, |p| {
            let mut tx = p.begin().await?;
            let written = match expected {
                None => sqlx::query(self.sql(
                    "INSERT INTO xp_negotiations (application_no, state, doc, version, receiver_usci, whitelist_key, \
                     decision_year, approved_micro, created_at, updated_at) VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $8) \
                     ON CONFLICT (application_no) DO NOTHING",
                ))
                .bind(application_no)
                .bind(&index.state)
                .bind(doc)
                .bind(index.receiver_usci.as_deref())
                .bind(index.whitelist_key.as_deref())
                .bind(index.decision_year)
                .bind(index.approved_micro)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                Some(v) => sqlx::query(self.sql(
                    "UPDATE xp_negotiations SET state = $1, doc = $2, version = version + 1, receiver_usci = $3, \
                     whitelist_key = $4, decision_year = $5, approved_micro = $6, updated_at = $7 \
                     WHERE application_no = $8 AND version = $9",
                ))
                .bind(&index.state)
                .bind(doc)
                .bind(index.receiver_usci.as_deref())
                .bind(index.whitelist_key.as_deref())
                .bind(index.decision_year)
                .bind(index.approved_micro)
                .bind(now)
                .bind(application_no)
                .bind(v)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            };
            if written != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            for h in history {
                let n = insert_history!(self, &mut *tx, application_no, h).await?.rows_affected();
                if n != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Writes a history row alone (an input refused before any record
    /// exists, or one that changed nothing). False when the message has a
    /// row already.
    pub async fn xp_note(&self, application_no: &str, h: &HistoryRow) -> Result<bool> {
        Ok(on_write!(self, |p| {
            insert_history!(self, p, application_no, h).await.map(|r| r.rows_affected())
        })? == 1)
    }

    /// Tonnes (millionths) approved under a whitelist entry in a year.
    pub async fn xp_whitelist_used(&self, key: &str, year: i32) -> Result<i64> {
        let sum: Option<i64> = on_read!(self, |p| {
            sqlx::query_scalar::<_, Option<i64>>(
                self.sql("SELECT CAST(SUM(approved_micro) AS BIGINT) FROM xp_negotiations WHERE whitelist_key = $1 AND decision_year = $2"),
            )
            .bind(key)
            .bind(year)
            .fetch_one(p)
            .await
        })?;
        Ok(sum.unwrap_or(0))
    }

    /// Stores a letter and its receipt; false when one with the same source
    /// and id is stored already (it is then left as it was).
    pub async fn xp_letter_put(&self, l: &LetterRow) -> Result<bool> {
        Ok(on_write!(self, |p| {
            sqlx::query(self.sql(
                "INSERT INTO xp_letters (letter_source, letter_id, direction, connector, type, subject, letter, receipt, \
                 verdict, reason, message_id, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                 ON CONFLICT (letter_source, letter_id) DO NOTHING",
            ))
            .bind(&l.letter_source)
            .bind(&l.letter_id)
            .bind(&l.direction)
            .bind(&l.connector)
            .bind(&l.r#type)
            .bind(&l.subject)
            .bind(&l.letter)
            .bind(l.receipt.as_deref())
            .bind(&l.verdict)
            .bind(l.reason.as_deref())
            .bind(l.message_id.as_deref())
            .bind(l.at)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })? == 1)
    }

    /// Replaces the receipt of an outgoing letter (a later attempt got one).
    pub async fn xp_letter_receipt(&self, source: &str, id: &str, receipt: &str, verdict: &str, reason: Option<&str>) -> Result<()> {
        on_write!(self, |p| {
            sqlx::query(
                self.sql("UPDATE xp_letters SET receipt = $1, verdict = $2, reason = $3 WHERE letter_source = $4 AND letter_id = $5"),
            )
            .bind(receipt)
            .bind(verdict)
            .bind(reason)
            .bind(source)
            .bind(id)
            .execute(p)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    /// The letter `source` + `id`.
    pub async fn xp_letter(&self, source: &str, id: &str) -> Result<Option<LetterRow>> {
        Ok(on_read!(self, |p| {
            sqlx::query_as::<_, LetterRow>(self.sql(&format!(
                "SELECT {LETTER_COLUMNS} FROM xp_letters WHERE letter_source = $1 AND letter_id = $2"
            )))
            .bind(source)
            .bind(id)
            .fetch_optional(p)
            .await
        })?)
    }

    /// The letters of `subject`, oldest first.
    pub async fn xp_letters(&self, subject: &str) -> Result<Vec<LetterRow>> {
        Ok(on_read!(self, |p| {
            sqlx::query_as::<_, LetterRow>(self.sql(&format!(
                "SELECT {LETTER_COLUMNS} FROM xp_letters WHERE subject = $1 ORDER BY at, letter_id"
            )))
            .bind(subject)
            .fetch_all(p)
            .await
        })?)
    }

    /// Stores a whitelist entry unless a version with a later or equal event
    /// time is stored; true when stored.
    pub async fn xp_whitelist_put(&self, w: &WhitelistPut<'_>, now: Millis) -> Result<bool> {
        let WhitelistPut {
            scheme,
            whitelist_id,
            facility_usci,
            entry,
            event_time,
            event_millis,
            message_id,
        } = *w;
        Ok(on_write!(self, |p| {
            sqlx::query(self.sql(
                "INSERT INTO xp_whitelist (scheme, whitelist_id, facility_usci, entry, event_time, event_millis, message_id, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (scheme, whitelist_id) DO UPDATE SET \
                 facility_usci = excluded.facility_usci, entry = excluded.entry, event_time = excluded.event_time, \
                 event_millis = excluded.event_millis, message_id = excluded.message_id, updated_at = excluded.updated_at \
                 WHERE xp_whitelist.event_millis < excluded.event_millis",
            ))
            .bind(scheme)
            .bind(whitelist_id)
            .bind(facility_usci)
            .bind(entry)
            .bind(event_time)
            .bind(event_millis)
            .bind(message_id)
            .bind(now)
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })? == 1)
    }

    /// Whitelist entries naming the facility `usci`.
    pub async fn xp_whitelist_for(&self, usci: &str) -> Result<Vec<WhitelistRow>> {
        Ok(on_read!(self, |p| {
            sqlx::query_as::<_, WhitelistRow>(self.sql(&format!(
                "SELECT {WHITELIST_COLUMNS} FROM xp_whitelist \
                 WHERE facility_usci = $1 ORDER BY scheme, whitelist_id"
            )))
            .bind(usci)
            .fetch_all(p)
            .await
        })?)
    }

    /// Every whitelist entry, by scheme and id.
    pub async fn xp_whitelist_all(&self, limit: i64) -> Result<Vec<WhitelistRow>> {
        Ok(on_read!(self, |p| {
            sqlx::query_as::<_, WhitelistRow>(self.sql(&format!(
                "SELECT {WHITELIST_COLUMNS} FROM xp_whitelist \
                 ORDER BY scheme, whitelist_id LIMIT $1"
            )))
            .bind(limit)
            .fetch_all(p)
            .await
        })?)
    }

    /// Writes an audit row (refused letters).
    pub async fn xp_audit(
        &self,
        actor: &str,
        action: &str,
        connector: Option<&str>,
        detail: &serde_json::Value,
        now: Millis,
    ) -> Result<()> {
        on_write!(self, |p| {
            sqlx::query(self.sql("INSERT INTO audit_log (id, at, actor, action, partner_id, detail) VALUES ($1, $2, $3, $4, $5, $6)"))
                .bind(format!("aud_{}", ulid::Ulid::generate()))
                .bind(now)
                .bind(actor)
                .bind(action)
                .bind(connector)
                .bind(detail.to_string())
                .execute(p)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }
}
