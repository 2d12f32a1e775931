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
//!   closed (the body stream fails, so nothing keeps reading it),
//! - is closed (gracefully) after `HANGAR_IDLE_TIMEOUT_SECS` without a byte
//!   either way: HTTP/2 has no header timer, and an HTTP/2 client library
//!   answers pings on its own, so idleness is what tells a held connection.
//!
//! HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) are both served.

use std::{
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
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
    server::{conn::auto, graceful::GracefulConnection},
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpListener,
    sync::Semaphore,
};
use tokio_util::sync::CancellationToken;
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
    /// A connection without a byte either way for this long is closed.
    pub idle: Duration,
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
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let stop = CancellationToken::new();
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
        let service = hyper::service::service_fn({
            let router = router.clone();
            move |req: Request<Incoming>| handle(router.clone(), peer, limits.body_read, req)
        });
        let builder = builder.clone();
        let stop = stop.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            // hyper's header timer starts once it knows the protocol; a
            // socket that sends nothing (or half an HTTP/2 preface) would
            // never get that far, so the protocol must show within the
            // header time too.
            if tokio::time::timeout(limits.header_read, protocol_known(&stream)).await == Ok(true) {
                let io = ActivityIo::new(stream);
                let last = io.last.clone();
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                if let Err(e) = drive(conn.into_owned(), &last, limits.idle, &stop).await {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
            }
            metrics.connection_closed();
            drop(slot);
        });
    }
    drop(listener);
    stop.cancel();
    // Every connection holds a slot: all slots back means all closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.drain, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(drain = ?limits.drain, "connections still open after the drain time; closing them");
    }
    Ok(())
}

/// Runs one connection until it ends; asks it to finish (graceful: the
/// requests in flight complete) when it has been idle for `idle` or the
/// server is stopping. A connection asked to finish for idleness that does
/// not within `idle` again (at most 5 s) is dropped: an HTTP/2 graceful close
/// waits for the peer to answer a ping, which a hostile peer never does.
async fn drive<C>(
    conn: C,
    last: &ActivityClock,
    idle: Duration,
    stop: &CancellationToken,
) -> Result<(), C::Error>
where
    C: GracefulConnection,
{
    /// Where the connection is in its life.
    enum Phase {
        Open,
        /// Asked to finish for idleness, at this time.
        ClosingIdle(Instant),
        /// Asked to finish because the server stops (the drain time bounds it).
        Stopping,
    }
    tokio::pin!(conn);
    let check = (idle / 4).max(Duration::from_millis(100));
    let grace = idle.min(Duration::from_secs(5));
    let mut phase = Phase::Open;
    loop {
        tokio::select! {
            done = conn.as_mut() => return done,
            () = tokio::time::sleep(check) => match phase {
                Phase::Open if last.idle_for() >= idle => {
                    conn.as_mut().graceful_shutdown();
                    phase = Phase::ClosingIdle(Instant::now());
                }
                Phase::ClosingIdle(since) if since.elapsed() >= grace && last.idle_for() >= idle => return Ok(()),
                _ => {}
            },
            () = stop.cancelled(), if matches!(phase, Phase::Open) => {
                conn.as_mut().graceful_shutdown();
                phase = Phase::Stopping;
            }
        }
    }
}

/// When a connection last moved a byte, in milliseconds since it opened.
#[derive(Clone)]
struct ActivityClock {
    opened: Instant,
    last_ms: Arc<AtomicU64>,
}

impl ActivityClock {
    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        self.opened
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A TCP stream that notes when it last read or wrote a byte.
struct ActivityIo {
    inner: tokio::net::TcpStream,
    last: ActivityClock,
}

impl ActivityIo {
    fn new(inner: tokio::net::TcpStream) -> Self {
        Self {
            inner,
            last: ActivityClock {
                opened: Instant::now(),
                last_ms: Arc::new(AtomicU64::new(0)),
            },
        }
    }
}

impl AsyncRead for ActivityIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.last.touch();
        }
        polled
    }
}

impl AsyncWrite for ActivityIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.last.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.last.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
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
        code: crate::error::ErrorCode::RequestTimeout,
        message: format!(
            "the request body did not arrive within {} s (HANGAR_BODY_READ_TIMEOUT_SECS){}",
            body_read.as_secs(),
            if version <= Version::HTTP_11 {
                "; the connection is closed"
            } else {
                ""
            }
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
