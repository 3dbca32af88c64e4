//! An in-process liftlab server on a loopback socket, for `simulate` and `demo`: the real app over real HTTP.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use actix_web::dev::ServerHandle;
use anyhow::Context as _;
use liftlab_server::{AppState, Config, KeyRing};
use liftlab_store::{SledStore, Store};

/// A running in-process server. Dropping it stops the server and flushes the store.
pub struct LocalServer {
    url: String,
    handle: Option<ServerHandle>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    store: Arc<dyn Store>,
    /// Keeps a temporary data directory alive as long as the server.
    _temp: Option<tempfile::TempDir>,
}

impl LocalServer {
    /// Starts a server on a free loopback port over a fresh temporary data directory.
    pub fn temporary() -> anyhow::Result<LocalServer> {
        let temp = tempfile::Builder::new()
            .prefix("liftlab-simulate-")
            .tempdir()
            .context("cannot create a temporary data directory")?;
        let addr: SocketAddr = ([127, 0, 0, 1], 0).into();
        let mut server = LocalServer::start(addr, temp.path(), false)?;
        server._temp = Some(temp);
        Ok(server)
    }

    /// Starts a server on `addr` (open, so loopback only) over the data directory `data`.
    /// With `signals`, SIGINT and SIGTERM stop it gracefully (see [`LocalServer::wait`]).
    pub fn start(addr: SocketAddr, data: &Path, signals: bool) -> anyhow::Result<LocalServer> {
        if !addr.ip().is_loopback() {
            anyhow::bail!("an in-process server has no API keys, so it may only listen on a loopback address, not {addr}");
        }
        let store = SledStore::open(data)
            .with_context(|| format!("cannot open the store in {}", data.display()))?;
        let store: Arc<dyn Store> = Arc::new(store);
        let listener =
            TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
        let addr = listener
            .local_addr()
            .context("cannot read the bound address")?;
        let state = AppState::new(Arc::clone(&store), KeyRing::open(), Config::default());
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("liftlab-local-server".to_string())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let mut server =
                        actix_web::HttpServer::new(move || liftlab_server::app(state.clone()))
                            .workers(2)
                            .shutdown_timeout(5);
                    if !signals {
                        server = server.disable_signals();
                    }
                    let server = server.listen(listener)?.run();
                    // The receiver waits for this; if it is gone there is nobody to serve.
                    let _ = sender.send(server.handle());
                    server.await
                })
            })
            .context("cannot start the server thread")?;
        let handle = receiver
            .recv()
            .map_err(|_| anyhow::anyhow!("the in-process server failed to start"))?;
        Ok(LocalServer {
            url: format!("http://{addr}"),
            handle: Some(handle),
            thread: Some(thread),
            store,
            _temp: None,
        })
    }

    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Serves until a signal stops the server (it must have been started with `signals`),
    /// then closes the store.
    pub fn wait(&mut self) -> anyhow::Result<()> {
        self.handle = None;
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(served) => served.context("the server failed")?,
                Err(_) => anyhow::bail!("the server thread panicked"),
            }
        }
        self.store.close().context("cannot close the store")
    }

    /// Stops accepting requests, waits for in-flight ones, and flushes the store. Stopping a
    /// stopped server does nothing.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(handle) = self.handle.take() else {
            return Ok(());
        };
        actix_web::rt::System::new().block_on(handle.stop(true));
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(served) => served.context("the in-process server failed")?,
                Err(_) => anyhow::bail!("the in-process server thread panicked"),
            }
        }
        self.store.close().context("cannot close the store")?;
        Ok(())
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("warning: {e:#}");
        }
    }
}
