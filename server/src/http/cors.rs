//! Cross-origin resource sharing (CORS, [Fetch Standard, section 3.2]) for
//! the routes a web page calls: `GET /tasks/{id}`, `GET /tasks/{id}/crs`,
//! `PUT /tasks/{id}/reports` and `GET /openapi.json`.
//!
//! A browser lets a page on one origin read the answer of a server on
//! another only if the server says so; for an upload with `Content-Type:
//! application/vnd.hetally.report` it first asks, with an `OPTIONS`
//! preflight. Which origins may is a deployment's choice
//! (`--cors-origin`), and [`CorsPolicy::Off`], the default, allows none:
//! the server then sends no CORS header at all, so only pages served from
//! its own origin can call it.
//!
//! The policy covers requests that carry no credentials: no cookies, no
//! `Authorization` header (it is not an allowed request header), and
//! `Access-Control-Allow-Credentials` is never sent. That is why `*` may
//! be allowed: an upload is anonymous by design. The admin and collector
//! routes (task creation, status, releases, metrics) are never wrapped,
//! whatever the policy: their tokens must not be usable from a page, and a
//! browser then refuses to let any other origin call them.
//!
//! [Fetch Standard, section 3.2]: https://fetch.spec.whatwg.org/#http-cors-protocol

use std::fmt;
use std::str::FromStr;

use actix_cors::Cors;
use thiserror::Error;

/// Seconds a browser may cache a preflight answer
/// (`Access-Control-Max-Age`). Chromium caps it at two hours; Firefox at
/// one day.
pub const PREFLIGHT_MAX_AGE_SECS: usize = 7200;

/// Request headers a page may set beyond the CORS-safelisted ones:
/// `Content-Type` (the report media type is not safelisted) and
/// `If-None-Match` (conditional requests for `/openapi.json`).
pub const ALLOWED_REQUEST_HEADERS: [&str; 2] = ["content-type", "if-none-match"];

/// Response headers a page may read beyond the CORS-safelisted ones:
/// `Retry-After` (a 429 from a full upload queue says when to retry) and
/// `ETag` (of `/openapi.json`).
pub const EXPOSED_RESPONSE_HEADERS: [&str; 2] = ["retry-after", "etag"];

/// Methods of the routes a page calls.
pub const ALLOWED_METHODS: [&str; 2] = ["GET", "PUT"];

/// One `--cors-origin` value: a web origin, or `*` for every origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigin {
    /// Every origin (`*`).
    Any,
    /// One origin in its serialized form, `scheme://host[:port]`, as a
    /// browser sends it in the `Origin` header.
    Origin(String),
}

/// Why a `--cors-origin` value was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorsOriginError {
    /// Not a URL at all.
    #[error("{value:?} is not an origin ({reason}): give scheme://host[:port], e.g. https://app.example.com, or *")]
    NotAUrl {
        /// The value given.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// Neither http nor https.
    #[error("{value:?}: an allowed origin's scheme must be http or https")]
    Scheme {
        /// The value given.
        value: String,
    },
    /// A URL, but not an origin's exact serialized form: it has a path, a
    /// query, user info, a default port or upper-case letters. The
    /// browser's `Origin` header would never match it.
    #[error("{value:?} is not an origin as browsers send it: write {expected}")]
    NotSerialized {
        /// The value given.
        value: String,
        /// The origin it names, as a browser writes it.
        expected: String,
    },
    /// `*` together with named origins.
    #[error("--cors-origin '*' allows every origin: give it alone, without {other:?}")]
    AnyWithOthers {
        /// A named origin given with it.
        other: String,
    },
}

impl FromStr for CorsOrigin {
    type Err = CorsOriginError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let value = value.trim();
        if value == "*" {
            return Ok(CorsOrigin::Any);
        }
        let url = url::Url::parse(value).map_err(|e| CorsOriginError::NotAUrl {
            value: value.to_string(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(CorsOriginError::Scheme {
                value: value.to_string(),
            });
        }
        let expected = url.origin().ascii_serialization();
        if expected != value {
            return Err(CorsOriginError::NotSerialized {
                value: value.to_string(),
                expected,
            });
        }
        Ok(CorsOrigin::Origin(expected))
    }
}

impl fmt::Display for CorsOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorsOrigin::Any => f.write_str("*"),
            CorsOrigin::Origin(origin) => f.write_str(origin),
        }
    }
}

/// Which origins may call the routes a page calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CorsPolicy {
    /// None but the server's own (no CORS header is ever sent): the
    /// default.
    #[default]
    Off,
    /// Every origin; answers carry `Access-Control-Allow-Origin: *`.
    AnyOrigin,
    /// These origins (not empty); an answer to one of them echoes it in
    /// `Access-Control-Allow-Origin`, with `Vary: Origin`.
    Origins(Vec<String>),
}

impl CorsPolicy {
    /// The policy of a list of `--cors-origin` values: [`CorsPolicy::Off`]
    /// for none, and `*` only alone.
    pub fn from_origins(origins: &[CorsOrigin]) -> Result<Self, CorsOriginError> {
        if origins.contains(&CorsOrigin::Any) {
            if let Some(other) = origins.iter().find(|o| **o != CorsOrigin::Any) {
                return Err(CorsOriginError::AnyWithOthers {
                    other: other.to_string(),
                });
            }
            return Ok(CorsPolicy::AnyOrigin);
        }
        let mut named: Vec<String> = origins.iter().map(ToString::to_string).collect();
        named.sort();
        named.dedup();
        Ok(if named.is_empty() {
            CorsPolicy::Off
        } else {
            CorsPolicy::Origins(named)
        })
    }

    /// The middleware that answers preflights and adds the CORS headers,
    /// or `None` when the policy is off. Built per worker: [`Cors`] is not
    /// `Send`.
    pub fn middleware(&self) -> Option<Cors> {
        let cors = Cors::default()
            .allowed_methods(ALLOWED_METHODS)
            .allowed_headers(ALLOWED_REQUEST_HEADERS)
            .expose_headers(EXPOSED_RESPONSE_HEADERS)
            .max_age(PREFLIGHT_MAX_AGE_SECS);
        match self {
            CorsPolicy::Off => None,
            CorsPolicy::AnyOrigin => Some(cors.allow_any_origin().send_wildcard()),
            CorsPolicy::Origins(origins) => Some(
                origins
                    .iter()
                    .fold(cors, |cors, origin| cors.allowed_origin(origin)),
            ),
        }
    }

    /// For logs: `off`, `*` or the origins, comma separated.
    pub fn describe(&self) -> String {
        match self {
            CorsPolicy::Off => "off".to_string(),
            CorsPolicy::AnyOrigin => "*".to_string(),
            CorsPolicy::Origins(origins) => origins.join(","),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_only_in_their_serialized_form() {
        assert_eq!("*".parse(), Ok(CorsOrigin::Any));
        for ok in [
            "https://app.example.com",
            "http://127.0.0.1:8081",
            "http://[::1]:3000",
        ] {
            assert_eq!(ok.parse(), Ok(CorsOrigin::Origin(ok.to_string())), "{ok}");
        }
        for (bad, expected) in [
            ("https://app.example.com/", "https://app.example.com"),
            ("https://app.example.com:443", "https://app.example.com"),
            ("https://App.Example.com", "https://app.example.com"),
            ("http://127.0.0.1:8081/page", "http://127.0.0.1:8081"),
        ] {
            match bad.parse::<CorsOrigin>() {
                Err(CorsOriginError::NotSerialized { expected: e, .. }) => {
                    assert_eq!(e, expected, "{bad}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(
            "app.example.com".parse::<CorsOrigin>(),
            Err(CorsOriginError::NotAUrl { .. })
        ));
        assert!(matches!(
            "null".parse::<CorsOrigin>(),
            Err(CorsOriginError::NotAUrl { .. })
        ));
        assert!(matches!(
            "file:///tmp/page.html".parse::<CorsOrigin>(),
            Err(CorsOriginError::Scheme { .. })
        ));
    }

    #[test]
    fn a_policy_is_off_any_or_a_deduplicated_list() {
        assert_eq!(CorsPolicy::from_origins(&[]), Ok(CorsPolicy::Off));
        assert!(CorsPolicy::Off.middleware().is_none());
        assert_eq!(
            CorsPolicy::from_origins(&[CorsOrigin::Any, CorsOrigin::Any]),
            Ok(CorsPolicy::AnyOrigin)
        );
        let a = CorsOrigin::Origin("https://a.example".into());
        let b = CorsOrigin::Origin("https://b.example".into());
        assert_eq!(
            CorsPolicy::from_origins(&[b.clone(), a.clone(), b.clone()]),
            Ok(CorsPolicy::Origins(vec![
                "https://a.example".into(),
                "https://b.example".into()
            ]))
        );
        assert!(matches!(
            CorsPolicy::from_origins(&[a, CorsOrigin::Any]),
            Err(CorsOriginError::AnyWithOthers { .. })
        ));
    }
}
