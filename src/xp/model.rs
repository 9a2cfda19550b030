//! The negotiation record: one per application (`xp:<application_no>`),
//! stored as a JSON document with a version, so its shape can grow without a
//! migration per field. Everything the API shows about a negotiation is
//! here, except its history (one row per input, `xp_history`) and the
//! letters with their receipts (`xp_letters`).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a negotiation is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    /// Letters arrived for an application the hub has not seen yet; they
    /// are parked until the request comes.
    AwaitingRequest,
    /// The application was received; the department has 5 working days to
    /// accept it or list what is missing (else it is deemed accepted).
    Received,
    /// The department listed missing items; a corrected request restarts it.
    CorrectionRequired,
    /// Accepted (or deemed accepted); the consultation letter is due
    /// within 5 working days.
    Accepted,
    /// The consultation letter went to the receiving province; its reply
    /// is due within 10 working days.
    Consulting,
    /// The receiving province agreed; the decision is due within 5 working days.
    Replied,
    /// Approved: the decision is issued (by consultation or by whitelist).
    Decided,
    /// Not approved: the receiving province disagreed.
    Refused,
    /// This province is consulted by the sending province: its reply is
    /// due within 10 working days (receiving side).
    Consulted,
    /// This province replied in agreement; the sending province decides
    /// (receiving side).
    Answered,
}

impl State {
    /// The name as the API shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingRequest => "AWAITING_REQUEST",
            Self::Received => "RECEIVED",
            Self::CorrectionRequired => "CORRECTION_REQUIRED",
            Self::Accepted => "ACCEPTED",
            Self::Consulting => "CONSULTING",
            Self::Replied => "REPLIED",
            Self::Decided => "DECIDED",
            Self::Refused => "REFUSED",
            Self::Consulted => "CONSULTED",
            Self::Answered => "ANSWERED",
        }
    }

    /// Whether nothing more happens to it.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Decided | Self::Refused)
    }
}

/// Which side of the transfer this province is on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// The waste leaves this province: its department decides.
    #[default]
    Sending,
    /// The waste comes into this province: its department is consulted
    /// and replies.
    Receiving,
}

/// The legal deadlines of the process (Order No. 23 Art. 23-26).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeadlineKind {
    /// Acceptance or deficiency notice: 5 working days from receipt (Art. 23).
    Acceptance,
    /// Preliminary review and consultation letter: 5 working days from acceptance (Art. 24).
    Consultation,
    /// The receiving province's reply: 10 working days from the letter (Art. 25).
    Reply,
    /// The decision: 5 working days from the reply (Art. 26).
    Decision,
}

impl DeadlineKind {
    /// Working days allowed.
    pub fn working_days(self) -> u32 {
        match self {
            Self::Acceptance | Self::Consultation | Self::Decision => 5,
            Self::Reply => 10,
        }
    }

    /// Rule id of the prompts about it (`XP_REPLY_DUE`, `XP_REPLY_OVERDUE`).
    pub fn rule_id(self, overdue: bool) -> String {
        let name = match self {
            Self::Acceptance => "ACCEPTANCE",
            Self::Consultation => "CONSULTATION",
            Self::Reply => "REPLY",
            Self::Decision => "DECISION",
        };
        format!("XP_{name}_{}", if overdue { "OVERDUE" } else { "DUE" })
    }

    /// What is due, in Chinese, for prompts.
    pub fn zh(self) -> &'static str {
        match self {
            Self::Acceptance => "受理或一次性告知补正",
            Self::Consultation => "初审并发出商请函",
            Self::Reply => "接受地省份复函",
            Self::Decision => "作出批准决定",
        }
    }

    /// The legal basis, for the API and prompts.
    pub fn basis(self) -> &'static str {
        match self {
            Self::Acceptance => "《危险废物转移管理办法》第二十三条",
            Self::Consultation => "《危险废物转移管理办法》第二十四条",
            Self::Reply => "《危险废物转移管理办法》第二十五条",
            Self::Decision => "《危险废物转移管理办法》第二十六条",
        }
    }
}

/// One running or finished deadline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Deadline {
    /// Which.
    pub kind: DeadlineKind,
    /// The day the period starts from (not counted), Beijing date.
    #[schema(value_type = String)]
    pub from: NaiveDate,
    /// The last day (the period ends at the end of it, Beijing time).
    #[schema(value_type = String)]
    pub due: NaiveDate,
    /// The due date was counted partly by weekday, in a year the calendar
    /// does not cover yet; it is recounted at every check.
    #[serde(default)]
    pub provisional: bool,
    /// Division code of the department that must act (prompts go there).
    pub responsible: String,
    /// When it was met (RFC 3339); `None` while running.
    #[serde(default)]
    pub met_at: Option<String>,
    /// Working days after the due date it was met (0 when in time).
    #[serde(default)]
    pub late_by: u32,
    /// The reminder before the due date was raised.
    #[serde(default)]
    pub reminded: bool,
    /// The prompt for the missed deadline was raised.
    #[serde(default)]
    pub overdue_prompted: bool,
}

/// How the decision came about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Basis {
    /// The receiving province agreed.
    Consultation,
    /// A whitelist entry covered it; no consultation.
    Whitelist,
}

/// A letter of the negotiation, as the record keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LetterRef {
    /// Its number (商请函/复函文号).
    pub letter_no: String,
    /// When it was sent (RFC 3339, as the letter says).
    pub sent_at: String,
    /// The hub message that carried it.
    pub message_id: String,
}

/// The receiving province's reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplyRef {
    /// The reply letter.
    pub letter: LetterRef,
    /// `AGREE` or `DISAGREE`.
    pub decision: String,
    /// Reasons, when given.
    #[serde(default)]
    pub reasons: Option<String>,
}

/// The decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DecisionRef {
    /// 批准文号.
    pub decision_no: String,
    /// How it came about.
    pub basis: Basis,
    /// The whitelist entry relied on (`scheme/whitelist_id`).
    #[serde(default)]
    pub whitelist: Option<String>,
    /// First day of validity.
    #[schema(value_type = String)]
    pub valid_from: NaiveDate,
    /// Last day of validity.
    #[schema(value_type = String)]
    pub valid_to: NaiveDate,
    /// Tonnes approved, summed over the lines (decimal string).
    pub quantity_t: String,
    /// When it was issued (RFC 3339).
    pub decided_at: String,
    /// Who issued it: `department` (the provincial system) or `hub`
    /// (whitelist decisions the hub issues itself).
    pub issued_by: String,
    /// The hub message that carried it.
    pub message_id: String,
}

/// A letter that came before the step it belongs to: kept, and applied
/// once the negotiation gets there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Parked {
    /// The hub message.
    pub message_id: String,
    /// Its type.
    pub r#type: String,
    /// Why it waits.
    pub reason: String,
    /// When it was parked (RFC 3339).
    pub parked_at: String,
    /// The input itself, to apply later.
    #[schema(value_type = Object)]
    pub input: Value,
}

/// The negotiation record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Negotiation {
    /// The application number.
    pub application_no: String,
    /// Which side this province is on.
    #[serde(default)]
    pub role: Role,
    /// Where it is.
    pub state: State,
    /// The latest request's `data` (absent while awaiting it).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub request: Option<Value>,
    /// The receiving province (2 digits).
    #[serde(default)]
    pub receiver_province: Option<String>,
    /// The sending province, on the receiving side (2 digits).
    #[serde(default)]
    pub sending_province: Option<String>,
    /// When the latest request was received (RFC 3339).
    #[serde(default)]
    pub received_at: Option<String>,
    /// When it was accepted (RFC 3339).
    #[serde(default)]
    pub accepted_at: Option<String>,
    /// Accepted because no notice came within 5 working days.
    #[serde(default)]
    pub deemed_accepted: bool,
    /// The consultation letter sent.
    #[serde(default)]
    pub consultation: Option<LetterRef>,
    /// The reply received.
    #[serde(default)]
    pub reply: Option<ReplyRef>,
    /// The decision.
    #[serde(default)]
    pub decision: Option<DecisionRef>,
    /// Why the whitelist did not apply, when it was looked at and did not.
    #[serde(default)]
    pub whitelist_note: Option<String>,
    /// Every deadline so far, the running one last.
    #[serde(default)]
    pub deadlines: Vec<Deadline>,
    /// Letters waiting for their step.
    #[serde(default)]
    pub parked: Vec<Parked>,
}

impl Negotiation {
    /// A record with nothing received yet.
    pub fn new(application_no: &str) -> Self {
        Self {
            application_no: application_no.to_string(),
            role: Role::Sending,
            state: State::AwaitingRequest,
            request: None,
            receiver_province: None,
            sending_province: None,
            received_at: None,
            accepted_at: None,
            deemed_accepted: false,
            consultation: None,
            reply: None,
            decision: None,
            whitelist_note: None,
            deadlines: Vec::new(),
            parked: Vec::new(),
        }
    }

    /// The deadline running now, if any.
    pub fn running(&self) -> Option<&Deadline> {
        self.deadlines.last().filter(|d| d.met_at.is_none())
    }

    /// Mutable [`Self::running`].
    pub fn running_mut(&mut self) -> Option<&mut Deadline> {
        self.deadlines.last_mut().filter(|d| d.met_at.is_none())
    }
}
