//! HTTP layer: routes, request ids and tracing spans, CORS, body limits, and
//! WebSocket subscriptions.

pub mod docs;
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
    // (read once: `getpid` is a system call each time)
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    format!(
        "{:x}-{:x}",
        PID.get_or_init(std::process::id),
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
    // The span's fields are formatted when it is created, for every request;
    // it carries only the id. Method, path, status, cache status and duration
    // go on the closing event (recording them on the span re-formatted its
    // fields three more times per request).
    let span = tracing::info_span!("request", request_id = %id);
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let started = Instant::now();
    let mut res = REQUEST_ID
        .scope(id.clone(), next.run(req).instrument(span.clone()))
        .await;
    let status = res.status().as_u16();
    if status >= 500 || tracing::enabled!(tracing::Level::DEBUG) {
        let cache_status = res
            .headers()
            .get(graphql::X_CACHE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        let duration_us = started.elapsed().as_micros() as u64;
        // a level is part of an event's static metadata: one macro per level,
        // one list of fields
        macro_rules! closing {
            ($level:ident, $message:literal) => {
                tracing::$level!(
                    %method,
                    path = uri.path(),
                    status,
                    cache.status = cache_status,
                    duration_us,
                    $message
                )
            };
        }
        span.in_scope(|| {
            if status >= 500 {
                closing!(warn, "request failed");
            } else {
                closing!(debug, "request done");
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
        .expose_headers(EXPOSED)
        .max_age(std::time::Duration::from_secs(600))
}

/// Applies CORS only to requests with an `Origin` header (every browser
/// request CORS concerns, preflights included). Others — servers,
/// benchmarks, curl — skip tower-http's per-request work (it clones its whole
/// configuration for each request, a visible share of a cache hit's CPU) and
/// get only what a shared cache needs to serve their response to a browser
/// later: the constant `Access-Control-Allow-Origin: *` (+ exposed headers)
/// when any origin is allowed, else `Vary: Origin`.
#[derive(Clone)]
struct CorsWhenOrigin {
    cors: std::sync::Arc<CorsLayer>,
    any_origin: bool,
}

impl<S: Clone> tower::Layer<S> for CorsWhenOrigin {
    type Service = CorsWhenOriginService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CorsWhenOriginService {
            cors: self.cors.clone(),
            plain: inner,
            any_origin: self.any_origin,
        }
    }
}

/// See [`CorsWhenOrigin`]. Holds the CORS configuration behind an `Arc`:
/// axum clones route services for every request, and a `Cors` service
/// clones its whole configuration with it.
#[derive(Clone)]
struct CorsWhenOriginService<S> {
    cors: std::sync::Arc<CorsLayer>,
    plain: S,
    any_origin: bool,
}

type Finish<R, E> = fn(Result<axum::http::Response<R>, E>) -> Result<axum::http::Response<R>, E>;

/// Response headers browsers may read (both CORS paths send this list).
const EXPOSED: [HeaderName; 4] = [
    X_REQUEST_ID,
    graphql::X_CACHE,
    header::ETAG,
    header::RETRY_AFTER,
];

/// [`EXPOSED`] as one header value, built once.
fn exposed_value() -> HeaderValue {
    static VALUE: std::sync::OnceLock<HeaderValue> = std::sync::OnceLock::new();
    VALUE
        .get_or_init(|| {
            let names = EXPOSED.map(|n| n.as_str().to_owned()).join(",");
            HeaderValue::from_str(&names).expect("header names are valid values")
        })
        .clone()
}

fn any_origin_headers<R, E>(
    res: Result<axum::http::Response<R>, E>,
) -> Result<axum::http::Response<R>, E> {
    res.map(|mut r| {
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, exposed_value());
        r
    })
}

fn vary_origin<R, E>(
    res: Result<axum::http::Response<R>, E>,
) -> Result<axum::http::Response<R>, E> {
    res.map(|mut r| {
        r.headers_mut()
            .append(header::VARY, HeaderValue::from_static("origin"));
        r
    })
}

impl<S, B, R> tower::Service<axum::http::Request<B>> for CorsWhenOriginService<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<R>> + Clone,
    R: Default,
{
    type Response = axum::http::Response<R>;
    type Error = S::Error;
    type Future = futures::future::Either<
        tower_http::cors::ResponseFuture<S::Future>,
        futures::future::Map<S::Future, Finish<R, S::Error>>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.plain.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        use futures::FutureExt;
        if req.headers().contains_key(header::ORIGIN) {
            // `plain` is ready (checked above); the CORS wrapper around it
            // adds nothing to readiness
            let fresh = self.plain.clone();
            let ready = std::mem::replace(&mut self.plain, fresh);
            let mut cors = tower::Layer::layer(&*self.cors, ready);
            return futures::future::Either::Left(cors.call(req));
        }
        let finish: Finish<R, S::Error> = if self.any_origin {
            any_origin_headers
        } else {
            vary_origin
        };
        futures::future::Either::Right(self.plain.call(req).map(finish))
    }
}

/// The full router of one instance.
pub fn router(app: App) -> Router {
    let cors = cors(&app.services.config.cors_allowed_origins);
    let any_origin = app.services.config.cors_allowed_origins.is_empty();
    let routes = Router::new()
        .route("/", get(ide::graphiql))
        .route("/playground", get(ide::playground))
        .route("/graphql", get(ws::get).post(graphql::post))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .with_state(app);
    // The layers wrap the routes as a whole, not each route (`Router::layer`
    // does the latter, and axum clones a route's whole layered stack for
    // every request it serves).
    let layered = tower::ServiceBuilder::new()
        .layer(middleware::from_fn(request_context))
        .layer(CorsWhenOrigin {
            cors: std::sync::Arc::new(cors),
            any_origin,
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .service(routes);
    Router::new().fallback_service(layered)
}
