//! Running the app on a socket: bind, announce the bound address, serve until a signal, drain.
//!
//! Binding is a step of its own ([`bind`]) so that the binary can claim its address before it
//! opens (and so creates) the data directory: a port already in use fails with nothing left
//! behind.
//!
//! actix-web installs SIGINT/SIGTERM handlers: on either it stops accepting, lets in-flight
//! requests finish (up to [`ServeOptions::shutdown_timeout`]) and then [`serve`] returns, after
//! which the caller flushes and closes the store.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::HttpServer;

use crate::app;
use crate::state::AppState;

/// How to run the HTTP server on its bound listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// Worker threads; `None` lets actix pick one per physical core.
    pub workers: Option<usize>,
    /// How long in-flight requests may take to finish after a stop signal.
    pub shutdown_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            workers: None,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// Claims `addr` (port 0 picks a free port) for a later [`serve`].
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// Serves `state` on `listener` (from [`bind`]) until SIGINT or SIGTERM, then drains
/// in-flight requests.
///
/// Prints `listening on http://ADDR` on standard output (with the real port when the requested
/// one was 0), so scripts and tests can find the server.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    options: ServeOptions,
) -> std::io::Result<()> {
    let mut server = HttpServer::new(move || app(state.clone()))
        .shutdown_timeout(options.shutdown_timeout.as_secs())
        .listen(listener)?;
    if let Some(workers) = options.workers {
        server = server.workers(workers);
    }
    for addr in server.addrs() {
        tracing::info!(%addr, "listening");
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on http://{addr}")?;
        stdout.flush()?;
    }
    server.run().await?;
    tracing::info!("stopped accepting requests; in-flight requests have finished");
    Ok(())
}
