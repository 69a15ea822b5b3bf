//! HTTP layer: routes, request ids and tracing spans, CORS, body limits, and
//! WebSocket subscriptions.

pub mod graphql;
pub mod health;
pub mod ide;
pub mod order;
pub mod request;
pub mod ws;

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use axum::{
    Router,
    extract::{DefaultBodyLimit, Request},
    http::{HeaderName, HeaderValue, Method, header},
    middleware::{self, Next},
    response::Response,
    routing::get,
};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::Instrument;

use crate::app::App;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The request id of the request being handled (or `-` outside one).
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "-".into())
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn new_request_id() -> String {
    // process-unique and cheap; instances are told apart by the pid prefix
    format!(
        "{:x}-{:x}",
        std::process::id(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    )
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives each request an id (the client's `x-request-id` when sane), a
/// tracing span carrying it, and echoes it in the response.
async fn request_context(req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        .map_or_else(new_request_id, str::to_owned);
    // Fields are formatted once, when the span is created; status, cache
    // status and duration go on the closing event (recording them on the
    // span re-formatted its fields three more times per request).
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
    );
    let started = Instant::now();
    let mut res = REQUEST_ID
        .scope(id.clone(), next.run(req).instrument(span.clone()))
        .await;
    let status = res.status().as_u16();
    if status >= 500 || tracing::enabled!(tracing::Level::DEBUG) {
        let cache_status = res
            .headers()
            .get("x-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let duration_us = started.elapsed().as_micros() as u64;
        span.in_scope(|| {
            if status >= 500 {
                tracing::warn!(
                    status,
                    cache.status = cache_status,
                    duration_us,
                    "request failed"
                );
            } else {
                tracing::debug!(
                    status,
                    cache.status = cache_status,
                    duration_us,
                    "request done"
                );
            }
        });
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
    res
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.is_empty() {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers([
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::IF_NONE_MATCH,
            X_REQUEST_ID,
            HeaderName::from_static("apollographql-client-name"),
            HeaderName::from_static("apollographql-client-version"),
            HeaderName::from_static("apollo-require-preflight"),
        ])
        .expose_headers([
            X_REQUEST_ID,
            HeaderName::from_static("x-cache"),
            header::ETAG,
            header::RETRY_AFTER,
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// The full router of one instance.
pub fn router(app: App) -> Router {
    let cors = cors(&app.services.config.cors_allowed_origins);
    Router::new()
        .route("/", get(ide::graphiql))
        .route("/playground", get(ide::playground))
        .route("/graphql", get(ws::get).post(graphql::post))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(app)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(cors)
        .layer(middleware::from_fn(request_context))
}
