//! The accept loop: hyper's HTTP/1 connection builder with a header-read
//! timeout (which also closes idle keep-alive connections: hyper starts it
//! as soon as a connection waits for a request head), a cap on open
//! connections (a semaphore permit per connection, taken before `accept`, so
//! past the cap new connections wait in the kernel's backlog instead of
//! using file descriptors), and graceful shutdown from hyper-util.

use super::config::ApiConfig;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// hyper's own read buffer limit: above our JSON-answered header limit, so nearly every
/// oversized head gets the JSON 431 of `middleware::observe`, not hyper's empty one.
const HYPER_MAX_BUF: usize = 64 * 1024;
/// hyper's own header count limit, above `ApiConfig::max_headers` for the same reason.
const HYPER_MAX_HEADERS: usize = 256;
/// How long shutdown waits for in-flight requests before closing their connections.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `app` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn run(
    listener: TcpListener,
    app: Router,
    config: &ApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(HYPER_MAX_BUF)
        .max_headers(HYPER_MAX_HEADERS);
    let slots = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: wait for connections to close instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let svc = app
            .clone()
            .map_request(move |mut req: axum::extract::Request<_>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // The slot is held until the connection is closed.
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!(client = %peer, error = %e, "connection closed");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the drain period; closing them");
    }
    Ok(())
}
