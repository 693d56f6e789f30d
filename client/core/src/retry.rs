//! When to try an upload again: exponential backoff with jitter, capped,
//! and the server's `Retry-After` honoured, with no I/O of its own.
//!
//! An uploader asks [`RetryPolicy::after`] after every failed attempt: it
//! answers with the delay before the next attempt, or `None` to give up.
//! Transient failures are retried (no answer at all, 5xx, 408, 429); a
//! refusal (any other 4xx) is final, because sending the same bytes again
//! gets the same answer. A `reportReplayed` answer to a *retry* means an
//! earlier attempt was stored: the upload succeeded ([`Outcome`]).

use std::time::Duration;

use hetally_protocol::api::Problem;
use hetally_protocol::problem::ProblemType;

/// How uploads retry transient failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, including the first.
    pub attempts: u32,
    /// Delay before the first retry; doubles each time.
    pub initial_delay: Duration,
    /// Largest delay between attempts (a longer `Retry-After` is honoured
    /// up to [`RetryPolicy::max_retry_after`]).
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a server asking for more makes the
    /// upload give up.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// 12 attempts, 100 ms doubling up to 5 s (about 40 s of retrying), and
    /// a server's `Retry-After` of up to 60 s honoured.
    fn default() -> Self {
        RetryPolicy {
            attempts: 12,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// What one upload attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// No answer: the connection failed or timed out.
    Unreachable,
    /// An HTTP answer.
    Answer {
        /// Its status.
        status: u16,
        /// The problem type, when the body was a hetally problem document.
        problem: Option<ProblemType>,
        /// Its `Retry-After` header, in seconds, if it had one.
        retry_after: Option<u64>,
    },
}

/// What an uploader does after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The report is stored.
    Stored,
    /// Wait this long, then try again.
    RetryAfter(Duration),
    /// Stop: the last answer is final.
    GiveUp,
}

impl RetryPolicy {
    /// What to do after `attempt` number `n` (1 for the first) got
    /// `result`. `jitter` in `[0.5, 1.0]` spreads clients' retries apart
    /// (draw it at random): the backoff is scaled by it, and a
    /// `Retry-After` of `t` becomes a wait in `[t, 1.5 t]` (`t` when
    /// `jitter` is 1), never shorter than the server asked.
    pub fn after(&self, n: u32, result: &Attempt, jitter: f64) -> Outcome {
        let (retryable, retry_after) = match result {
            Attempt::Unreachable => (true, None),
            Attempt::Answer { status, .. } if (200..300).contains(status) => {
                return Outcome::Stored
            }
            Attempt::Answer {
                problem: Some(ProblemType::ReportReplayed),
                ..
            } if n > 1 => return Outcome::Stored,
            Attempt::Answer {
                status,
                retry_after,
                ..
            } => (
                *status >= 500 || *status == 429 || *status == 408,
                retry_after.map(Duration::from_secs),
            ),
        };
        if !retryable || n >= self.attempts {
            return Outcome::GiveUp;
        }
        let jitter = jitter.clamp(0.5, 1.0);
        match retry_after {
            Some(wait) if wait > self.max_retry_after => Outcome::GiveUp,
            // Never sooner than asked; up to half as long again, so that
            // the clients one busy server refused at the same moment do not
            // all come back at the same moment.
            Some(wait) => Outcome::RetryAfter(wait + wait.mul_f64(1.0 - jitter)),
            None => Outcome::RetryAfter(self.backoff(n).mul_f64(jitter)),
        }
    }

    /// The backoff before retry number `n` (1 for the first): the initial
    /// delay doubled `n - 1` times, capped.
    pub fn backoff(&self, n: u32) -> Duration {
        let doublings = n.saturating_sub(1).min(31);
        self.initial_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }
}

/// Reads a problem document, if `body` is one of hetally's.
pub fn parse_problem(body: &[u8]) -> Option<(ProblemType, Problem)> {
    let problem: Problem = serde_json::from_slice(body).ok()?;
    Some((ProblemType::from_uri(&problem.kind)?, problem))
}

/// Reads a `Retry-After` header's value as a delay in seconds: either
/// delay-seconds or an HTTP date (RFC 9110, section 10.2.3), counted from
/// the system clock; a date in the past is a delay of 0.
pub fn parse_retry_after(value: &str) -> Option<u64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    parse_retry_after_at(value, now)
}

/// [`parse_retry_after`] with the current time given, in Unix seconds.
pub fn parse_retry_after_at(value: &str, now_unix: u64) -> Option<u64> {
    let value = value.trim();
    if let Ok(seconds) = value.parse() {
        return Some(seconds);
    }
    let date = httpdate::parse_http_date(value).ok()?;
    let at = date.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(at.saturating_sub(now_unix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, problem: Option<ProblemType>, retry_after: Option<u64>) -> Attempt {
        Attempt::Answer {
            status,
            problem,
            retry_after,
        }
    }

    #[test]
    fn transient_failures_back_off_and_refusals_are_final() {
        let p = RetryPolicy::default();
        assert_eq!(p.after(1, &answer(201, None, None), 1.0), Outcome::Stored);
        assert_eq!(
            p.after(1, &Attempt::Unreachable, 1.0),
            Outcome::RetryAfter(Duration::from_millis(100))
        );
        assert_eq!(
            p.after(3, &answer(503, Some(ProblemType::Internal), None), 0.5),
            Outcome::RetryAfter(Duration::from_millis(200))
        );
        assert_eq!(
            p.after(9, &Attempt::Unreachable, 1.0),
            Outcome::RetryAfter(Duration::from_secs(5))
        );
        assert_eq!(p.after(12, &Attempt::Unreachable, 1.0), Outcome::GiveUp);
        assert_eq!(
            p.after(1, &answer(400, Some(ProblemType::InvalidProof), None), 1.0),
            Outcome::GiveUp
        );
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_cap() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.after(1, &answer(429, None, Some(7)), 1.0),
            Outcome::RetryAfter(Duration::from_secs(7))
        );
        // Jitter only lengthens a Retry-After, by at most half.
        assert_eq!(
            p.after(1, &answer(429, None, Some(2)), 0.5),
            Outcome::RetryAfter(Duration::from_secs(3))
        );
        assert_eq!(
            p.after(4, &answer(503, None, Some(1)), 0.75),
            Outcome::RetryAfter(Duration::from_millis(1250))
        );
        // A jitter outside [0.5, 1] is clamped, never shortening the wait.
        assert_eq!(
            p.after(1, &answer(429, None, Some(2)), 7.0),
            Outcome::RetryAfter(Duration::from_secs(2))
        );
        // The problem type does not matter, only the status.
        assert_eq!(
            p.after(
                2,
                &answer(429, Some(ProblemType::TooManyRequests), Some(1)),
                1.0
            ),
            Outcome::RetryAfter(Duration::from_secs(1))
        );
        // A 429 without Retry-After backs off like any transient failure.
        assert_eq!(
            p.after(2, &answer(429, None, None), 1.0),
            Outcome::RetryAfter(Duration::from_millis(200))
        );
        assert_eq!(
            p.after(1, &answer(429, None, Some(3600)), 1.0),
            Outcome::GiveUp
        );
        // A Retry-After on a refusal does not make it retryable.
        assert_eq!(
            p.after(1, &answer(400, None, Some(1)), 1.0),
            Outcome::GiveUp
        );
        assert_eq!(parse_retry_after(" 12 "), Some(12));
        assert_eq!(parse_retry_after("0"), Some(0));
        // HTTP dates, counted from now: 07:28:00 is 1445412480.
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert_eq!(parse_retry_after_at(date, 1_445_412_480 - 30), Some(30));
        assert_eq!(parse_retry_after_at(date, 1_445_412_480 + 5), Some(0));
        assert_eq!(parse_retry_after(date), Some(0));
        // The obsolete forms RFC 9110 requires recipients to accept.
        let rfc850 = "Wednesday, 21-Oct-15 07:28:00 GMT";
        assert_eq!(parse_retry_after_at(rfc850, 1_445_412_470), Some(10));
        let asctime = "Wed Oct 21 07:28:00 2015";
        assert_eq!(parse_retry_after_at(asctime, 1_445_412_470), Some(10));
        assert_eq!(parse_retry_after("Wed, 32 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("1.5"), None);
        assert_eq!(parse_retry_after(""), None);
        assert_eq!(parse_retry_after("99999999999999999999999"), None);
    }

    #[test]
    fn a_replay_answer_to_a_retry_means_stored() {
        let p = RetryPolicy::default();
        let replay = answer(409, Some(ProblemType::ReportReplayed), None);
        assert_eq!(p.after(1, &replay, 1.0), Outcome::GiveUp);
        assert_eq!(p.after(2, &replay, 1.0), Outcome::Stored);
        let doc = br#"{"type":"urn:hetally:error:reportReplayed","title":"Conflict","status":409,"detail":"x"}"#;
        assert_eq!(parse_problem(doc).unwrap().0, ProblemType::ReportReplayed);
        assert!(parse_problem(b"not json").is_none());
    }
}
