//! Reading GraphQL-over-HTTP requests (POST JSON, POST application/graphql,
//! GET query strings) into [`GqlInput`]s, and the response media type.

use axum::http::{HeaderMap, header};
use serde::Deserialize;

/// One GraphQL operation request as sent by a client.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GqlInput {
    /// The document; may be absent with an APQ hash.
    #[serde(default)]
    pub query: Option<String>,
    /// Which operation of the document to run.
    #[serde(default)]
    pub operation_name: Option<String>,
    /// Variables, a JSON object (or null).
    #[serde(default)]
    pub variables: Option<serde_json::Value>,
    /// Protocol extensions (e.g. `persistedQuery`).
    #[serde(default)]
    pub extensions: Option<serde_json::Value>,
}

/// A POST body: one request or a batch.
pub enum Body {
    /// A single operation.
    Single(GqlInput),
    /// An array of operations (Apollo batching).
    Batch(Vec<GqlInput>),
}

/// Why a request could not be read; each maps to an HTTP status.
#[derive(Debug)]
pub enum ReadError {
    /// 400: not valid JSON / missing fields.
    Malformed(String),
    /// 415: unknown Content-Type.
    UnsupportedMedia(String),
}

/// The request's media type, lower-case, without parameters (a missing
/// Content-Type counts as JSON).
fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn is_json_type(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/json" | "application/graphql-response+json" | ""
    )
}

/// Whether [`read_post`] reads this body as JSON.
pub fn is_json(headers: &HeaderMap) -> bool {
    is_json_type(&media_type(headers))
}

/// One JSON request object, as [`read_post`] reads it.
pub fn read_single(body: &[u8]) -> Result<GqlInput, ReadError> {
    serde_json::from_slice::<GqlInput>(body)
        .map_err(|e| ReadError::Malformed(format!("bad request body: {e}")))
}

/// Parses a POST body according to its Content-Type.
pub fn read_post(headers: &HeaderMap, body: &[u8]) -> Result<Body, ReadError> {
    let ctype = media_type(headers);
    match ctype.as_str() {
        t if is_json_type(t) => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            if first == Some(&b'[') {
                let items: Vec<serde_json::Value> = serde_json::from_slice(body).map_err(|e| {
                    ReadError::Malformed(format!("the body is not valid JSON: {e}"))
                })?;
                if items.is_empty() || items.len() > 20 {
                    return Err(ReadError::Malformed(
                        "a batch holds 1 to 20 operations".into(),
                    ));
                }
                return items
                    .into_iter()
                    .map(parse_input)
                    .collect::<Result<Vec<_>, _>>()
                    .map(Body::Batch);
            }
            if first != Some(&b'{') {
                return Err(ReadError::Malformed(
                    "the body must be a JSON object with a `query` (or an array of them)".into(),
                ));
            }
            // one pass straight into the request type
            read_single(body).map(Body::Single)
        }
        "application/graphql" => {
            let query = String::from_utf8(body.to_vec())
                .map_err(|_| ReadError::Malformed("the body is not UTF-8".into()))?;
            Ok(Body::Single(GqlInput {
                query: Some(query),
                ..GqlInput::default()
            }))
        }
        other => Err(ReadError::UnsupportedMedia(format!(
            "Content-Type {other} is not supported; send application/json"
        ))),
    }
}

fn parse_input(value: serde_json::Value) -> Result<GqlInput, ReadError> {
    if !value.is_object() {
        return Err(ReadError::Malformed(
            "the body must be a JSON object with a `query`".into(),
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| ReadError::Malformed(format!("bad request body: {e}")))
}

/// Parses the query string of a GET request.
pub fn read_get(raw_query: Option<&str>) -> Result<GqlInput, ReadError> {
    let pairs: Vec<(String, String)> = serde_urlencoded_pairs(raw_query.unwrap_or(""));
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let json = |k: &str| -> Result<Option<serde_json::Value>, ReadError> {
        get(k)
            .filter(|v| !v.is_empty())
            .map(|v| {
                serde_json::from_str(&v)
                    .map_err(|e| ReadError::Malformed(format!("`{k}` is not valid JSON: {e}")))
            })
            .transpose()
    };
    Ok(GqlInput {
        query: get("query").filter(|q| !q.is_empty()),
        operation_name: get("operationName").filter(|q| !q.is_empty()),
        variables: json("variables")?,
        extensions: json("extensions")?,
    })
}

fn serde_urlencoded_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The response media type the client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Media {
    /// `application/graphql-response+json`: HTTP status reflects request errors.
    GraphqlResponse,
    /// `application/json` (legacy): 200 for every well-formed request.
    Json,
}

impl Media {
    /// Chooses from the Accept header (absent or `*/*` → legacy JSON).
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if accept.contains("application/graphql-response+json") {
            Self::GraphqlResponse
        } else {
            Self::Json
        }
    }

    /// The Content-Type value.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
            Self::Json => "application/json; charset=utf-8",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_query_string_is_decoded() {
        let input = read_get(Some("query=%7B%20feed%20%7B%20totalCount%20%7D%20%7D&variables=%7B%22a%22%3A1%7D&operationName=")).expect("ok");
        assert_eq!(input.query.as_deref(), Some("{ feed { totalCount } }"));
        assert_eq!(input.variables, Some(serde_json::json!({"a": 1})));
        assert_eq!(input.operation_name, None);
        assert!(read_get(Some("query=x&variables=%7Bnope")).is_err());
        assert_eq!(percent_decode("a+b%2"), "a b%2");
    }
}
