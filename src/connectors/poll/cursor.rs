//! Where a run stands in the partner's collection, and how a committed
//! page moves it. Pure: the stored row in, the next request and the row to
//! store out.
//!
//! Within a run every request repeats the run's cursor and adds the page
//! token of the page before (a page token belongs to the query that
//! produced it). The `next` cursor of each page is remembered; when the
//! last page (no token) is committed it becomes the cursor of the next run.
//! The position is stored after every committed page, so a restart sends
//! exactly the request the interrupted run would have sent next: nothing is
//! skipped, and at most the page in hand is fetched twice.

use crate::store::PollCursor;

/// The position of a run: what the next request sends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Position {
    /// The run's cursor (sent with every page of the run).
    pub cursor: Option<String>,
    /// The next page's token; `None` for a run's first page.
    pub page_token: Option<String>,
    /// The latest `next` cursor seen in this run.
    pub next_cursor: Option<String>,
}

/// What a committed page did to the position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Advance {
    /// The run goes on with this position.
    NextPage(Position),
    /// That was the last page; the next run starts here.
    Finished(Position),
}

impl Position {
    /// Where a run starts: in the middle of an interrupted run (its stored
    /// page token), or at the stored cursor, or at `initial` before any run
    /// has finished.
    pub fn start(stored: Option<&PollCursor>, initial: Option<&str>) -> Self {
        let initial = initial.filter(|s| !s.is_empty()).map(str::to_string);
        match stored {
            Some(s) if s.page_token.is_some() => Self {
                cursor: s.cursor.clone(),
                page_token: s.page_token.clone(),
                next_cursor: s.next_cursor.clone(),
            },
            Some(s) => Self {
                cursor: s.cursor.clone().or(initial),
                page_token: None,
                next_cursor: None,
            },
            None => Self {
                cursor: initial,
                page_token: None,
                next_cursor: None,
            },
        }
    }

    /// Whether this position resumes a run that was interrupted.
    pub fn resumes(&self) -> bool {
        self.page_token.is_some()
    }

    /// The position after a page whose answer held `next_cursor` and
    /// `next_page_token` was committed. A page without a cursor keeps the
    /// one seen before; a run that never saw one keeps its own cursor.
    pub fn after_page(&self, next_cursor: Option<String>, next_page_token: Option<String>) -> Advance {
        let next_cursor = next_cursor.or_else(|| self.next_cursor.clone());
        match next_page_token {
            Some(token) => Advance::NextPage(Self {
                cursor: self.cursor.clone(),
                page_token: Some(token),
                next_cursor,
            }),
            None => Advance::Finished(Self {
                cursor: next_cursor.or_else(|| self.cursor.clone()),
                page_token: None,
                next_cursor: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn a_first_run_starts_at_the_initial_cursor() {
        let p = Position::start(None, Some("2020-01-01T00:00:00+08:00"));
        assert_eq!(p.cursor, s("2020-01-01T00:00:00+08:00"));
        assert!(!p.resumes());
        assert_eq!(Position::start(None, Some("")).cursor, None);
    }

    #[test]
    fn a_run_keeps_its_cursor_and_ends_at_the_last_next_cursor() {
        let p = Position::start(None, Some("c0"));
        let Advance::NextPage(p1) = p.after_page(s("c1"), s("t1")) else {
            panic!("more pages")
        };
        assert_eq!(
            (p1.cursor.clone(), p1.page_token.clone(), p1.next_cursor.clone()),
            (s("c0"), s("t1"), s("c1"))
        );
        // A middle page without a cursor keeps the one seen before.
        let Advance::NextPage(p2) = p1.after_page(None, s("t2")) else {
            panic!("more pages")
        };
        assert_eq!(p2.next_cursor, s("c1"));
        let Advance::Finished(end) = p2.after_page(s("c3"), None) else {
            panic!("last page")
        };
        assert_eq!(
            end,
            Position {
                cursor: s("c3"),
                page_token: None,
                next_cursor: None
            }
        );
    }

    #[test]
    fn a_run_without_any_next_cursor_keeps_its_own() {
        let p = Position::start(None, Some("c0"));
        assert_eq!(
            p.after_page(None, None),
            Advance::Finished(Position {
                cursor: s("c0"),
                ..Position::default()
            })
        );
    }

    #[test]
    fn a_restart_resumes_the_interrupted_run_or_the_stored_cursor() {
        let mid = PollCursor {
            cursor: s("c0"),
            page_token: s("t4"),
            next_cursor: s("c3"),
            ..PollCursor::default()
        };
        let p = Position::start(Some(&mid), Some("initial"));
        assert!(p.resumes());
        assert_eq!((p.cursor, p.page_token, p.next_cursor), (s("c0"), s("t4"), s("c3")));
        let between = PollCursor {
            cursor: s("c9"),
            ..PollCursor::default()
        };
        assert_eq!(Position::start(Some(&between), Some("initial")).cursor, s("c9"));
        // A row written before any cursor was known still starts at `initial`.
        assert_eq!(Position::start(Some(&PollCursor::default()), Some("initial")).cursor, s("initial"));
    }
}
