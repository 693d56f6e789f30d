//! The one way request bodies are read, for the HE routes and the DAP
//! routes alike: a limit worked out per route (from the task's largest
//! report, or the VDAF's), checked against `Content-Length` before anything
//! is buffered, enforced again while reading, and a deadline for the whole
//! body, so that a caller cannot make the server buffer more than the route
//! needs or hold a connection with a body that never finishes.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest};
use futures::StreamExt;
use thiserror::Error;

/// Default deadline for reading one request body.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a body was not read.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The body (or its announced length) is over the route's limit.
    #[error("request body of {len} bytes is over the limit of {max} bytes for this request")]
    TooLarge {
        /// Bytes announced or received so far.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The body did not arrive in time.
    #[error("the request body did not arrive within {} s", .0.as_secs())]
    Timeout(Duration),
    /// The connection failed while reading.
    #[error("reading the request body failed: {0}")]
    Read(String),
}

/// The request's media type without parameters, lower-cased.
pub fn media_type(req: &HttpRequest) -> String {
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

/// The deadline for reading bodies, kept in the app data (the server's
/// configuration); [`DEFAULT_BODY_TIMEOUT`] when absent.
#[derive(Debug, Clone, Copy)]
pub struct BodyTimeout(pub Duration);

/// Reads the whole body of at most `max` bytes: refused at once if
/// `Content-Length` announces more, as soon as more arrives otherwise, and
/// if it has not all arrived within the deadline.
pub async fn read(
    req: &HttpRequest,
    mut payload: web::Payload,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(len) = announced {
        if len > max as u64 {
            return Err(BodyError::TooLarge {
                len,
                max: max as u64,
            });
        }
    }
    let timeout = req
        .app_data::<BodyTimeout>()
        .map(|t| t.0)
        .unwrap_or(DEFAULT_BODY_TIMEOUT);
    let reading = async {
        // Never preallocate from what the caller announced beyond the
        // limit; within it, one allocation.
        let mut body = Vec::with_capacity(announced.map_or(0, |n| n as usize).min(max));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
            if body.len() + chunk.len() > max {
                return Err(BodyError::TooLarge {
                    len: (body.len() + chunk.len()) as u64,
                    max: max as u64,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(timeout, reading)
        .await
        .map_err(|_| BodyError::Timeout(timeout))?
}
