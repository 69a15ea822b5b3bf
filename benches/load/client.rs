//! A minimal HTTP/1.1 keep-alive client: one hyper connection per worker,
//! pre-built bodies, no pool, no URL parsing per request. The generator
//! shares the machine's two cores with the server, so every cycle it spends
//! is one the server does not get.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::http::{HeaderValue, Method, Request, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where requests go: a loopback address and a path.
#[derive(Clone, Debug)]
pub struct Target {
    /// Socket address (always loopback).
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: HeaderValue,
}

impl Target {
    /// Parses `http://127.0.0.1:PORT` (a trailing path is ignored). Anything
    /// but a loopback address is refused: the generator must never load
    /// another machine.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("{url:?}: only http:// URLs are supported"))?;
        let authority = rest.split('/').next().unwrap_or("");
        let addr: SocketAddr = match authority.parse() {
            Ok(a) => a,
            Err(_) => {
                let (host, port) = authority
                    .rsplit_once(':')
                    .with_context(|| format!("{url:?}: expected host:port"))?;
                if host != "localhost" {
                    bail!("{url:?}: use a numeric loopback address such as 127.0.0.1");
                }
                SocketAddr::from(([127, 0, 0, 1], port.parse::<u16>()?))
            }
        };
        if !addr.ip().is_loopback() {
            bail!("{url:?}: the load generator only targets loopback addresses");
        }
        Ok(Self {
            addr,
            host: HeaderValue::from_str(authority)?,
        })
    }
}

/// One keep-alive connection.
pub type Conn = SendRequest<Full<Bytes>>;

/// A response: status and the whole body.
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// Content-Type, if any.
    pub content_type: Option<HeaderValue>,
    /// The body.
    pub body: Bytes,
}

/// Opens a connection (TCP_NODELAY, HTTP/1.1) and drives it on a task.
pub async fn connect(target: &Target) -> anyhow::Result<Conn> {
    let stream = TcpStream::connect(target.addr)
        .await
        .with_context(|| format!("connecting to {}", target.addr))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // ends when the sender is dropped or the server closes the connection
        let _ = conn.await;
    });
    Ok(sender)
}

/// POSTs a GraphQL body on `conn`. Any transport failure is an `Err`; the
/// caller then drops the connection and opens a new one.
pub async fn post(
    conn: &mut Conn,
    target: &Target,
    path: &'static str,
    body: Bytes,
    authorization: Option<&HeaderValue>,
) -> anyhow::Result<Reply> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, target.host.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(Full::new(body))?;
    if let Some(auth) = authorization {
        req.headers_mut()
            .insert(header::AUTHORIZATION, auth.clone());
    }
    conn.ready().await?;
    let res = conn.send_request(req).await?;
    let status = res.status().as_u16();
    let content_type = res.headers().get(header::CONTENT_TYPE).cloned();
    let body = res.into_body().collect().await?.to_bytes();
    Ok(Reply {
        status,
        content_type,
        body,
    })
}

/// A one-off GET on a fresh connection (for `/metrics` and `/healthz`).
pub async fn get(target: &Target, path: &str, timeout: Duration) -> anyhow::Result<Reply> {
    let work = async {
        let stream = TcpStream::connect(target.addr).await?;
        let (mut sender, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header(header::HOST, target.host.clone())
            .body(Empty::new())?;
        let res = sender.send_request(req).await?;
        let status = res.status().as_u16();
        let content_type = res.headers().get(header::CONTENT_TYPE).cloned();
        let body = res.into_body().collect().await?.to_bytes();
        drop(sender);
        driver.abort();
        anyhow::Ok(Reply {
            status,
            content_type,
            body,
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .with_context(|| format!("GET {path} timed out"))?
}
