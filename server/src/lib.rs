//! `cairn-server`: the HTTP server `cairnd` over the Cairn storage engine.
//!
//! [`run`] opens the data directory, loads the idempotency window, binds the listener,
//! prints `cairnd listening on <addr>` and serves the API (`routes`) until SIGTERM/SIGINT,
//! then drains connections and closes the catalog cleanly. Requests flow one way:
//! `serve` (connections, limits) → `routes` (parse, validate) → `produce` / `read` →
//! `cairn_storage` (append / read) → disk. The contract is `../shared/API.md`; operations
//! (configuration, limits, signals) are in `docs/OPERATIONS.md`.

pub mod activity;
pub mod config;
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
    #[error("cannot load the consumer groups: {0}")]
    Groups(#[from] groups::GroupError),
}

/// An opened store, ready to serve.
pub struct Server {
    config: ServerConfig,
    catalog: Arc<Catalog>,
    listener: TcpListener,
    groups: Arc<GroupEngine>,
    idempotency: Idempotency,
}

impl Server {
    /// Opens the data directory (recovering it if needed), loads the idempotency window and
    /// binds the listen address.
    pub async fn open(config: ServerConfig) -> Result<Self, ServerError> {
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
        Ok(Server { config, catalog, listener, groups, idempotency })
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
        let app = routes::router(state);
        serve::serve(self.listener, app, self.config.connections.clone(), shutdown, self.config.shutdown_grace).await;
        drop(trigger);
        let catalog = self.catalog;
        tokio::task::spawn_blocking(move || catalog.close()).await??;
        Ok(())
    }
}

/// Runs `cairnd`: open, announce, serve until SIGTERM/SIGINT, close cleanly.
pub async fn run(config: ServerConfig) -> Result<(), ServerError> {
    let server = Server::open(config).await?;
    let addr =
        server.local_addr().map_err(|source| ServerError::Bind { addr: server.config.listen.clone(), source })?;
    tracing::info!(%addr, data_dir = %server.config.data_dir.display(), "cairnd ready");
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
