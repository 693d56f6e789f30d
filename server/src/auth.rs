//! Bearer tokens, for the HE API and the DAP API alike: tokens are stored
//! as SHA-256 hashes and compared in constant time.

use actix_web::http::header;
use actix_web::HttpRequest;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// SHA-256 of a bearer token.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A fresh random token: 32 bytes, base64url.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `token` hashes to `expected_hash`, compared in constant time.
pub fn token_matches(token: &str, expected_hash: &[u8; 32]) -> bool {
    hash_token(token).ct_eq(expected_hash).into()
}

/// The bearer token of a request, if it sent one.
pub fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The token a DAP request presents: `DAP-Auth-Token: T` or
/// `Authorization: Bearer T`.
pub fn dap_token(req: &HttpRequest) -> Option<&str> {
    if let Some(v) = req.headers().get("DAP-Auth-Token") {
        return v.to_str().ok().map(str::trim).filter(|t| !t.is_empty());
    }
    bearer(req)
}
