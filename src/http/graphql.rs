//! The `/graphql` endpoint (GraphQL over HTTP): authentication, persisted
//! queries, the query-result cache, operation checks, execution, status
//! codes and caching headers.
//!
//! A cacheable request is keyed before anything is parsed; a hit returns the
//! stored bytes. Concurrent identical requests on one instance share one
//! lookup/execution (single flight); across instances the fill lock makes
//! losers wait briefly for the winner's value.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Instant,
};

use async_graphql::{
    ErrorExtensionValues, ServerError, Variables,
    parser::types::{DocumentOperations, ExecutableDocument, OperationType},
};
use axum::{
    body::Bytes,
    extract::{RawQuery, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

use super::request::{Body, GqlInput, Media, ReadError, is_json, read_get, read_post, read_single};
use crate::{
    app::App,
    cache::{
        Entry, Lookup, Snapshot,
        flight::{Role, follow},
        key::{Keyed, Scope},
        now_ms,
    },
    error::AppError,
    graphql::{
        context::{RequestState, Viewer},
        schema::{introspection_refused, selects_introspection},
    },
};

/// A finished response to one operation.
#[derive(Clone, Debug)]
pub struct Executed {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body.
    pub body: Bytes,
    /// Extra headers (Cache-Control, ETag, Retry-After…).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
    /// HIT, MISS or BYPASS.
    pub x_cache: &'static str,
}

impl Executed {
    /// A response holding only request-level errors.
    pub fn request_error(status: StatusCode, code: &str, message: &str) -> Self {
        let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
        Self {
            status,
            body: body.to_string().into(),
            headers: vec![no_store()],
            x_cache: "BYPASS",
        }
    }

    fn header(&self, name: &header::HeaderName) -> Option<&HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    fn into_response(self, media: Media, if_none_match: Option<&str>) -> Response {
        let not_modified = match (if_none_match, self.header(&header::ETAG)) {
            (Some(inm), Some(etag)) => etag.to_str().is_ok_and(|e| etag_matches(inm, e)),
            _ => false,
        };
        let mut res = if not_modified {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            let mut r = Response::new(axum::body::Body::from(self.body));
            *r.status_mut() = self.status;
            r
        };
        let h = res.headers_mut();
        // room for everything added here and by the middleware, in one allocation
        h.reserve(self.headers.len() + 4);
        if !not_modified {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(media.content_type()),
            );
        }
        for (name, value) in self.headers {
            h.insert(name, value);
        }
        h.insert(X_CACHE, HeaderValue::from_static(self.x_cache));
        res
    }
}

/// HIT, MISS or BYPASS on every `/graphql` response.
pub const X_CACHE: header::HeaderName = header::HeaderName::from_static("x-cache");

fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.trim() == "*"
        || if_none_match
            .split(',')
            .any(|t| t.trim().trim_start_matches("W/") == etag.trim_start_matches("W/"))
}

fn no_store() -> (header::HeaderName, HeaderValue) {
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
}

fn if_none_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `POST /graphql`.
pub async fn post(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let media = Media::from_headers(&headers);
    let inm = if_none_match(&headers);
    let viewer = match authenticate(&app, &headers) {
        Ok(v) => v,
        Err(e) => return e.into_response(media, None),
    };
    let json = is_json(&headers);
    if json && let Some(keyed) = app.keys.get(&body) {
        // seen before: keyed without parsing; parsed only if executed
        let pending = Pending::Raw(body);
        return execute_keyed(
            &app,
            viewer,
            keyed,
            pending,
            &Method::POST,
            media,
            Instant::now(),
        )
        .await
        .into_response(media, inm.as_deref());
    }
    match read_post(&headers, &body) {
        Err(e) => read_error(e).into_response(media, None),
        Ok(Body::Single(input)) => {
            let raw = json.then_some(body);
            execute(&app, viewer, input, &Method::POST, media, raw)
                .await
                .into_response(media, inm.as_deref())
        }
        Ok(Body::Batch(inputs)) => {
            let mut body = b"[".to_vec();
            let mut all_hits = true;
            for (i, input) in inputs.into_iter().enumerate() {
                let part = execute(&app, viewer, input, &Method::POST, media, None).await;
                all_hits &= part.x_cache == "HIT";
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&part.body);
            }
            body.push(b']');
            let x_cache = if all_hits { "HIT" } else { "MISS" };
            Executed {
                status: StatusCode::OK,
                body: body.into(),
                headers: vec![no_store()],
                x_cache,
            }
            .into_response(media, None)
        }
    }
}

/// `GET /graphql`: a query in the query string, or GraphiQL for a browser.
pub async fn get(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let media = Media::from_headers(&headers);
    let input = match read_get(raw.as_deref()) {
        Ok(i) => i,
        Err(e) => return read_error(e).into_response(media, None),
    };
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if input.query.is_none() && input.extensions.is_none() && wants_html {
        return super::ide::graphiql().await.into_response();
    }
    let viewer = match authenticate(&app, &headers) {
        Ok(v) => v,
        Err(e) => return e.into_response(media, None),
    };
    let inm = if_none_match(&headers);
    execute(&app, viewer, input, &Method::GET, media, None)
        .await
        .into_response(media, inm.as_deref())
}

fn read_error(e: ReadError) -> Executed {
    match e {
        ReadError::Malformed(m) => {
            Executed::request_error(StatusCode::BAD_REQUEST, "BAD_REQUEST", &m)
        }
        ReadError::UnsupportedMedia(m) => {
            Executed::request_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "BAD_REQUEST", &m)
        }
    }
}

/// Reads the viewer from `Authorization`; a bad token is an error, never anonymous.
fn authenticate(app: &App, headers: &HeaderMap) -> Result<Viewer, Executed> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Viewer::default());
    };
    let unauthenticated = |e: AppError| {
        let mut ex = Executed::request_error(StatusCode::UNAUTHORIZED, e.code(), &e.message());
        ex.headers
            .push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        ex
    };
    let value = value.to_str().map_err(|_| {
        unauthenticated(AppError::Unauthenticated(
            "Authorization is not text".into(),
        ))
    })?;
    app.services
        .auth
        .from_header(value)
        .map(|id| Viewer { user_id: Some(id) })
        .map_err(unauthenticated)
}

/// Finds the operation a request selects.
pub fn operation_type(doc: &ExecutableDocument, name: Option<&str>) -> Option<OperationType> {
    match (&doc.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(n)) => ops.get(n).map(|op| op.node.ty),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| op.node.ty)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// Resolves Apollo Automatic Persisted Queries: a hash alone is looked up; a
/// hash with the query is verified and remembered.
async fn persisted_query(app: &App, input: &mut GqlInput) -> Result<(), Executed> {
    let Some(pq) = input
        .extensions
        .as_ref()
        .and_then(|e| e.get("persistedQuery"))
    else {
        return Ok(());
    };
    let hash = pq
        .get("sha256Hash")
        .and_then(|h| h.as_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if pq.get("version").and_then(serde_json::Value::as_i64) != Some(1) || hash.len() != 64 {
        return Err(Executed::request_error(
            StatusCode::BAD_REQUEST,
            "PERSISTED_QUERY_NOT_SUPPORTED",
            "persistedQuery must be {\"version\": 1, \"sha256Hash\": <64 hex digits>}",
        ));
    }
    match &input.query {
        Some(query) => {
            if hex::encode(Sha256::digest(query.as_bytes())) != hash {
                return Err(Executed::request_error(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    "provided sha does not match query",
                ));
            }
            app.services.cache.apq_put(&hash, query).await;
        }
        None => match app.services.cache.apq_get(&hash).await {
            Some(query) => input.query = Some(query),
            None => {
                return Err(Executed::request_error(
                    StatusCode::OK,
                    "PERSISTED_QUERY_NOT_FOUND",
                    "PersistedQueryNotFound",
                ));
            }
        },
    }
    Ok(())
}

/// A request body that may not be parsed yet: a body whose key came from
/// the memo is parsed only if it has to be executed.
pub enum Pending {
    /// Already parsed.
    Parsed(GqlInput),
    /// A JSON body parsed once before.
    Raw(Bytes),
}

impl Pending {
    fn parse(self) -> Result<GqlInput, Executed> {
        match self {
            Pending::Parsed(input) => Ok(input),
            Pending::Raw(body) => read_single(&body).map_err(read_error),
        }
    }
}

/// Runs one operation: persisted query, cache, parsing, checks, execution.
/// `raw` is the request's exact JSON body, remembered with its cache key
/// when it is a plain cacheable query.
pub async fn execute(
    app: &App,
    viewer: Viewer,
    mut input: GqlInput,
    method: &Method,
    media: Media,
    raw: Option<Bytes>,
) -> Executed {
    let started = Instant::now();
    let plain = input.extensions.is_none();
    if let Err(e) = persisted_query(app, &mut input).await {
        return e;
    }
    let Some(query) = input.query.as_deref() else {
        return Executed::request_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "the request has no `query`",
        );
    };
    let cache = &app.services.cache;
    let document = app.keys.document(query);
    let is_query = !matches!(
        document.normalized.first_token.as_str(),
        "mutation" | "subscription"
    );
    if !(is_query && cache.query_cache_enabled()) {
        if is_query {
            cache.metrics.cache_bypasses.fetch_add(1, Ordering::Relaxed);
        }
        return run(
            app,
            viewer,
            Pending::Parsed(input),
            method,
            media,
            None,
            started,
        )
        .await;
    }
    let keyed = Arc::new(Keyed::new(
        document,
        input.operation_name.as_deref(),
        input.variables.as_ref(),
    ));
    if let Some(raw) = raw
        && plain
    {
        app.keys.put(raw, keyed.clone());
    }
    let pending = Pending::Parsed(input);
    execute_keyed(app, viewer, keyed, pending, method, media, started).await
}

/// Runs a cacheable query whose key parts are known: near copy, single
/// flight, lookup, execution.
async fn execute_keyed(
    app: &App,
    viewer: Viewer,
    keyed: Arc<Keyed>,
    input: Pending,
    method: &Method,
    media: Media,
    started: Instant,
) -> Executed {
    let cache = &app.services.cache;
    let scope = keyed.scope(viewer.user_id);
    let hash = keyed.hash(&scope);
    // a validated copy in this process needs no single flight
    if let Some(entry) = cache.near_hit(&hash).await {
        return hit(app, entry, &scope, started);
    }
    // boxed: the miss path's futures (execution included) are large, and
    // every layer above moves the request's future by value
    let compute = || {
        Box::pin(cached_run(
            app, viewer, input, method, media, &hash, scope, started,
        ))
    };
    match app.flights.join(&hash) {
        Role::Follower(rx) => match follow(rx, std::time::Duration::from_secs(5)).await {
            Some(shared) => shared,
            None => compute().await,
        },
        Role::Leader(leader) => {
            let out = compute().await;
            leader.finish(&out);
            out
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn cached_run(
    app: &App,
    viewer: Viewer,
    input: Pending,
    method: &Method,
    media: Media,
    hash: &str,
    scope: Scope,
    started: Instant,
) -> Executed {
    let cache = &app.services.cache;
    let lookup = cache.lookup(hash, true).await;
    let (snap, stale) = match lookup {
        Lookup::Hit(entry) => return hit(app, entry, &scope, started),
        Lookup::Bypass => {
            cache.metrics.cache_bypasses.fetch_add(1, Ordering::Relaxed);
            return run(app, viewer, input, method, media, None, started).await;
        }
        Lookup::Miss(snap, stale) => {
            if !snap.locked {
                // another instance is computing this result: give it a moment
                if let Some(entry) = cache.wait_for_fill(hash).await {
                    return hit(app, entry, &scope, started);
                }
            }
            (Some(snap), stale)
        }
        Lookup::Skipped(snap) => (snap, None),
    };
    cache.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
    let fill = Fill {
        hash,
        snap: snap.as_ref(),
        scope: &scope,
        stale,
    };
    run(app, viewer, input, method, media, Some(fill), started).await
}

/// What a cache miss needs to store its result (or fall back to stale).
struct Fill<'a> {
    hash: &'a str,
    /// `None`: a first sighting whose result is not worth storing (see
    /// `cache/sighting.rs`); it is answered as if stored.
    snap: Option<&'a Snapshot>,
    scope: &'a Scope,
    stale: Option<Entry>,
}

fn cache_control(scope: &Scope, max_age: u64) -> HeaderValue {
    /// Values for the first ten minutes of max-age, built once (every hit
    /// sends one): `[public…, private…]`.
    const TABLE: u64 = 600;
    static VALUES: std::sync::OnceLock<Vec<HeaderValue>> = std::sync::OnceLock::new();
    let build = |visibility: &str, age: u64| {
        HeaderValue::from_str(&format!("{visibility}, max-age={age}"))
            .unwrap_or(HeaderValue::from_static("no-cache"))
    };
    let visibility = if matches!(scope, Scope::User(_)) {
        "private"
    } else {
        "public"
    };
    if max_age >= TABLE {
        return build(visibility, max_age);
    }
    let values = VALUES.get_or_init(|| {
        ["public", "private"]
            .iter()
            .flat_map(|v| (0..TABLE).map(move |age| build(v, age)))
            .collect()
    });
    let offset = if visibility == "private" { TABLE } else { 0 };
    values[(offset + max_age) as usize].clone()
}

fn entry_headers(entry: &Entry, scope: &Scope) -> Vec<(header::HeaderName, HeaderValue)> {
    let max_age = entry.fresh_until_ms.saturating_sub(now_ms()) / 1000;
    let mut headers = vec![(header::CACHE_CONTROL, cache_control(scope, max_age))];
    if let Ok(v) = HeaderValue::from_str(&entry.etag) {
        headers.push((header::ETAG, v));
    }
    if matches!(scope, Scope::Anonymous) {
        headers.push((header::VARY, HeaderValue::from_static("Authorization")));
    }
    headers
}

fn hit(app: &App, entry: Entry, scope: &Scope, started: Instant) -> Executed {
    let metrics = &app.services.cache.metrics;
    metrics.cache_hits.fetch_add(1, Ordering::Relaxed);
    metrics.query_latency.observe(started.elapsed());
    let headers = entry_headers(&entry, scope);
    Executed {
        status: StatusCode::OK,
        body: entry.body,
        headers,
        x_cache: "HIT",
    }
}

/// Parses, checks and executes; stores the result when `fill` says so.
async fn run(
    app: &App,
    viewer: Viewer,
    input: Pending,
    method: &Method,
    media: Media,
    fill: Option<Fill<'_>>,
    started: Instant,
) -> Executed {
    // boxed: execution's future is large (see execute_keyed)
    let out = Box::pin(run_inner(app, viewer, input, method, media, fill)).await;
    let metrics = &app.services.cache.metrics;
    let hist = if out.1 == Some(OperationType::Mutation) {
        &metrics.mutation_latency
    } else {
        &metrics.query_latency
    };
    hist.observe(started.elapsed());
    out.0
}

async fn run_inner(
    app: &App,
    viewer: Viewer,
    input: Pending,
    method: &Method,
    media: Media,
    fill: Option<Fill<'_>>,
) -> (Executed, Option<OperationType>) {
    let cache = &app.services.cache;
    let release = async |fill: &Option<Fill<'_>>| {
        if let Some(Fill {
            hash,
            snap: Some(snap),
            ..
        }) = fill
        {
            cache.release(hash, snap).await;
        }
    };
    let input = match input.parse() {
        Ok(input) => input,
        Err(e) => {
            release(&fill).await;
            return (e, None);
        }
    };
    let query = input.query.unwrap_or_default();
    let variables = match input.variables {
        None | Some(serde_json::Value::Null) => Variables::default(),
        Some(v @ serde_json::Value::Object(_)) => Variables::from_json(v),
        Some(_) => {
            release(&fill).await;
            let e = Executed::request_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "`variables` must be a JSON object",
            );
            return (e, None);
        }
    };
    let doc = match app.docs.parse(&query) {
        Ok(doc) => doc,
        Err(e) => {
            release(&fill).await;
            let status = if media == Media::GraphqlResponse {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            return (
                Executed::request_error(status, "GRAPHQL_PARSE_FAILED", &e.to_string()),
                None,
            );
        }
    };
    let op = operation_type(&doc, input.operation_name.as_deref());
    match (op, method) {
        (Some(OperationType::Mutation), &Method::GET) => {
            release(&fill).await;
            let mut ex = Executed::request_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "mutations must be sent with POST",
            );
            ex.headers
                .push((header::ALLOW, HeaderValue::from_static("POST")));
            return (ex, op);
        }
        (Some(OperationType::Subscription), _) => {
            release(&fill).await;
            let ex = Executed::request_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "subscriptions are served over WebSocket (graphql-transport-ws) at /graphql",
            );
            return (ex, op);
        }
        _ => {}
    }
    let state = RequestState::new(viewer);
    let mut request = async_graphql::Request::new(query)
        .variables(variables)
        .data(state.clone());
    let operation_name = input.operation_name;
    if let Some(name) = &operation_name {
        request = request.operation_name(name.clone());
    }
    // refused here, not by the schema's extension: see `http_schema_builder`
    let mut response = if !app.services.config.introspection && selects_introspection(&doc) {
        async_graphql::Response::from_errors(vec![introspection_refused()])
    } else {
        request.set_parsed_query(ExecutableDocument::clone(&doc));
        crate::sched::tracking_deliveries(app.http_schema.execute(request)).await
    };
    super::order::reorder(&doc, operation_name.as_deref(), &mut response.data);
    let mut ex = finish(response, media);
    if op == Some(OperationType::Mutation) {
        ex.executed.x_cache = "BYPASS";
        release(&fill).await;
        return (ex.executed, op);
    }
    let Some(f) = fill else {
        ex.executed.x_cache = "BYPASS";
        return (ex.executed, op);
    };
    let ok = ex.executed.status == StatusCode::OK && !ex.has_errors;
    if ok && !(state.is_private() && *f.scope == Scope::Public) && op == Some(OperationType::Query)
    {
        let ttl = std::time::Duration::from_secs(state.ttl().unwrap_or(u64::MAX));
        let body = ex.executed.body.clone();
        let tags = state.take_tags();
        let stored = match f.snap {
            Some(snap) => cache.store(f.hash, snap, body, ttl, &tags).await,
            None => cache.unstored(body, ttl, &tags),
        };
        match stored {
            Some(entry) => ex.executed.headers = entry_headers(&entry, f.scope),
            None => ex.executed.headers = vec![no_store()],
        }
        ex.executed.x_cache = "MISS";
        return (ex.executed, op);
    }
    if state.is_private() && *f.scope == Scope::Public {
        tracing::warn!(
            "a result read viewer-specific data but its document names no viewer field; not cached"
        );
    }
    if let Some(snap) = f.snap {
        cache.release(f.hash, snap).await;
    }
    if ex.unavailable
        && let Some(stale) = f.stale
    {
        cache
            .metrics
            .cache_stale_served
            .fetch_add(1, Ordering::Relaxed);
        return (serve_stale(stale), op);
    }
    ex.executed.x_cache = "MISS";
    (ex.executed, op)
}

/// An entry past freshness, served because Postgres failed, with a warning.
fn serve_stale(entry: Entry) -> Executed {
    let warning = serde_json::json!({ "warnings": [{
        "code": "STALE_RESULT",
        "message": "the database is unavailable; this result is from the cache and may be out of date",
        "storedUntil": entry.fresh_until_ms,
    }]});
    let mut body = entry.body.to_vec();
    // the stored body is a JSON object: add `extensions` before its closing brace
    if body.last() == Some(&b'}') {
        body.pop();
        body.extend_from_slice(b",\"extensions\":");
        body.extend_from_slice(warning.to_string().as_bytes());
        body.push(b'}');
    }
    let headers = vec![
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (
            header::WARNING,
            HeaderValue::from_static("110 - \"Response is Stale\""),
        ),
    ];
    Executed {
        status: StatusCode::OK,
        body: body.into(),
        headers,
        x_cache: "HIT",
    }
}

/// An executed response plus what the cache needs to know about it.
struct Finished {
    executed: Executed,
    has_errors: bool,
    unavailable: bool,
}

fn finish(mut response: async_graphql::Response, media: Media) -> Finished {
    let mut status = StatusCode::OK;
    let mut headers = vec![no_store()];
    let request_failed = response.data == async_graphql::Value::Null && !response.errors.is_empty();
    let mut unavailable = false;
    for err in &mut response.errors {
        let code = ensure_code(err);
        match code.as_str() {
            "SERVICE_UNAVAILABLE" => {
                unavailable = true;
                status = StatusCode::SERVICE_UNAVAILABLE;
            }
            "RATE_LIMITED" if status != StatusCode::SERVICE_UNAVAILABLE => {
                status = StatusCode::TOO_MANY_REQUESTS;
                let retry = err
                    .extensions
                    .as_ref()
                    .and_then(|e| e.get("retryAfter"))
                    .map_or_else(|| "60".into(), ToString::to_string);
                if let Ok(v) = HeaderValue::from_str(&retry) {
                    headers.push((header::RETRY_AFTER, v));
                }
            }
            _ => {}
        }
    }
    if status == StatusCode::OK && request_failed && media == Media::GraphqlResponse {
        status = StatusCode::BAD_REQUEST;
    }
    let has_errors = !response.errors.is_empty();
    let body = serde_json::to_vec(&response)
        .unwrap_or_else(|_| b"{\"errors\":[{\"message\":\"serialization failed\"}]}".to_vec());
    Finished {
        executed: Executed {
            status,
            body: body.into(),
            headers,
            x_cache: "MISS",
        },
        has_errors,
        unavailable,
    }
}

/// Gives every error an `extensions.code`: errors raised before execution
/// (no path) are validation failures, coercion errors in fields are bad input.
fn ensure_code(err: &mut ServerError) -> String {
    if let Some(code) = err.extensions.as_ref().and_then(|e| e.get("code")) {
        return match code {
            async_graphql::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
    }
    let code = if err.path.is_empty() {
        "GRAPHQL_VALIDATION_FAILED"
    } else {
        "BAD_USER_INPUT"
    };
    err.extensions
        .get_or_insert_with(ErrorExtensionValues::default)
        .set("code", code);
    code.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_values_match_scope_and_age() {
        let cc = |s: &Scope, age| cache_control(s, age).to_str().expect("ascii").to_owned();
        assert_eq!(cc(&Scope::Public, 0), "public, max-age=0");
        assert_eq!(cc(&Scope::Anonymous, 59), "public, max-age=59");
        assert_eq!(cc(&Scope::User(3), 599), "private, max-age=599");
        assert_eq!(cc(&Scope::User(3), 86_400), "private, max-age=86400");
    }
}
