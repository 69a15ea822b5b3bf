//! The `/graphql` endpoint (GraphQL over HTTP): authentication, operation
//! checks, execution, status codes and headers.

use std::sync::Arc;

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

use super::request::{Body, GqlInput, Media, ReadError, read_get, read_post};
use crate::{
    app::App,
    error::AppError,
    graphql::context::{RequestState, Viewer},
};

/// A finished response to one operation.
pub struct Executed {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body.
    pub body: Vec<u8>,
    /// Extra headers (Cache-Control, Retry-After…).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Executed {
    /// A response holding only request-level errors.
    pub fn request_error(status: StatusCode, code: &str, message: &str) -> Self {
        let body = serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
        Self {
            status,
            body: body.to_string().into_bytes(),
            headers: vec![no_store()],
        }
    }

    fn into_response(self, media: Media) -> Response {
        let mut res = (self.status, self.body).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(media.content_type()),
        );
        for (name, value) in self.headers {
            h.insert(name, value);
        }
        res
    }
}

fn no_store() -> (header::HeaderName, HeaderValue) {
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
}

/// `POST /graphql`.
pub async fn post(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let media = Media::from_headers(&headers);
    let viewer = match authenticate(&app, &headers) {
        Ok(v) => v,
        Err(e) => return e.into_response(media),
    };
    match read_post(&headers, &body) {
        Err(e) => read_error(e).into_response(media),
        Ok(Body::Single(input)) => execute(&app, viewer, input, &Method::POST, media)
            .await
            .into_response(media),
        Ok(Body::Batch(inputs)) => {
            let mut parts = Vec::with_capacity(inputs.len());
            for input in inputs {
                parts.push(execute(&app, viewer, input, &Method::POST, media).await);
            }
            let mut body = b"[".to_vec();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&part.body);
            }
            body.push(b']');
            Executed {
                status: StatusCode::OK,
                body,
                headers: vec![no_store()],
            }
            .into_response(media)
        }
    }
}

/// `GET /graphql`: a query in the query string, or GraphiQL for a browser.
pub async fn get(State(app): State<App>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    let media = Media::from_headers(&headers);
    let input = match read_get(raw.as_deref()) {
        Ok(i) => i,
        Err(e) => return read_error(e).into_response(media),
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
        Err(e) => return e.into_response(media),
    };
    execute(&app, viewer, input, &Method::GET, media)
        .await
        .into_response(media)
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
        (DocumentOperations::Single(op), None) => Some(op.node.ty),
        (DocumentOperations::Single(op), Some(_)) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(n)) => ops.get(n).map(|op| op.node.ty),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| op.node.ty)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// Runs one operation through parsing, checks and execution.
pub async fn execute(
    app: &App,
    viewer: Viewer,
    input: GqlInput,
    method: &Method,
    media: Media,
) -> Executed {
    let Some(query) = input.query else {
        return Executed::request_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "the request has no `query`",
        );
    };
    let variables = match input.variables {
        None | Some(serde_json::Value::Null) => Variables::default(),
        Some(v @ serde_json::Value::Object(_)) => Variables::from_json(v),
        Some(_) => {
            return Executed::request_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "`variables` must be a JSON object",
            );
        }
    };
    let doc = match async_graphql::parser::parse_query(&query) {
        Ok(doc) => doc,
        Err(e) => {
            let status = if media == Media::GraphqlResponse {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            };
            return Executed::request_error(status, "GRAPHQL_PARSE_FAILED", &e.to_string());
        }
    };
    let op = operation_type(&doc, input.operation_name.as_deref());
    match (op, method) {
        (Some(OperationType::Mutation), &Method::GET) => {
            let mut ex = Executed::request_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "METHOD_NOT_ALLOWED",
                "mutations must be sent with POST",
            );
            ex.headers
                .push((header::ALLOW, HeaderValue::from_static("POST")));
            return ex;
        }
        (Some(OperationType::Subscription), _) => {
            return Executed::request_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "subscriptions are served over WebSocket (graphql-transport-ws) at /graphql",
            );
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
    request.set_parsed_query(doc.clone());
    let mut response = app.schema.execute(request).await;
    super::order::reorder(&doc, operation_name.as_deref(), &mut response.data);
    finish(response, op, media, &state)
}

fn finish(
    mut response: async_graphql::Response,
    op: Option<OperationType>,
    media: Media,
    _state: &Arc<RequestState>,
) -> Executed {
    let mut status = StatusCode::OK;
    let mut headers = vec![no_store()];
    let request_failed = response.data == async_graphql::Value::Null && !response.errors.is_empty();
    for err in &mut response.errors {
        let code = ensure_code(err);
        match code.as_str() {
            "SERVICE_UNAVAILABLE" => status = StatusCode::SERVICE_UNAVAILABLE,
            "RATE_LIMITED" if status != StatusCode::SERVICE_UNAVAILABLE => {
                status = StatusCode::TOO_MANY_REQUESTS;
                let retry = err
                    .extensions
                    .as_ref()
                    .and_then(|e| e.get("retryAfter"))
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "60".into());
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
    let _ = op;
    let body = serde_json::to_vec(&response)
        .unwrap_or_else(|_| b"{\"errors\":[{\"message\":\"serialization failed\"}]}".to_vec());
    Executed {
        status,
        body,
        headers,
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
