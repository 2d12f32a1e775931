//! The API's own accept loop, because `axum::serve` has no limits a slow
//! client can feel: a socket that sends half a request line and then nothing
//! stayed open forever, and so did one trickling its body.
//!
//! Here every connection
//! - counts against `HANGAR_MAX_CONNECTIONS` (beyond it, new connections wait
//!   in the kernel's listen backlog instead of costing a task and a file),
//! - must deliver each request's headers within `HANGAR_HEADER_READ_TIMEOUT_SECS`
//!   (hyper closes it otherwise, idle keep-alive connections included),
//! - must deliver each request's body within `HANGAR_BODY_READ_TIMEOUT_SECS`
//!   of its headers, else the request is answered 408 and the connection
//!   closed (the body stream fails, so nothing keeps reading it).
//!
//! HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) are both served.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::ConnectInfo,
    http::{HeaderValue, Request, Response, StatusCode, Version, header},
    response::IntoResponse,
};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower_service::Service;

/// What [`serve`] enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// Headers must arrive within this.
    pub header_read: Duration,
    /// A body must arrive within this of its headers.
    pub body_read: Duration,
    /// On shutdown, how long open connections (streams) get to finish.
    pub drain: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets open
/// connections finish for at most `limits.drain`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        metrics.connection_opened();
        let header_read = limits.header_read;
        let service = hyper::service::service_fn({
            let router = router.clone();
            move |req: Request<Incoming>| handle(router.clone(), peer, limits.body_read, req)
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            // hyper's header timer starts once it knows the protocol; a
            // socket that sends nothing (or half an HTTP/2 preface) would
            // never get that far, so the protocol must show within the
            // header time too.
            if tokio::time::timeout(header_read, protocol_known(&stream)).await != Ok(true) {
                metrics.connection_closed();
                return;
            }
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
            metrics.connection_closed();
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain) => {
            tracing::warn!(drain = ?limits.drain, "connections still open after the drain time; closing them");
        }
    }
    Ok(())
}

/// The HTTP/2 connection preface (prior knowledge).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits (without consuming anything) until the first bytes tell HTTP/1
/// from HTTP/2; false if the peer closed first.
async fn protocol_known(stream: &tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 24];
    loop {
        let n = match stream.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        if n >= H2_PREFACE.len() || buf[..n] != H2_PREFACE[..n] {
            return true;
        }
        // A prefix of the preface: wait for more bytes to arrive.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One request: the peer's address for the handlers, the body under its
/// deadline, and a 408 that closes the connection when the deadline passed.
async fn handle(
    mut router: Router,
    peer: SocketAddr,
    body_read: Duration,
    req: Request<Incoming>,
) -> Result<Response<Body>, std::convert::Infallible> {
    let version = req.version();
    let expired = Arc::new(AtomicBool::new(false));
    let mut req = req.map(|body| {
        Body::new(DeadlineBody {
            inner: body,
            deadline: Box::pin(tokio::time::sleep(body_read)),
            expired: expired.clone(),
            limit: body_read,
        })
    });
    req.extensions_mut().insert(ConnectInfo(peer));
    let response = router.call(req).await?;
    if !expired.load(Ordering::Relaxed) {
        return Ok(response);
    }
    let mut response = crate::error::ApiError::BadRequest {
        code: "request_timeout",
        message: format!(
            "the request body did not arrive within {} s; the connection is closed",
            body_read.as_secs()
        ),
        field: None,
    }
    .into_response();
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    if version <= Version::HTTP_11 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

/// A request body that fails once its deadline passes, however slowly its
/// bytes trickle in (a per-read timeout would be reset by each byte).
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
    limit: Duration,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            let limit = self.limit;
            return Poll::Ready(Some(Err(format!(
                "request body not received within {} s",
                limit.as_secs()
            )
            .into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
