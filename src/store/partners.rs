//! The partner registry's tables: `partners`, `partner_keys` and the
//! `audit_log` rows written in the same transaction as each change, so a
//! change is never without its audit record. Business rules (which
//! transitions are allowed, what a valid partner is) live in
//! `crate::partners`; this module only reads and writes rows.

use serde_json::Value;

use super::{Result, Store, on_read, on_write};
use crate::model::Millis;

/// Writes the audit row of a change inside the change's transaction
/// (a macro: the body is compiled once per backend, like `on_write!`).
macro_rules! write_audit {
    ($store:expr, $tx:expr, $partner:expr, $now:expr, $audit:expr) => {
        sqlx::query($store.sql("INSERT INTO audit_log (id, at, actor, action, partner_id, detail) VALUES ($1, $2, $3, $4, $5, $6)"))
            .bind(audit_id())
            .bind($now)
            .bind($audit.actor)
            .bind($audit.action)
            .bind($partner)
            .bind($audit.detail.to_string())
            .execute(&mut *$tx)
            .await
    };
}

/// One row of `partners`.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct PartnerRow {
    /// Partner id (a slug chosen at registration).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Jurisdiction (division code).
    pub division_code: String,
    /// The CloudEvents `source` it sends as.
    pub source: String,
    /// JSON array of message types it may send.
    pub message_types: String,
    /// JSON object: message type → inbound mapping.
    pub mappings: String,
    /// `sandbox`, `live` or `suspended`.
    pub status: String,
    /// The status a suspended partner returns to.
    pub resume_status: Option<String>,
    /// Signature algorithm required on its requests, if any.
    pub signing: Option<String>,
    /// The shared signing secret (never logged or returned after creation).
    pub signing_secret: Option<String>,
    /// Where prompts for this partner are delivered, if it takes them.
    pub callback_url: Option<String>,
    /// Created.
    pub created_at: Millis,
    /// Last changed.
    pub updated_at: Millis,
    /// When it went live.
    pub live_at: Option<Millis>,
}

/// One row of `partner_keys`, without the digest.
#[derive(Clone, Debug, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct KeyRow {
    /// The first characters of the key, to tell keys apart.
    pub key_prefix: String,
    /// When it was made.
    pub created_at: Millis,
    /// When it stops working (set when it is rotated out).
    pub expires_at: Option<Millis>,
}

/// One audit record.
#[derive(Clone, Debug, sqlx::FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    /// Record id.
    pub id: String,
    /// When.
    pub at: Millis,
    /// Who (operator name).
    pub actor: String,
    /// What (`partner.add`, `partner.rotate_key`, …).
    pub action: String,
    /// Which partner.
    pub partner_id: Option<String>,
    /// Details (JSON; never a secret).
    #[schema(value_type = Object)]
    pub detail: String,
}

/// An audit record to write with a change.
#[derive(Clone, Debug)]
pub struct Audit<'a> {
    /// Who.
    pub actor: &'a str,
    /// What.
    pub action: &'a str,
    /// Details; never a secret.
    pub detail: Value,
}

/// A key to store: digest and display prefix.
#[derive(Clone, Debug)]
pub struct NewKey {
    /// SHA-256 of the key, hex.
    pub sha256: String,
    /// The first characters of the key.
    pub prefix: String,
}

fn audit_id() -> String {
    format!("aud_{}", ulid::Ulid::generate())
}

const COLUMNS: &str = "id, name, division_code, source, message_types, mappings, status, resume_status, signing, \
                       signing_secret, callback_url, created_at, updated_at, live_at";

impl Store {
    /// Inserts a partner with its first key and the audit record. `Ok(false)`
    /// when the id or the source is taken.
    pub async fn insert_partner(&self, row: &PartnerRow, key: &NewKey, audit: &Audit<'_>) -> Result<bool> {
        let inserted = on_write!(self, |p| {
            let mut tx = p.begin().await?;
            let taken: Option<(String,)> = sqlx::query_as(self.sql("SELECT id FROM partners WHERE id = $1 OR source = $2"))
                .bind(&row.id)
                .bind(&row.source)
                .fetch_optional(&mut *tx)
                .await?;
            if taken.is_some() {
                return Ok(false);
            }
            sqlx::query(self.sql(&format!(
                "INSERT INTO partners ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
            )))
            .bind(&row.id)
            .bind(&row.name)
            .bind(&row.division_code)
            .bind(&row.source)
            .bind(&row.message_types)
            .bind(&row.mappings)
            .bind(&row.status)
            .bind(&row.resume_status)
            .bind(&row.signing)
            .bind(&row.signing_secret)
            .bind(&row.callback_url)
            .bind(row.created_at)
            .bind(row.updated_at)
            .bind(row.live_at)
            .execute(&mut *tx)
            .await?;
            sqlx::query(self.sql(
                "INSERT INTO partner_keys (key_sha256, partner_id, key_prefix, created_at, expires_at) VALUES ($1, $2, $3, $4, NULL)",
            ))
            .bind(&key.sha256)
            .bind(&row.id)
            .bind(&key.prefix)
            .bind(row.created_at)
            .execute(&mut *tx)
            .await?;
            write_audit!(self, tx, &row.id, row.created_at, audit)?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(true)
        })?;
        Ok(inserted)
    }

    /// The partner with this id.
    pub async fn partner(&self, id: &str) -> Result<Option<PartnerRow>> {
        let row = on_read!(self, |p| {
            sqlx::query_as(self.sql(&format!("SELECT {COLUMNS} FROM partners WHERE id = $1")))
                .bind(id)
                .fetch_optional(p)
                .await
        })?;
        Ok(row)
    }

    /// Every registered partner, by id.
    pub async fn partners(&self) -> Result<Vec<PartnerRow>> {
        let rows = on_read!(self, |p| {
            sqlx::query_as(self.sql(&format!("SELECT {COLUMNS} FROM partners ORDER BY id")))
                .fetch_all(p)
                .await
        })?;
        Ok(rows)
    }

    /// The partner holding a key with this digest that has not expired at `now`.
    pub async fn partner_by_key(&self, sha256: &str, now: Millis) -> Result<Option<PartnerRow>> {
        let cols = COLUMNS
            .split(", ")
            .map(|c| format!("p.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let row = on_read!(self, |p| {
            sqlx::query_as(self.sql(&format!(
                "SELECT {cols} FROM partner_keys k JOIN partners p ON p.id = k.partner_id \
                 WHERE k.key_sha256 = $1 AND (k.expires_at IS NULL OR k.expires_at > $2)"
            )))
            .bind(sha256)
            .bind(now)
            .fetch_optional(p)
            .await
        })?;
        Ok(row)
    }

    /// The keys of a partner, newest first (digests are not returned).
    pub async fn partner_keys(&self, id: &str) -> Result<Vec<KeyRow>> {
        let rows = on_read!(self, |p| {
            sqlx::query_as(
                self.sql("SELECT key_prefix, created_at, expires_at FROM partner_keys WHERE partner_id = $1 ORDER BY created_at DESC"),
            )
            .bind(id)
            .fetch_all(p)
            .await
        })?;
        Ok(rows)
    }

    /// Adds a new key and lets every current key of the partner expire at
    /// `old_until` (keys that already expire sooner keep their time).
    pub async fn rotate_partner_key(&self, id: &str, key: &NewKey, now: Millis, old_until: Millis, audit: &Audit<'_>) -> Result<()> {
        on_write!(self, |p| {
            let mut tx = p.begin().await?;
            sqlx::query(
                self.sql("UPDATE partner_keys SET expires_at = $1 WHERE partner_id = $2 AND (expires_at IS NULL OR expires_at > $3)"),
            )
            .bind(old_until)
            .bind(id)
            .bind(old_until)
            .execute(&mut *tx)
            .await?;
            sqlx::query(self.sql(
                "INSERT INTO partner_keys (key_sha256, partner_id, key_prefix, created_at, expires_at) VALUES ($1, $2, $3, $4, NULL)",
            ))
            .bind(&key.sha256)
            .bind(id)
            .bind(&key.prefix)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(self.sql("UPDATE partners SET updated_at = $1 WHERE id = $2"))
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            write_audit!(self, tx, id, now, audit)?;
            tx.commit().await
        })?;
        Ok(())
    }

    /// Sets a partner's status when it is still `expect` (so two operators
    /// cannot both apply a transition). `Ok(false)` when it was not.
    pub async fn set_partner_status(
        &self,
        id: &str,
        expect: &str,
        status: &str,
        resume_status: Option<&str>,
        now: Millis,
        audit: &Audit<'_>,
    ) -> Result<bool> {
        let live_at = (status == "live").then_some(now);
        let changed = on_write!(self, |p| {
            let mut tx = p.begin().await?;
            let n = sqlx::query(self.sql(
                "UPDATE partners SET status = $1, resume_status = $2, updated_at = $3, live_at = COALESCE($4, live_at) \
                 WHERE id = $5 AND status = $6",
            ))
            .bind(status)
            .bind(resume_status)
            .bind(now)
            .bind(live_at)
            .bind(id)
            .bind(expect)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Ok(false);
            }
            write_audit!(self, tx, id, now, audit)?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(true)
        })?;
        Ok(changed)
    }

    /// Writes an audit record on its own (for actions that change nothing
    /// else, like an overridden go-live check).
    pub async fn audit(&self, partner_id: Option<&str>, now: Millis, audit: &Audit<'_>) -> Result<()> {
        on_write!(self, |p| {
            sqlx::query(self.sql("INSERT INTO audit_log (id, at, actor, action, partner_id, detail) VALUES ($1, $2, $3, $4, $5, $6)"))
                .bind(audit_id())
                .bind(now)
                .bind(audit.actor)
                .bind(audit.action)
                .bind(partner_id)
                .bind(audit.detail.to_string())
                .execute(p)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// The audit records of a partner (or all, with `None`), newest first.
    pub async fn audit_log(&self, partner_id: Option<&str>, limit: i64) -> Result<Vec<AuditRow>> {
        let rows = on_read!(self, |p| {
            match partner_id {
                Some(id) => {
                    sqlx::query_as(self.sql(
                        "SELECT id, at, actor, action, partner_id, detail FROM audit_log WHERE partner_id = $1 \
                         ORDER BY at DESC, id DESC LIMIT $2",
                    ))
                    .bind(id)
                    .bind(limit)
                    .fetch_all(p)
                    .await
                }
                None => {
                    sqlx::query_as(
                        self.sql("SELECT id, at, actor, action, partner_id, detail FROM audit_log ORDER BY at DESC, id DESC LIMIT $1"),
                    )
                    .bind(limit)
                    .fetch_all(p)
                    .await
                }
            }
        })?;
        Ok(rows)
    }
}
