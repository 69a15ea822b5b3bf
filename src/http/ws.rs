//! GraphQL subscriptions over WebSocket at `/graphql` (a GET with
//! `Upgrade: websocket`), speaking graphql-transport-ws (graphql-ws, Apollo
//! Client, urql, GraphiQL) and, for GraphQL Playground, the legacy
//! subscriptions-transport-ws.
//!
//! - Auth: `Authorization: Bearer …` in the `connection_init` payload (or, for
//!   non-browser clients, on the upgrade request), with the HTTP rules: absent
//!   is anonymous, anything invalid closes the socket with 4403. A signed-in
//!   connection is closed with 4403 too once its token expires (when HTTP
//!   would start refusing it): the client signs in again and reconnects.
//! - At most `WS_MAX_CONNECTIONS` sockets per instance; more get a 503 before
//!   upgrading.
//! - At most `WS_MAX_SUBSCRIPTIONS` operations run at once on one connection;
//!   a `subscribe` beyond that is answered with an `error` message for its id
//!   (code `TOO_MANY_SUBSCRIPTIONS`) and never starts. The connection stays
//!   open, and the others keep running.
//! - Every `WS_PING_INTERVAL_SECS` the server pings (graphql-transport-ws
//!   `ping`, answered by the client's `pong`; `ka` for the legacy protocol). A
//!   graphql-transport-ws client silent for two intervals is closed (3008).
//! - A client that does not read is dropped once a write has waited
//!   [`SEND_TIMEOUT`]; subscriptions never wait for it (see [`crate::feed`]).
//! - On shutdown every socket is closed with 1001 (going away), and the server
//!   waits for them.

use std::{
    borrow::Cow,
    collections::HashSet,
    pin::Pin,
    str::FromStr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use async_graphql::{
    Data,
    http::{WebSocket as GqlWebSocket, WebSocketProtocols, WsMessage},
};
use axum::{
    body::Bytes,
    extract::{
        FromRequestParts, RawQuery, Request, State, WebSocketUpgrade,
        ws::{CloseFrame, Message, WebSocket},
    },
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::{SinkExt, StreamExt, future::ready};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{MAX_BODY_BYTES, REQUEST_ID};
use crate::{
    app::App,
    auth::Auth,
    error::{AppError, AppResult},
    graphql::context::{RequestState, Viewer},
};

/// How long one write to a client may wait before the client is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing handshake may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest close reason a close frame can carry.
const MAX_REASON_BYTES: usize = 123;

/// The open WebSocket connections of an instance: the cap, and the signal
/// that closes them all.
pub struct Sockets {
    permits: Arc<Semaphore>,
    max: usize,
    closing: CancellationToken,
}

impl Sockets {
    /// Room for `max` connections.
    pub fn new(max: usize) -> Self {
        let max = max.min(Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            closing: CancellationToken::new(),
        }
    }

    /// Connections open right now.
    pub fn open(&self) -> usize {
        self.max - self.permits.available_permits()
    }

    /// Refuses new connections and closes the open ones (1001, going away).
    pub fn close_all(&self) {
        self.closing.cancel();
    }

    /// Waits until every connection has closed; false if some are still open
    /// after `within`.
    pub async fn closed(&self, within: Duration) -> bool {
        let Ok(all) = u32::try_from(self.max) else {
            return self.open() == 0;
        };
        matches!(
            tokio::time::timeout(within, self.permits.acquire_many(all)).await,
            Ok(Ok(_))
        )
    }
}

/// `GET /graphql`: a WebSocket upgrade, or a query over HTTP.
pub async fn get(State(app): State<App>, req: Request) -> Response {
    let (mut parts, _body) = req.into_parts();
    let upgrade = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !upgrade {
        let raw = parts.uri.query().map(str::to_owned);
        return super::graphql::get(State(app), parts.headers, RawQuery(raw)).await;
    }
    let Some(protocol) = requested_protocol(&parts.headers) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "subscriptions speak graphql-transport-ws: send `Sec-WebSocket-Protocol: graphql-transport-ws`",
        );
    };
    let sockets = &app.services.sockets;
    if sockets.closing.is_cancelled() {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "this instance is shutting down; reconnect",
        );
    }
    let Ok(permit) = sockets.permits.clone().try_acquire_owned() else {
        let mut res = refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "this instance has no room for another WebSocket connection; retry shortly",
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return res;
    };
    let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    // browsers cannot set it, but other clients may authenticate the upgrade
    let header_auth = parts
        .headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let request_id = super::current_request_id();
    let span = tracing::info_span!(
        "ws",
        request_id = %request_id,
        protocol = protocol.sec_websocket_protocol()
    );
    ws.protocols([protocol.sec_websocket_protocol()])
        .max_message_size(MAX_BODY_BYTES)
        .max_frame_size(MAX_BODY_BYTES)
        .on_failed_upgrade(|error| tracing::debug!(%error, "WebSocket upgrade failed"))
        .on_upgrade(move |socket| {
            REQUEST_ID.scope(
                request_id,
                // one count for the connection's operations: a delivery into
                // any of them holds the others' batches a round longer
                crate::sched::tracking_deliveries(
                    serve(socket, app, protocol, header_auth, permit).instrument(span),
                ),
            )
        })
}

/// The first GraphQL protocol the client offers.
fn requested_protocol(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    let body =
        serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The viewer named by a `connection_init` payload (or the upgrade's
/// `Authorization` header when the payload names none), and for a signed-in
/// viewer the unix second its token stops being accepted.
fn viewer_from_init(
    auth: &Auth,
    payload: &Value,
    header: Option<&str>,
) -> AppResult<(Viewer, Option<u64>)> {
    let in_payload = payload.as_object().and_then(|fields| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v)
    });
    let value = match in_payload {
        Some(Value::String(s)) => Some(s.as_str()),
        None | Some(Value::Null) => header,
        Some(_) => {
            return Err(AppError::Unauthenticated(
                "`Authorization` in connection_init must be the string `Bearer <token>`".into(),
            ));
        }
    };
    match value {
        None => Ok((Viewer::default(), None)),
        Some(v) => auth
            .from_header_until(v)
            .map(|(id, until)| (Viewer { user_id: Some(id) }, Some(until))),
    }
}

/// Sleeps until the unix second `at` (at once when it has passed).
fn sleep_until_unix(at: u64) -> tokio::time::Sleep {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_secs(at).saturating_sub(now))
}

/// The parts of a protocol message the operation cap reads.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
}

/// The operations running on one connection, against its cap.
struct Running {
    ids: Mutex<HashSet<String>>,
    max: usize,
    /// ids refused for the cap, to be answered with an error
    over_cap: mpsc::Sender<String>,
}

impl Running {
    /// Whether a client message goes on to the protocol handler: a
    /// `subscribe` (`start` in the legacy protocol) beyond the cap does not,
    /// and its id is queued for an error instead. Anything else passes (the
    /// handler answers malformed messages itself).
    fn admit(&self, msg: &[u8]) -> bool {
        let Ok(Head {
            kind: Some(kind),
            id: Some(id),
        }) = serde_json::from_slice::<Head>(msg)
        else {
            return true;
        };
        let Ok(mut ids) = self.ids.lock() else {
            return true;
        };
        match kind.as_ref() {
            "subscribe" | "start" => {
                // a duplicate id passes: the handler closes the socket for it (4409)
                if ids.len() < self.max || ids.contains(id.as_ref()) {
                    ids.insert(id.into_owned());
                    true
                } else {
                    // a client refused faster than it reads its errors loses
                    // some of them; its operations do not start either way
                    let _ = self.over_cap.try_send(id.into_owned());
                    false
                }
            }
            "complete" | "stop" => {
                ids.remove(id.as_ref());
                true
            }
            _ => true,
        }
    }

    /// Forgets an operation the server finished (its `complete` message).
    fn finished(&self, msg: &str) {
        if !msg.starts_with(r#"{"type":"complete""#) {
            return;
        }
        if let Ok(Head { id: Some(id), .. }) = serde_json::from_str::<Head>(msg)
            && let Ok(mut ids) = self.ids.lock()
        {
            ids.remove(id.as_ref());
        }
    }
}

/// The error message refusing operation `id` for the cap.
fn too_many(protocol: WebSocketProtocols, id: String, max: usize) -> Message {
    let error = serde_json::json!({
        "message": format!("at most {max} operations may run at once on one connection; complete one first"),
        "extensions": { "code": "TOO_MANY_SUBSCRIPTIONS" },
    });
    let payload = match protocol {
        WebSocketProtocols::GraphQLWS => Value::Array(vec![error]),
        // the legacy protocol's error payload is one error
        WebSocketProtocols::SubscriptionsTransportWS => error,
    };
    Message::Text(
        serde_json::json!({ "id": id, "type": "error", "payload": payload })
            .to_string()
            .into(),
    )
}

fn close(code: u16, reason: &str) -> Message {
    let mut end = reason.len().min(MAX_REASON_BYTES);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    Message::Close(Some(CloseFrame {
        code,
        reason: reason[..end].into(),
    }))
}

/// One connection, from upgrade to close.
async fn serve(
    socket: WebSocket,
    app: App,
    protocol: WebSocketProtocols,
    header_auth: Option<String>,
    _permit: OwnedSemaphorePermit,
) {
    let services = app.services.clone();
    let ping_every = services.config.ws_ping_interval;
    let closing = services.sockets.closing.clone();
    let (mut sink, mut source) = socket.split();
    let (over_cap, mut over_cap_ids) = mpsc::channel(16);
    let running = Arc::new(Running {
        ids: Mutex::default(),
        max: services.config.ws_max_subscriptions,
        over_cap,
    });
    // why connection_init was refused, for the close frame
    let refused: Arc<Mutex<Option<String>>> = Arc::default();
    // when the accepted token stops being accepted, handed to the loop below
    let expires: Arc<Mutex<Option<u64>>> = Arc::default();
    let on_init = {
        let services = services.clone();
        let refused = refused.clone();
        let expires = expires.clone();
        move |payload: Value| async move {
            match viewer_from_init(&services.auth, &payload, header_auth.as_deref()) {
                Ok((viewer, until)) => {
                    if let Ok(mut slot) = expires.lock() {
                        *slot = until;
                    }
                    let mut data = Data::default();
                    data.insert(RequestState::untracked(viewer));
                    Ok(data)
                }
                Err(e) => {
                    let why = format!("{}: {}", e.code(), e.message());
                    if let Ok(mut slot) = refused.lock() {
                        *slot = Some(why.clone());
                    }
                    Err(async_graphql::Error::new(why))
                }
            }
        }
    };
    tracing::debug!("WebSocket connection opened");
    let mut we_closed = false;
    {
        let input = (&mut source)
            .take_while(|m| ready(m.is_ok()))
            .filter_map(|m| {
                ready(match m {
                    Ok(Message::Text(text)) => Some(Bytes::from(text)),
                    Ok(Message::Binary(bytes)) => Some(bytes),
                    _ => None,
                })
            })
            .filter({
                let running = running.clone();
                move |msg| ready(running.admit(msg))
            });
        let keepalive = (protocol == WebSocketProtocols::GraphQLWS).then(|| ping_every * 2);
        let mut gql = GqlWebSocket::new(app.schema.clone(), input, protocol)
            .on_connection_init(on_init)
            .keepalive_timeout(keepalive);
        let ping = match protocol {
            WebSocketProtocols::GraphQLWS => r#"{"type":"ping"}"#,
            WebSocketProtocols::SubscriptionsTransportWS => r#"{"type":"ka"}"#,
        };
        let mut pings =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut expiry: Option<Pin<Box<tokio::time::Sleep>>> = None;
        loop {
            // set once connection_init was accepted (the ack is the message after)
            if expiry.is_none()
                && let Some(at) = expires.lock().ok().and_then(|mut slot| slot.take())
            {
                expiry = Some(Box::pin(sleep_until_unix(at)));
            }
            let out = tokio::select! {
                biased;
                () = closing.cancelled() => close(1001, "server shutting down"),
                () = async {
                    match expiry.as_mut() {
                        Some(sleep) => sleep.await,
                        None => std::future::pending().await,
                    }
                } => close(4403, "UNAUTHENTICATED: the token has expired; sign in again"),
                Some(id) = over_cap_ids.recv() => too_many(protocol, id, running.max),
                msg = gql.next() => match msg {
                    Some(WsMessage::Text(text)) => {
                        running.finished(&text);
                        Message::Text(text.into())
                    }
                    Some(WsMessage::Close(code, reason)) => {
                        let why = refused.lock().ok().and_then(|mut s| s.take());
                        match why {
                            // the graphql-transport-ws code for a refused connection_init
                            Some(why) if code == 1002 => close(4403, &why),
                            _ => close(code, &reason),
                        }
                    }
                    // the client left, or (legacy protocol) was refused
                    None => break,
                },
                _ = pings.tick() => Message::Text(ping.into()),
            };
            let last = matches!(out, Message::Close(_));
            match tokio::time::timeout(SEND_TIMEOUT, sink.send(out)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    tracing::debug!(%error, "WebSocket write failed; dropping the connection");
                    return;
                }
                Err(_) => {
                    tracing::info!("WebSocket client stopped reading; dropping the connection");
                    return;
                }
            }
            if last {
                we_closed = true;
                break;
            }
        }
    }
    if we_closed {
        // the closing handshake: read until the client's close frame
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            while let Some(Ok(_)) = source.next().await {}
        })
        .await;
    } else {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
    }
    tracing::debug!("WebSocket connection closed");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_operation_cap_counts_starts_and_completions() {
        let (tx, mut rx) = mpsc::channel(4);
        let running = Running {
            ids: Mutex::default(),
            max: 1,
            over_cap: tx,
        };
        let sub = |id: &str| format!(r#"{{"id":"{id}","type":"subscribe","payload":{{}}}}"#);
        assert!(running.admit(sub("a").as_bytes()));
        // the same id again goes to the handler (which refuses duplicates)
        assert!(running.admit(sub("a").as_bytes()));
        assert!(!running.admit(sub("b").as_bytes()));
        assert_eq!(rx.try_recv().ok().as_deref(), Some("b"));
        // the legacy protocol's start is counted too
        assert!(!running.admit(br#"{"id":"c","type":"start","payload":{}}"#));
        // the server finishing "a" makes room
        running.finished(r#"{"type":"next","id":"a","payload":{}}"#);
        assert!(!running.admit(sub("d").as_bytes()));
        running.finished(r#"{"type":"complete","id":"a"}"#);
        assert!(running.admit(sub("d").as_bytes()));
        // so does the client completing one; other messages always pass
        assert!(running.admit(br#"{"id":"d","type":"complete"}"#));
        assert!(running.admit(br#"{"type":"ping"}"#));
        assert!(running.admit(b"not json"));
        assert!(running.admit(sub("e").as_bytes()));
    }

    #[test]
    fn refusals_follow_each_protocols_error_shape() {
        let text = |m: Message| match m {
            Message::Text(t) => serde_json::from_str::<Value>(t.as_str()).expect("json"),
            other => panic!("{other:?}"),
        };
        let ws = text(too_many(WebSocketProtocols::GraphQLWS, "7".into(), 3));
        assert_eq!(ws["type"], "error");
        assert_eq!(ws["id"], "7");
        assert_eq!(
            ws["payload"][0]["extensions"]["code"],
            "TOO_MANY_SUBSCRIPTIONS"
        );
        let legacy = text(too_many(
            WebSocketProtocols::SubscriptionsTransportWS,
            "7".into(),
            3,
        ));
        assert_eq!(
            legacy["payload"]["extensions"]["code"],
            "TOO_MANY_SUBSCRIPTIONS"
        );
    }

    #[test]
    fn init_payload_auth_follows_the_http_rules() {
        let auth = Auth::new(b"test-secret-test-secret-test-sec", Duration::from_secs(60));
        let token = auth.issue(7).expect("token");
        let bearer = format!("Bearer {token}");
        let viewer = |payload: Value, header: Option<&str>| {
            viewer_from_init(&auth, &payload, header).map(|(v, _)| v.user_id)
        };
        // anonymous connections never expire; signed-in ones when the token does
        assert_eq!(
            viewer_from_init(&auth, &json!({}), None).map(|(_, until)| until),
            Ok(None)
        );
        assert!(matches!(
            viewer_from_init(&auth, &json!({ "Authorization": bearer }), None),
            Ok((_, Some(_)))
        ));
        assert_eq!(
            viewer(json!({ "Authorization": bearer }), None),
            Ok(Some(7))
        );
        assert_eq!(
            viewer(json!({ "authorization": bearer }), None),
            Ok(Some(7))
        );
        assert_eq!(viewer(json!({}), None), Ok(None));
        assert_eq!(viewer(Value::Null, None), Ok(None));
        assert_eq!(
            viewer(json!({ "Authorization": null }), Some(&bearer)),
            Ok(Some(7))
        );
        for bad in [
            json!({ "Authorization": "Bearer nope" }),
            json!({ "Authorization": token }),
            json!({ "Authorization": 42 }),
        ] {
            let err = viewer(bad.clone(), None).expect_err("refused");
            assert_eq!(err.code(), "UNAUTHENTICATED", "{bad}");
        }
        // the payload wins over the upgrade's header
        assert!(viewer(json!({ "Authorization": "Bearer nope" }), Some(&bearer)).is_err());
    }

    #[test]
    fn close_reasons_fit_a_frame() {
        let Message::Close(Some(frame)) = close(4403, &"é".repeat(100)) else {
            panic!("not a close frame");
        };
        assert!(frame.reason.as_str().len() <= MAX_REASON_BYTES);
    }
}
