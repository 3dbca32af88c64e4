//! Running the app on a socket: bind, announce the bound address, serve until a signal, drain.
//!
//! actix-web installs SIGINT/SIGTERM handlers: on either it stops accepting, lets in-flight
//! requests finish (up to [`ServeOptions::shutdown_timeout`]) and then [`serve`] returns, after
//! which the caller flushes and closes the store.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use actix_web::HttpServer;

use crate::{app, AppState};

/// How to run the HTTP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// Worker threads; `None` lets actix pick one per physical core.
    pub workers: Option<usize>,
    /// How long in-flight requests may take to finish after a stop signal.
    pub shutdown_timeout: Duration,
}

impl ServeOptions {
    pub fn new(addr: SocketAddr) -> ServeOptions {
        ServeOptions {
            addr,
            workers: None,
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// Serves `state` on `options.addr` until SIGINT or SIGTERM, then drains in-flight requests.
///
/// Once bound, prints `listening on http://ADDR` on standard output (with the real port when
/// the requested one was 0), so scripts and tests can find the server.
pub async fn serve(state: AppState, options: ServeOptions) -> std::io::Result<()> {
    let mut server = HttpServer::new(move || app(state.clone()))
        .shutdown_timeout(options.shutdown_timeout.as_secs())
        .bind(options.addr)?;
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
