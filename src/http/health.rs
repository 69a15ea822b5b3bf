//! Liveness and readiness.

use std::fmt::Write;

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
    let mut body = s.cache.metrics.render(
        s.db.statements(),
        s.cache.circuit_state(),
        s.cache.lease_held(),
    );
    s.feed.render_metrics(&mut body);
    let _ = writeln!(
        body,
        "# HELP nexora_websocket_connections Open WebSocket connections\n# TYPE nexora_websocket_connections gauge\nnexora_websocket_connections {}",
        s.sockets.open()
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
}
