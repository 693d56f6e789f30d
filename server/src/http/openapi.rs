//! `GET /openapi.json`: the OpenAPI 3.1 document of the HE API
//! (`server/openapi.json`), built into the binary so that a server always
//! serves the document of its own routes. No token: it describes the
//! routes, it reveals nothing about tasks. Caches may keep it (an `ETag`
//! and `Cache-Control`); a matching `If-None-Match` is answered 304.
//!
//! The contract test (`tests/tests/it/openapi.rs`) drives every route of
//! the document against a real server and checks each answer against it.

use std::sync::OnceLock;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use sha2::{Digest, Sha256};

/// The document, as served.
pub const OPENAPI_DOCUMENT: &str = include_str!("../../openapi.json");

/// How long caches may keep the document without asking again: it only
/// changes with the server's version.
const MAX_AGE_SECS: u32 = 3600;

/// A strong entity tag of the document: the first 16 bytes of its SHA-256,
/// hex, quoted.
fn etag() -> &'static str {
    static ETAG: OnceLock<String> = OnceLock::new();
    ETAG.get_or_init(|| {
        let digest = Sha256::digest(OPENAPI_DOCUMENT.as_bytes());
        format!("\"{}\"", hex::encode(&digest[..16]))
    })
}

/// Whether an `If-None-Match` header value names the document's tag (or
/// is `*`). Weak tags match too (RFC 9110 section 13.1.2 compares weakly).
fn none_match(value: &str, tag: &str) -> bool {
    value.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == tag
    })
}

pub(crate) async fn document(req: HttpRequest) -> HttpResponse {
    let tag = etag();
    let cache = (
        header::CACHE_CONTROL,
        format!("public, max-age={MAX_AGE_SECS}"),
    );
    let matched = req
        .headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .any(|v| none_match(v, tag));
    if matched {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .insert_header(cache)
            .finish();
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::ETAG, tag))
        .insert_header(cache)
        .body(OPENAPI_DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_json() {
        let doc: serde_json::Value =
            serde_json::from_str(OPENAPI_DOCUMENT).expect("server/openapi.json is JSON");
        let version = doc["openapi"].as_str().expect("an openapi member");
        assert!(version.starts_with("3.1."), "OpenAPI {version}, not 3.1");
        assert!(doc["paths"]["/openapi.json"]["get"].is_object());
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists() {
        let tag = "\"abc\"";
        assert!(none_match("\"abc\"", tag));
        assert!(none_match("W/\"abc\"", tag));
        assert!(none_match("\"x\", \"abc\"", tag));
        assert!(none_match("*", tag));
        assert!(!none_match("\"abd\"", tag));
        assert!(!none_match("abc", tag));
    }
}
