//! Reading request bodies with a limit, and checking media types.

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::aggregator::Error;

/// Largest JSON body of the control-plane endpoints; public keys in task
/// definitions are the biggest part.
pub(crate) const MAX_JSON_BODY: usize = 64 << 20;

/// The request's media type without parameters, lower-cased.
pub(crate) fn media_type(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Fails unless the request's media type is `expected`.
pub(crate) fn expect_media_type(req: &HttpRequest, expected: &'static str) -> Result<(), Error> {
    let found = media_type(req);
    if found != expected {
        return Err(Error::UnsupportedMediaType { found, expected });
    }
    Ok(())
}

/// Reads the whole body, failing as soon as it passes `max` bytes (or at
/// once if Content-Length announces more).
pub(crate) async fn read_limited(
    req: &HttpRequest,
    mut payload: web::Payload,
    max: usize,
) -> Result<Vec<u8>, Error> {
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > max as u64 {
            return Err(Error::PayloadTooLarge {
                len,
                max: max as u64,
            });
        }
    }
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| Error::BadRequest(format!("reading the request body failed: {e}")))?;
        if body.len() + chunk.len() > max {
            return Err(Error::PayloadTooLarge {
                len: (body.len() + chunk.len()) as u64,
                max: max as u64,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads and parses a JSON body.
pub(crate) async fn read_json<T: DeserializeOwned>(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<T, Error> {
    expect_media_type(req, "application/json")?;
    let body = read_limited(req, payload, MAX_JSON_BODY).await?;
    serde_json::from_slice(&body).map_err(|e| Error::BadRequest(format!("invalid JSON body: {e}")))
}
