//! The HTTP surface: thin actix-web handlers that parse, authenticate and
//! call the [`Aggregator`]. Routes and messages are listed in
//! [`hetally_crypto::api`]; errors become problem documents in [`problem`].

mod auth;
pub(crate) mod body;
pub mod problem;
mod releases;
mod reports;
mod tasks;

pub(crate) use auth::bearer as bearer_token;

use actix_web::{web, HttpResponse};

use crate::aggregator::Aggregator;

/// Shared state of every handler.
pub type AppState = web::Data<Aggregator>;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/tasks", web::post().to(tasks::create))
        .route("/tasks", web::get().to(tasks::list))
        .route("/tasks/{task_id}", web::get().to(tasks::get))
        .route("/tasks/{task_id}/status", web::get().to(tasks::status))
        .route("/tasks/{task_id}/crs", web::get().to(tasks::crs))
        .route("/tasks/{task_id}/reports", web::put().to(reports::upload))
        .route(
            "/tasks/{task_id}/releases",
            web::post().to(releases::create),
        )
        .route("/tasks/{task_id}/releases", web::get().to(releases::list));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}
