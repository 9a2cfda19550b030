//! The deadline check, every `[xp] check_interval`: for each running
//! negotiation, the running deadline is counted again on the working-day
//! calendar and
//! - an application not accepted or refused within 5 working days is
//!   deemed accepted (Order No. 23 Art. 23), and the department told;
//! - `[xp] lead_days` working days before a due date, a reminder (`WARN`)
//!   goes to the responsible department's jurisdiction;
//! - after the due date, an overdue prompt (`ALERT`) goes there too.
//!
//! Each is a step of the record ([`super::workflow::step`]) with its own
//! history key, so it happens once however many processes check: a second
//! process finds the step taken and only re-sends its (duplicate) prompt.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::emit;
use super::machine::{self, Outcome};
use super::model::{DeadlineKind, Negotiation, State};
use super::rules::{Standing, beijing_date, recount, standing};
use super::workflow::{now_beijing, step};
use crate::app::AppState;

/// What one check did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// Negotiations looked at.
    pub running: usize,
    /// Applications deemed accepted.
    pub deemed: usize,
    /// Reminders raised.
    pub reminders: usize,
    /// Overdue prompts raised.
    pub overdue: usize,
}

/// Checks until `stop`.
pub async fn run(app: AppState, interval: Duration, stop: CancellationToken) {
    loop {
        match check(&app).await {
            Ok(c) if c.deemed + c.reminders + c.overdue > 0 => {
                tracing::info!(
                    deemed = c.deemed,
                    reminders = c.reminders,
                    overdue = c.overdue,
                    "Negotiation deadlines checked."
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "Negotiation deadlines could not be checked; trying again at the next interval."),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// One pass over every running negotiation.
pub async fn check(app: &AppState) -> Result<Checked, String> {
    let mut out = Checked::default();
    let mut after = String::new();
    loop {
        let page = app.store.xp_running(&after, 200).await.map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after = last.application_no.clone();
        for r in page {
            out.running += 1;
            let Ok(n) = serde_json::from_str::<Negotiation>(&r.doc) else {
                tracing::warn!(application_no = %r.application_no, "A stored negotiation record does not read; skipped.");
                continue;
            };
            one(app, &n, &mut out).await.map_err(|e| e.to_string())?;
        }
    }
    Ok(out)
}

async fn one(app: &AppState, stored: &Negotiation, out: &mut Checked) -> Result<(), crate::connectors::DeliveryError> {
    let calendar = &app.reference.data().calendar;
    let Some(mut d) = stored.running().cloned() else { return Ok(()) };
    recount(calendar, &mut d);
    let now = now_beijing();
    let Some(today) = beijing_date(&now) else { return Ok(()) };
    let s = standing(calendar, &d, today, app.config.xp.lead_days);
    let app_no = stored.application_no.as_str();
    if stored.state == State::Received && d.kind == DeadlineKind::Acceptance && matches!(s, Standing::Overdue { .. }) {
        let key = format!("deadline:{}:{}:deemed", app_no, d.due);
        step(app, app_no, &key, None, |n, ctx| {
            vec![(key.clone(), "deadline".to_string(), machine::deem_accepted(n, ctx))]
        })
        .await?;
        out.deemed += 1;
        return Ok(());
    }
    let (what, already) = match s {
        Standing::InTime => return Ok(()),
        Standing::DueSoon { .. } => ("reminder", d.reminded),
        Standing::Overdue { .. } => ("overdue", d.overdue_prompted),
    };
    if already {
        return Ok(());
    }
    let key = format!("deadline:{}:{:?}:{}:{what}", app_no, d.kind, d.due);
    let kind = d.kind;
    step(app, app_no, &key, None, |n, _ctx| {
        let Some(running) = n.running_mut() else {
            return vec![(
                key.clone(),
                "deadline".into(),
                Outcome::Duplicate {
                    note: "met meanwhile".into(),
                },
            )];
        };
        if running.kind != kind {
            return vec![(
                key.clone(),
                "deadline".into(),
                Outcome::Duplicate {
                    note: "met meanwhile".into(),
                },
            )];
        }
        recount(calendar, running);
        if what == "reminder" {
            running.reminded = true;
        } else {
            running.overdue_prompted = true;
        }
        let d = running.clone();
        let prompt = emit::deadline_prompt(app, n, &d, s, &now);
        let note = match s {
            Standing::DueSoon { left } => format!(
                "{:?} due {} ({left} working days left): reminder to {}",
                d.kind, d.due, d.responsible
            ),
            Standing::Overdue { by } => format!(
                "{:?} overdue since {} ({by} working days): prompt to {}",
                d.kind, d.due, d.responsible
            ),
            Standing::InTime => String::new(),
        };
        vec![(
            key.clone(),
            "deadline".into(),
            Outcome::Applied {
                note,
                emits: prompt.into_iter().collect(),
            },
        )]
    })
    .await?;
    if what == "reminder" {
        out.reminders += 1;
    } else {
        out.overdue += 1;
    }
    Ok(())
}
