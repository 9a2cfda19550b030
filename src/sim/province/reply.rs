//! Scripted replies (复函) to accepted consultations: per application, or
//! by default, the province agrees, disagrees, agrees late or stays silent.
//! The reply is a signed `xp-reply` letter whose `data` is the canonical
//! `xp-reply` body; it is posted to the hub by [`super::send`] with
//! retries.
//!
//! The reply's CloudEvents `id` is derived from the consultation's letter
//! number, so the same consultation is always answered under the same id
//! and a resend is a duplicate the hub recognises.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::letters::sign_letter;

use super::{Answer, Inner, rfc3339};

/// How the consultation for one application is answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    /// The answer.
    pub answer: Answer,
    /// How long after the consultation the reply is sent (default: the
    /// configured reply delay, or `late_after` for a late answer).
    pub delay: Option<Duration>,
}

impl Script {
    /// `answer` after the default delay.
    pub fn new(answer: Answer) -> Self {
        Self { answer, delay: None }
    }
}

/// The reasons given when the province disagrees.
pub const DISAGREE_REASONS: &str = "经研究，拟接受单位现有贮存和利用能力已饱和，暂不具备接收该批危险废物的条件，本厅不同意转入。";
/// The conditions attached when it agrees.
pub const AGREE_CONDITIONS: &str = "接受人应严格执行危险废物转移联单制度，如实记录接收量并按月报送所在地设区市生态环境局。";

/// The CloudEvents id of the reply to the consultation numbered `letter_no`.
pub fn reply_id(letter_no: &str) -> String {
    let digest = hex::encode(Sha256::digest(letter_no.as_bytes()));
    format!("reply-{}", &digest[..16])
}

/// Schedules the reply to an accepted consultation, as scripted for its
/// application or by default. A reset before the reply is due drops it;
/// stopping the simulator drops it too.
pub(super) fn schedule(st: Arc<Inner>, consultation: Value) {
    let application_no = consultation
        .pointer("/data/application_no")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let (script, generation) = {
        let book = st.book();
        (book.scripts.get(&application_no).copied(), book.generation)
    };
    let script = script.unwrap_or(Script::new(st.cfg.default_answer));
    let agree = match script.answer {
        Answer::Silent => return,
        Answer::Agree | Answer::Late => true,
        Answer::Disagree => false,
    };
    let delay = script.delay.unwrap_or(match script.answer {
        Answer::Late => st.cfg.late_after,
        _ => st.cfg.reply_delay,
    });
    tokio::spawn(async move {
        tokio::select! {
            () = st.stop.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        let letter = {
            let mut book = st.book();
            if book.generation != generation {
                return;
            }
            book.reply_seq += 1;
            build(&st, &consultation, agree, book.reply_seq)
        };
        match letter {
            Ok(letter) => super::send::deliver(&st, letter, true).await,
            Err(e) => tracing::warn!(error = %e, "province simulator could not sign its reply"),
        }
    });
}

/// The signed `xp-reply` letter answering `consultation`, numbered `n`.
pub(super) fn build(st: &Inner, consultation: &Value, agree: bool, n: u64) -> Result<Value, crate::letters::LetterError> {
    let data = consultation.get("data").unwrap_or(&Value::Null);
    let get = |field: &str| data.get(field).and_then(Value::as_str).unwrap_or_default().to_string();
    let consultation_no = get("letter_no");
    let application_no = get("application_no");
    let now = super::beijing_now();
    let time = rfc3339(now);
    let mut body = Map::new();
    body.insert(
        "letter_no".into(),
        Value::from(format!("{}环固函〔{}〕{n}号", st.cfg.abbreviation, now.format("%Y"))),
    );
    body.insert("reply_to".into(), Value::from(consultation_no.clone()));
    body.insert("application_no".into(), Value::from(application_no.clone()));
    body.insert("from_province".into(), Value::from(st.cfg.code.clone()));
    body.insert("to_province".into(), Value::from(get("from_province")));
    if agree {
        body.insert("decision".into(), Value::from("AGREE"));
        body.insert("conditions".into(), Value::from(AGREE_CONDITIONS));
    } else {
        body.insert("decision".into(), Value::from("DISAGREE"));
        body.insert("reasons".into(), Value::from(DISAGREE_REASONS));
    }
    body.insert("replied_at".into(), Value::from(time.clone()));
    let event = json!({
        "specversion": "1.0",
        "id": reply_id(&consultation_no),
        "source": st.source,
        "type": "xp-reply",
        "subject": format!("xp:{application_no}"),
        "time": time,
        "datacontenttype": "application/json",
        "data": Value::Object(body),
    });
    sign_letter(&event, &st.cfg.key)
}
