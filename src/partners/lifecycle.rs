//! The lifecycle transitions: add, rotate a key, suspend, resume, go live.
//! Each is one store transaction that also writes the audit record, and each
//! status change is conditional on the status it starts from, so two
//! operators acting at once cannot both apply it.

use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use super::request::NewPartner;
use super::{PartnerView, Status};
use crate::app::AppState;
use crate::error::{ApiError, FieldError};
use crate::ingest::auth::generate_key;
use crate::model::now_millis;
use crate::store::partners::{Audit, NewKey, PartnerRow};

/// The longest overlap an operator may give a rotated-out key.
pub const MAX_KEY_OVERLAP: Duration = Duration::from_secs(90 * 24 * 3600);

/// A new partner and the credentials shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Created {
    /// The partner.
    pub partner: PartnerView,
    /// Its API key: shown once, stored only as a digest.
    pub api_key: String,
    /// Its signing secret, when it signs: shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

/// A rotated key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Rotated {
    /// The new API key: shown once.
    pub api_key: String,
    /// When the partner's earlier keys stop working (Unix ms).
    pub previous_keys_expire_at: i64,
}

/// Why a transition was refused.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// The request has field errors.
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    /// No such partner.
    #[error("no partner {0}")]
    NotFound(String),
    /// The partner is not in a state that allows this.
    #[error("{detail}")]
    Conflict {
        /// Machine code.
        code: &'static str,
        /// Human text.
        detail: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<LifecycleError> for ApiError {
    fn from(e: LifecycleError) -> Self {
        match e {
            LifecycleError::Invalid(errors) => {
                let mut a = ApiError::validation(errors);
                a.detail = format!("the request has {} error(s)", a.errors.len());
                a
            }
            LifecycleError::NotFound(id) => ApiError::not_found(format!("no partner {id}")),
            LifecycleError::Conflict { code, detail } => ApiError::new(axum::http::StatusCode::CONFLICT, code, detail),
            LifecycleError::Store(s) => ApiError::internal(&s),
        }
    }
}

type Result<T> = std::result::Result<T, LifecycleError>;

fn new_key() -> (String, NewKey) {
    let (key, sha256) = generate_key();
    let prefix = key.chars().take(12).collect();
    (key, NewKey { sha256, prefix })
}

/// A random signing secret (32 bytes, hex).
fn signing_secret() -> String {
    let (key, _) = generate_key();
    format!("whs_{}", key.trim_start_matches("whk_"))
}

/// Registers a partner in `sandbox` with a new API key.
pub async fn add(app: &AppState, actor: &str, req: &NewPartner) -> Result<Created> {
    let errors = req.check(app);
    if !errors.is_empty() {
        return Err(LifecycleError::Invalid(errors));
    }
    let now = now_millis();
    let secret = req.signing.as_ref().map(|_| signing_secret());
    let row = PartnerRow {
        id: req.id.clone(),
        name: req.name.trim().to_string(),
        division_code: req.division_code.clone(),
        source: req.source(),
        message_types: serde_json::to_string(&req.message_types).unwrap_or_else(|_| "[]".into()),
        mappings: serde_json::to_string(&req.mappings).unwrap_or_else(|_| "{}".into()),
        status: Status::Sandbox.as_str().into(),
        resume_status: None,
        signing: req.signing.clone(),
        signing_secret: secret.clone(),
        callback_url: req.callback_url.clone(),
        created_at: now,
        updated_at: now,
        live_at: None,
    };
    let (api_key, key) = new_key();
    let audit = Audit {
        actor,
        action: "partner.add",
        detail: json!({
            "name": row.name, "division_code": row.division_code, "message_types": req.message_types,
            "mappings": req.mappings, "signing": req.signing, "callback_url": req.callback_url,
            "key_prefix": key.prefix,
        }),
    };
    if !app.store.insert_partner(&row, &key, &audit).await? {
        return Err(LifecycleError::Conflict {
            code: "partner_exists",
            detail: format!("a partner with id {} (or its source {}) exists already", row.id, row.source),
        });
    }
    tracing::info!(partner = %row.id, actor, "Partner registered in sandbox.");
    Ok(Created {
        partner: PartnerView::from(&row),
        api_key,
        signing_secret: secret,
    })
}

/// The partner, or `NotFound`.
pub async fn get(app: &AppState, id: &str) -> Result<PartnerRow> {
    app.store.partner(id).await?.ok_or_else(|| LifecycleError::NotFound(id.to_string()))
}

/// Issues a new key; the partner's current keys keep working for `overlap`.
pub async fn rotate_key(app: &AppState, actor: &str, id: &str, overlap: Duration) -> Result<Rotated> {
    if overlap > MAX_KEY_OVERLAP {
        return Err(LifecycleError::Invalid(vec![FieldError {
            path: "/overlap".into(),
            message: format!("at most {} days", MAX_KEY_OVERLAP.as_secs() / 86_400),
        }]));
    }
    let row = get(app, id).await?;
    let now = now_millis();
    let until = now.saturating_add(i64::try_from(overlap.as_millis()).unwrap_or(i64::MAX));
    let (api_key, key) = new_key();
    let audit = Audit {
        actor,
        action: "partner.rotate_key",
        detail: json!({ "key_prefix": key.prefix, "previous_keys_expire_at": until, "overlap_seconds": overlap.as_secs() }),
    };
    app.store.rotate_partner_key(&row.id, &key, now, until, &audit).await?;
    tracing::info!(partner = %row.id, actor, "Partner key rotated.");
    Ok(Rotated {
        api_key,
        previous_keys_expire_at: until,
    })
}

/// Suspends a partner (from sandbox or live): it is refused until resumed.
pub async fn suspend(app: &AppState, actor: &str, id: &str, reason: &str) -> Result<PartnerView> {
    let reason = required_reason(reason)?;
    let row = get(app, id).await?;
    let from = Status::parse(&row.status);
    if from == Status::Suspended {
        return Err(conflict("already_suspended", format!("partner {id} is suspended already")));
    }
    let audit = Audit {
        actor,
        action: "partner.suspend",
        detail: json!({ "from": from.as_str(), "reason": reason }),
    };
    transition(app, &row, from, Status::Suspended, Some(from.as_str()), &audit).await
}

/// Resumes a suspended partner in the status it had.
pub async fn resume(app: &AppState, actor: &str, id: &str) -> Result<PartnerView> {
    let row = get(app, id).await?;
    if Status::parse(&row.status) != Status::Suspended {
        return Err(conflict("not_suspended", format!("partner {id} is not suspended")));
    }
    let to = row.resume_status.as_deref().map_or(Status::Sandbox, Status::parse);
    let to = if to == Status::Suspended { Status::Sandbox } else { to };
    let audit = Audit {
        actor,
        action: "partner.resume",
        detail: json!({ "to": to.as_str() }),
    };
    transition(app, &row, Status::Suspended, to, None, &audit).await
}

/// Takes a sandbox partner live. Needs its latest conformance run to have
/// passed, unless an operator overrides with a reason (audited).
pub async fn go_live(app: &AppState, actor: &str, id: &str, override_reason: Option<&str>) -> Result<PartnerView> {
    let row = get(app, id).await?;
    if Status::parse(&row.status) != Status::Sandbox {
        return Err(conflict(
            "not_in_sandbox",
            format!("partner {id} is {}; only a sandbox partner goes live", row.status),
        ));
    }
    let latest = app.store.latest_conformance(id).await?;
    let passed = latest.as_ref().is_some_and(|r| r.passed);
    let overridden = match (passed, override_reason) {
        (true, _) => false,
        (false, Some(reason)) => {
            required_reason(reason)?;
            true
        }
        (false, None) => {
            return Err(conflict(
                "conformance_required",
                match &latest {
                    Some(r) => format!(
                        "the latest conformance run ({}) did not pass; fix the findings and run it again",
                        r.id
                    ),
                    None => format!("partner {id} has no conformance run; run `wastehub partner conformance {id}` first"),
                },
            ));
        }
    };
    let audit = Audit {
        actor,
        action: "partner.go_live",
        detail: json!({
            "conformance_run": latest.as_ref().map(|r| r.id.clone()),
            "conformance_passed": passed,
            "override": overridden,
            "reason": override_reason.filter(|_| overridden),
        }),
    };
    transition(app, &row, Status::Sandbox, Status::Live, None, &audit).await
}

async fn transition(
    app: &AppState,
    row: &PartnerRow,
    from: Status,
    to: Status,
    resume: Option<&str>,
    audit: &Audit<'_>,
) -> Result<PartnerView> {
    let now = now_millis();
    if !app
        .store
        .set_partner_status(&row.id, from.as_str(), to.as_str(), resume, now, audit)
        .await?
    {
        return Err(conflict(
            "changed_meanwhile",
            format!("partner {} changed while this was being applied; look again", row.id),
        ));
    }
    tracing::info!(partner = %row.id, actor = audit.actor, from = from.as_str(), to = to.as_str(), "Partner status changed.");
    let now_row = get(app, &row.id).await?;
    Ok(PartnerView::from(&now_row))
}

fn conflict(code: &'static str, detail: String) -> LifecycleError {
    LifecycleError::Conflict { code, detail }
}

fn required_reason(reason: &str) -> Result<&str> {
    let r = reason.trim();
    if r.is_empty() || r.chars().count() > 500 {
        return Err(LifecycleError::Invalid(vec![FieldError {
            path: "/reason".into(),
            message: "give a reason of 1 to 500 characters".into(),
        }]));
    }
    Ok(r)
}
