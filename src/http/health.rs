//! Liveness and readiness.

use axum::{extract::State, http::StatusCode};

use crate::app::App;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 when Postgres answers, 503 otherwise.
pub async fn readyz(State(app): State<App>) -> (StatusCode, &'static str) {
    if app.services.db.ping().await {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "postgres unreachable")
    }
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(app): State<App>) -> impl axum::response::IntoResponse {
    let s = &app.services;
    let body = s
        .cache
        .metrics
        .render(s.db.statements(), s.cache.circuit_state());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}
