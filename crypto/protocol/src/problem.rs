//! The problem types of hetally's HTTP API: every error the server answers
//! is an RFC 7807 problem document ([`crate::api::Problem`]) whose `type` is
//! `urn:hetally:error:<name>` for one of these.
//!
//! The server maps its errors to them in one place; clients read them back
//! with [`ProblemType::from_uri`] to decide what to do (retry, give up,
//! treat a replay of their own retry as success).

use std::fmt;

/// Prefix of every hetally problem type URI.
pub const PROBLEM_URN_PREFIX: &str = "urn:hetally:error:";

/// Media type of problem documents.
pub const PROBLEM_MEDIA_TYPE: &str = "application/problem+json";

macro_rules! problem_types {
    ($($variant:ident = $name:literal, $status:literal, $doc:literal;)*) => {
        /// A problem type of the HTTP API; see the module docs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ProblemType {
            $(#[doc = $doc] $variant,)*
        }

        impl ProblemType {
            /// Every problem type, in documentation order.
            pub const ALL: &'static [ProblemType] = &[$(ProblemType::$variant,)*];

            /// The short name, the last part of the URI.
            pub fn name(self) -> &'static str {
                match self { $(ProblemType::$variant => $name,)* }
            }

            /// The HTTP status the server answers with.
            pub fn status(self) -> u16 {
                match self { $(ProblemType::$variant => $status,)* }
            }

            /// What the problem means, in one sentence.
            pub fn description(self) -> &'static str {
                match self { $(ProblemType::$variant => $doc,)* }
            }
        }
    };
}

problem_types! {
    UnrecognizedTask = "unrecognizedTask", 404, "No task has this id on this server.";
    NotFound = "notFound", 404, "The task exists but has no such resource.";
    MissingToken = "missingToken", 401, "The endpoint needs a bearer token and none was sent.";
    WrongToken = "wrongToken", 403, "The bearer token sent is not the right one.";
    InvalidTask = "invalidTask", 400, "The task definition is not acceptable.";
    TaskExists = "taskExists", 409, "A task with this definition exists already.";
    BadRequest = "badRequest", 400, "The request body or parameters are malformed.";
    UnsupportedMediaType = "unsupportedMediaType", 415, "The request's media type is not the one the endpoint takes.";
    PayloadTooLarge = "payloadTooLarge", 413, "The request body is larger than the endpoint accepts.";
    InvalidMessage = "invalidMessage", 400, "The report does not decode.";
    WrongCiphertextCount = "wrongCiphertextCount", 400, "The report has the wrong number of ciphertexts for the task's layout.";
    InvalidCiphertext = "invalidCiphertext", 400, "A ciphertext of the report is out of range or not valid under the task's key.";
    InvalidProof = "invalidProof", 400, "The report's input proof does not verify.";
    InvalidReport = "invalidReport", 400, "The report is not valid for the task.";
    MisalignedTime = "misalignedTime", 400, "The report's time is not a multiple of the task's time precision.";
    ReportTooEarly = "reportTooEarly", 400, "The report's time is too far ahead of the server's clock.";
    ReportExpired = "reportExpired", 400, "The report's time is older than the task's report expiry age; it would never be collected.";
    ReportReplayed = "reportReplayed", 409, "A report with this id was already accepted.";
    BatchCollected = "batchCollected", 409, "The report's time falls in a batch that has been released.";
    BatchInvalid = "batchInvalid", 400, "The batch interval is not aligned to the task's time precision.";
    InvalidBatchSize = "invalidBatchSize", 400, "The batch holds too few or too many reports to be released.";
    BatchOverlap = "batchOverlap", 409, "The batch overlaps a batch released earlier.";
    BatchWithheld = "batchWithheld", 409, "Add-remove tasks: the batch's report count as released with DP noise fell outside the task's batch size limits, so no values were released; the interval is closed and its budget spent.";
    BudgetExhausted = "budgetExhausted", 409, "The release would spend more privacy budget than the task has left.";
    NoiseRefused = "noiseRefused", 409, "Trustee noise: the release does not take this contribution, because the trustee sent a different one or the release has all it takes.";
    TooManyRequests = "tooManyRequests", 429, "The server is busy: the queue the request needs is full. Retry after the seconds in the Retry-After header.";
    Internal = "internal", 500, "The server failed; the request may be retried.";
}

impl ProblemType {
    /// The full type URI, `urn:hetally:error:<name>`.
    pub fn uri(self) -> String {
        format!("{PROBLEM_URN_PREFIX}{}", self.name())
    }

    /// The problem type of a URI, if it is one of hetally's.
    pub fn from_uri(uri: &str) -> Option<Self> {
        let name = uri.strip_prefix(PROBLEM_URN_PREFIX)?;
        Self::ALL.iter().copied().find(|p| p.name() == name)
    }
}

impl fmt::Display for ProblemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_round_trip_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for p in ProblemType::ALL {
            assert!(names.insert(p.name()), "duplicate {p}");
            assert_eq!(ProblemType::from_uri(&p.uri()), Some(*p));
        }
        assert_eq!(ProblemType::from_uri("urn:hetally:error:nope"), None);
        assert_eq!(ProblemType::from_uri("about:blank"), None);
    }
}
