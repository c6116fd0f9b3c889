//! `cairn-server`: the HTTP server `cairnd` over the Cairn storage engine.
//!
//! [`run`] opens the data directory, loads the idempotency window, binds the listener,
//! prints `cairnd listening on <addr>` and serves the API (`routes`) until SIGTERM/SIGINT,
//! then drains connections and closes the catalog cleanly. Requests flow one way:
//! `serve` (connections, limits) → `routes` (parse, validate) → `produce` / `read` →
//! `cairn_storage` (append / read) → disk. The contract is `../shared/API.md`; operations
//! (configuration, limits, signals) are in `docs/OPERATIONS.md`.

pub mod activity;
pub mod auth;
pub mod canned;
pub mod config;
pub mod dispatch;
pub mod ends;
pub mod error;
pub mod extract;
pub mod groups;
pub mod idempotency;
pub mod json_text;
pub mod media;
pub mod metrics;
pub mod names;
pub mod openapi;
pub mod partitioner;
pub mod produce;
pub mod read;
pub mod routes;
pub mod serve;
pub mod shutdown;
pub mod sse;
pub mod state;
#[cfg(test)]
mod test_support;
pub mod tls;
pub mod watchdog;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cairn_storage::{system_clock, Catalog, CatalogOptions, CompactionOptions};
use tokio::net::TcpListener;

pub use config::ServerConfig;
pub use error::{ApiError, ErrorCode};
use groups::GroupEngine;
use idempotency::Idempotency;
use shutdown::{Shutdown, ShutdownTrigger};
use state::{HandlerSettings, State};

/// SSE keepalive period (the contract asks for at least every 15 s).
pub const SSE_KEEPALIVE: Duration = Duration::from_secs(10);

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the data directory: {0}")]
    Storage(#[from] cairn_storage::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("a startup task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("cannot set up TLS: {0}")]
    Tls(#[from] tls::TlsError),
    #[error("cannot load the consumer groups: {0}")]
    Groups(#[from] groups::GroupError),
    #[error(
        "refusing to listen on {addr} without authentication (protected mode): no tokens are configured, \
         so anyone who can reach {addr} could read, write and delete every topic. Configure [[auth.tokens]] in the \
         config file (see `cairnd hash-token` and docs/OPERATIONS.md, Security), listen on a loopback address \
         (127.0.0.1, ::1), or start with --allow-anonymous (CAIRN_ALLOW_ANONYMOUS=true, allow_anonymous = true) to \
         serve anyone"
    )]
    Unprotected { addr: String },
}

/// An opened store, ready to serve.
pub struct Server {
    config: ServerConfig,
    catalog: Arc<Catalog>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    groups: Arc<GroupEngine>,
    idempotency: Idempotency,
}

impl Server {
    /// Opens the data directory (recovering it if needed), loads the idempotency window and
    /// binds the listen address.
    pub async fn open(config: ServerConfig) -> Result<Self, ServerError> {
        check_protected_mode(&config).await?;
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        let opts = CatalogOptions {
            writer_threads: config.writer_threads,
            retention_check_interval: Some(config.retention_check_interval),
            compaction_check_interval: Some(config.compaction.check_interval),
            compaction_dirty_ratio: config.compaction.dirty_ratio,
            compaction: CompactionOptions {
                io_bytes_per_sec: config.compaction.io_bytes_per_sec,
                ..CompactionOptions::default()
            },
            ..CatalogOptions::default()
        };
        let (dir, window) = (config.data_dir.clone(), config.idempotency_window);
        let (catalog, idempotency, groups) = tokio::task::spawn_blocking(move || {
            let catalog = Arc::new(Catalog::open(&dir, opts)?);
            let idempotency = Idempotency::open(&catalog, window, system_clock())?;
            let groups = GroupEngine::open(Arc::clone(&catalog), &dir)?;
            Ok::<_, ServerError>((catalog, idempotency, groups))
        })
        .await??;
        let listener = TcpListener::bind(&config.listen)
            .await
            .map_err(|source| ServerError::Bind { addr: config.listen.clone(), source })?;
        Ok(Server { config, catalog, listener, tls, groups, idempotency })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The open catalog.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Serves until `shutdown` fires, drains, and closes the catalog.
    pub async fn serve(self, trigger: ShutdownTrigger, shutdown: Shutdown) -> Result<(), ServerError> {
        let settings = HandlerSettings {
            auto_create_topics: self.config.auto_create_topics,
            body_bytes_max: self.config.body_bytes_max,
            keepalive: SSE_KEEPALIVE,
        };
        let state = State::new(Arc::clone(&self.catalog), settings, self.idempotency, self.groups, shutdown.clone());
        let auth = (!self.config.auth.tokens.is_empty()).then(|| {
            Arc::new(auth::Auth {
                tokens: self.config.auth.tokens.clone(),
                metrics_open: self.config.auth.metrics_open,
                body_bytes_max: self.config.body_bytes_max,
            })
        });
        let app = routes::dispatch_for(routes::table(), state, auth);
        let limits = self.config.connections.clone();
        serve::serve(self.listener, self.tls, app, limits, shutdown, self.config.shutdown_grace).await;
        drop(trigger);
        let catalog = self.catalog;
        tokio::task::spawn_blocking(move || catalog.close()).await??;
        Ok(())
    }
}

/// Protected mode: without tokens, every address `config.listen` resolves to must be loopback
/// unless anonymous access was allowed.
async fn check_protected_mode(config: &ServerConfig) -> Result<(), ServerError> {
    if !config.auth.tokens.is_empty() || config.allow_anonymous {
        return Ok(());
    }
    let addrs = tokio::net::lookup_host(&config.listen)
        .await
        .map_err(|source| ServerError::Bind { addr: config.listen.clone(), source })?;
    for addr in addrs {
        if !addr.ip().is_loopback() {
            return Err(ServerError::Unprotected { addr: addr.to_string() });
        }
    }
    Ok(())
}

/// Runs `cairnd`: open, announce, serve until SIGTERM/SIGINT, close cleanly.
pub async fn run(config: ServerConfig) -> Result<(), ServerError> {
    let server = Server::open(config).await?;
    let addr =
        server.local_addr().map_err(|source| ServerError::Bind { addr: server.config.listen.clone(), source })?;
    let (tls, tokens) = (server.tls.is_some(), server.config.auth.tokens.len());
    tracing::info!(%addr, data_dir = %server.config.data_dir.display(), tls, tokens, "cairnd ready");
    announce(addr);
    let (trigger, shutdown) = Shutdown::new();
    let signal_trigger = trigger.clone();
    let signals = tokio::spawn(async move {
        match shutdown::termination_signal().await {
            Ok(()) => signal_trigger.trigger(),
            Err(e) => tracing::error!("cannot install signal handlers: {e}"),
        }
    });
    let result = server.serve(trigger, shutdown).await;
    signals.abort();
    result
}

/// Prints the readiness line tests and scripts wait for.
fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "cairnd listening on {addr}");
    let _ = out.flush();
}
