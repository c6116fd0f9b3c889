//! Server configuration: command-line flags, `CAIRN_*` environment variables, an optional
//! TOML file, and defaults — in that order of precedence.
//!
//! Clap reads each flag and its environment variable into an `Option`; whatever is still
//! unset is taken from the file (`--config FILE` / `CAIRN_CONFIG`), then from the defaults
//! below. The result is one typed [`ServerConfig`] handed to [`crate::run`]; nothing else
//! reads the environment. Every limit carries its unit in its name and is documented in
//! `docs/OPERATIONS.md`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Deserialize;

use crate::auth::settings::AuthFile;
use crate::auth::Tokens;

/// Default listen address.
pub const LISTEN_DEFAULT: &str = "127.0.0.1:7420";
/// Default data directory.
pub const DATA_DIR_DEFAULT: &str = "./data";
/// Default largest request body: 32 MiB.
pub const BODY_BYTES_MAX_DEFAULT: u64 = 32 * 1024 * 1024;
/// Default idempotency dedup window: 2 minutes.
pub const IDEMPOTENCY_WINDOW_MS_DEFAULT: u64 = 120_000;
/// Default most open client connections.
pub const CONNECTIONS_MAX_DEFAULT: usize = 1024;
/// Default time a client has to send a request's headers (also bounds keep-alive idling).
pub const HEADER_READ_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Default largest request head (request line and headers).
pub const HEADER_BYTES_MAX_DEFAULT: usize = 64 * 1024;
/// Default time a connection may go without reading or writing a byte.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 60_000;
/// Default time in-flight requests get to finish after SIGTERM/SIGINT.
pub const SHUTDOWN_GRACE_MS_DEFAULT: u64 = 30_000;
/// Default period of the retention sweep.
pub const RETENTION_CHECK_INTERVAL_MS_DEFAULT: u64 = 30_000;
/// Default period of the background compactor's look for dirty compacted partitions.
pub const COMPACTION_CHECK_INTERVAL_MS_DEFAULT: u64 = 30_000;
/// Default I/O rate limit of background compaction (reads + writes): 64 MiB/s.
pub const COMPACTION_IO_BYTES_PER_SEC_DEFAULT: u64 = 64 * 1024 * 1024;
/// Smallest accepted `body_bytes_max`.
pub const BODY_BYTES_MAX_MIN: u64 = 1024;
/// Smallest accepted `header_bytes_max` (hyper needs a buffer of at least 8 KiB).
pub const HEADER_BYTES_MAX_MIN: usize = 8 * 1024;

/// Why the configuration could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {}: {source}", path.display())]
    Parse { path: PathBuf, source: toml::de::Error },
    #[error("invalid setting {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Command-line flags; each also reads its `CAIRN_*` environment variable.
#[derive(Debug, Default, Parser)]
#[command(name = "cairnd", version, about = "Cairn: a durable append-only log message store with an HTTP API")]
pub struct Cli {
    /// Address to listen on (`127.0.0.1:0` picks a free port; the bound one is printed).
    #[arg(long, env = "CAIRN_LISTEN")]
    pub listen: Option<String>,
    /// Data directory.
    #[arg(long, env = "CAIRN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML configuration file (keys as the long flags, with underscores).
    #[arg(long, env = "CAIRN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Create a topic with the defaults when a produce names one that does not exist.
    #[arg(long, env = "CAIRN_AUTO_CREATE_TOPICS", value_name = "BOOL")]
    pub auto_create_topics: Option<bool>,
    /// Refuse produces to unknown topics (`404 topic_not_found`); overrides the above.
    #[arg(long)]
    pub no_auto_create_topics: bool,
    /// Largest request body in bytes (larger: `413 payload_too_large`).
    #[arg(long, env = "CAIRN_BODY_BYTES_MAX")]
    pub body_bytes_max: Option<u64>,
    /// How long an `Idempotency-Key` is remembered, in milliseconds.
    #[arg(long, env = "CAIRN_IDEMPOTENCY_WINDOW_MS")]
    pub idempotency_window_ms: Option<u64>,
    /// Most client connections open at once; more wait in the listen backlog.
    #[arg(long, env = "CAIRN_CONNECTIONS_MAX")]
    pub connections_max: Option<usize>,
    /// Time a client has to send a request's headers, in milliseconds.
    #[arg(long, env = "CAIRN_HEADER_READ_TIMEOUT_MS")]
    pub header_read_timeout_ms: Option<u64>,
    /// Largest request head (request line and headers), in bytes.
    #[arg(long, env = "CAIRN_HEADER_BYTES_MAX")]
    pub header_bytes_max: Option<usize>,
    /// A connection that reads and writes nothing for this long is closed, in milliseconds.
    #[arg(long, env = "CAIRN_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Time in-flight requests get to finish on SIGTERM/SIGINT, in milliseconds.
    #[arg(long, env = "CAIRN_SHUTDOWN_GRACE_MS")]
    pub shutdown_grace_ms: Option<u64>,
    /// Period of the retention sweep, in milliseconds.
    #[arg(long, env = "CAIRN_RETENTION_CHECK_INTERVAL_MS")]
    pub retention_check_interval_ms: Option<u64>,
    /// Period of the background compactor, in milliseconds.
    #[arg(long, env = "CAIRN_COMPACTION_CHECK_INTERVAL_MS")]
    pub compaction_check_interval_ms: Option<u64>,
    /// Compact a partition of a `compact` topic once this share (0-1) of its sealed bytes is dirty.
    #[arg(long, env = "CAIRN_COMPACTION_DIRTY_RATIO")]
    pub compaction_dirty_ratio: Option<f64>,
    /// I/O rate limit of background compaction, in bytes per second (0: unlimited).
    #[arg(long, env = "CAIRN_COMPACTION_IO_BYTES_PER_SEC")]
    pub compaction_io_bytes_per_sec: Option<u64>,
    /// Storage writer (group commit) threads.
    #[arg(long, env = "CAIRN_WRITER_THREADS")]
    pub writer_threads: Option<usize>,
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info` or `cairn_server=debug`).
    #[arg(long, env = "CAIRN_LOG")]
    pub log: Option<String>,
    /// Serve anyone who can reach a non-loopback listen address when no tokens are configured
    /// (without it, `cairnd` refuses to start that way: protected mode).
    #[arg(long, env = "CAIRN_ALLOW_ANONYMOUS")]
    pub allow_anonymous: bool,
    /// With tokens configured: serve `/metrics` without a token (default: it needs `admin` or `metrics`).
    #[arg(long, env = "CAIRN_METRICS_OPEN", value_name = "BOOL")]
    pub metrics_open: Option<bool>,
    /// TLS certificate chain (PEM); with `--tls-key`, the listener speaks HTTPS only.
    #[arg(long, env = "CAIRN_TLS_CERT", value_name = "PATH")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "CAIRN_TLS_KEY", value_name = "PATH")]
    pub tls_key: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands (without one, `cairnd` serves).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the SHA-256 of a token read from stdin (for `[[auth.tokens]] sha256`).
    HashToken {
        /// Make a new random token instead, and print it with its hash and a config snippet.
        #[arg(long)]
        generate: bool,
    },
}

/// The TOML file: the same settings as the flags, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub auto_create_topics: Option<bool>,
    pub body_bytes_max: Option<u64>,
    pub idempotency_window_ms: Option<u64>,
    pub connections_max: Option<usize>,
    pub header_read_timeout_ms: Option<u64>,
    pub header_bytes_max: Option<usize>,
    pub idle_timeout_ms: Option<u64>,
    pub shutdown_grace_ms: Option<u64>,
    pub retention_check_interval_ms: Option<u64>,
    pub compaction_check_interval_ms: Option<u64>,
    pub compaction_dirty_ratio: Option<f64>,
    pub compaction_io_bytes_per_sec: Option<u64>,
    pub writer_threads: Option<usize>,
    pub log: Option<String>,
    pub allow_anonymous: Option<bool>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub auth: Option<AuthFile>,
}

impl FileConfig {
    /// Reads and parses a TOML config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_path_buf(), source })
    }
}

/// Limits on HTTP connections, enforced by [`crate::serve`].
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub connections_max: usize,
    pub header_read_timeout: Duration,
    pub header_bytes_max: usize,
    pub idle_timeout: Duration,
}

/// The background compactor's settings (see `docs/OPERATIONS.md`, Compaction).
#[derive(Debug, Clone, PartialEq)]
pub struct CompactionSettings {
    pub check_interval: Duration,
    pub dirty_ratio: f64,
    /// `None`: unlimited.
    pub io_bytes_per_sec: Option<u64>,
}

impl CompactionSettings {
    fn resolve(cli: &Cli, file: &FileConfig) -> Result<Self, ConfigError> {
        let interval = cli
            .compaction_check_interval_ms
            .or(file.compaction_check_interval_ms)
            .unwrap_or(COMPACTION_CHECK_INTERVAL_MS_DEFAULT);
        if interval == 0 {
            return Err(invalid("compaction_check_interval_ms", "must be at least 1".into()));
        }
        let dirty_ratio = cli
            .compaction_dirty_ratio
            .or(file.compaction_dirty_ratio)
            .unwrap_or(cairn_storage::compaction::COMPACTION_DIRTY_RATIO_DEFAULT);
        if !(0.0..=1.0).contains(&dirty_ratio) {
            return Err(invalid("compaction_dirty_ratio", "must be between 0 and 1".into()));
        }
        let rate = cli
            .compaction_io_bytes_per_sec
            .or(file.compaction_io_bytes_per_sec)
            .unwrap_or(COMPACTION_IO_BYTES_PER_SEC_DEFAULT);
        Ok(CompactionSettings {
            check_interval: Duration::from_millis(interval),
            dirty_ratio,
            io_bytes_per_sec: (rate > 0).then_some(rate),
        })
    }
}

/// Authentication settings (see `crate::auth`); no tokens means anonymous access.
#[derive(Debug, Clone, Default)]
pub struct AuthSettings {
    pub tokens: Tokens,
    pub metrics_open: bool,
}

/// The listener's certificate chain and key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The server's complete configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    pub data_dir: PathBuf,
    pub auto_create_topics: bool,
    pub body_bytes_max: usize,
    pub idempotency_window: Duration,
    pub connections: ConnectionLimits,
    pub shutdown_grace: Duration,
    pub retention_check_interval: Duration,
    pub compaction: CompactionSettings,
    pub writer_threads: usize,
    pub log: String,
    pub auth: AuthSettings,
    /// Listen on a non-loopback address without tokens (protected mode off).
    pub allow_anonymous: bool,
    pub tls: Option<TlsFiles>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        // An empty CLI and no file: every default; cannot fail.
        ServerConfig::resolve(Cli::default(), FileConfig::default()).unwrap_or_else(|e| unreachable!("{e}"))
    }
}

impl ServerConfig {
    /// Parses the process's flags and environment, then reads the config file if one is named.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_cli(Cli::parse())
    }

    /// Reads the config file `cli` names (if any) and merges.
    pub fn from_cli(cli: Cli) -> Result<Self, ConfigError> {
        let file = match &cli.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        Self::resolve(cli, file)
    }

    /// Merges flags/environment over the file over the defaults, and checks the result.
    pub fn resolve(cli: Cli, file: FileConfig) -> Result<Self, ConfigError> {
        let auto_create_topics = if cli.no_auto_create_topics {
            false
        } else {
            cli.auto_create_topics.or(file.auto_create_topics).unwrap_or(true)
        };
        let body_bytes_max = cli.body_bytes_max.or(file.body_bytes_max).unwrap_or(BODY_BYTES_MAX_DEFAULT);
        if body_bytes_max < BODY_BYTES_MAX_MIN {
            return Err(invalid("body_bytes_max", format!("must be at least {BODY_BYTES_MAX_MIN}")));
        }
        let header_bytes_max = cli.header_bytes_max.or(file.header_bytes_max).unwrap_or(HEADER_BYTES_MAX_DEFAULT);
        if header_bytes_max < HEADER_BYTES_MAX_MIN {
            return Err(invalid("header_bytes_max", format!("must be at least {HEADER_BYTES_MAX_MIN}")));
        }
        let connections_max = cli.connections_max.or(file.connections_max).unwrap_or(CONNECTIONS_MAX_DEFAULT);
        if connections_max == 0 || connections_max > u32::MAX as usize {
            return Err(invalid("connections_max", "must be between 1 and 2^32-1".into()));
        }
        let ms = |name: &'static str, flag: Option<u64>, file: Option<u64>, default: u64| match flag.or(file) {
            Some(0) => Err(invalid(name, "must be at least 1".into())),
            v => Ok(Duration::from_millis(v.unwrap_or(default))),
        };
        let writer_threads =
            cli.writer_threads.or(file.writer_threads).unwrap_or(cairn_storage::WRITER_THREADS_DEFAULT);
        if writer_threads == 0 {
            return Err(invalid("writer_threads", "must be at least 1".into()));
        }
        let compaction = CompactionSettings::resolve(&cli, &file)?;
        let auth_file = file.auth.unwrap_or_default();
        let auth = AuthSettings {
            tokens: crate::auth::settings::tokens(&auth_file.tokens).map_err(|r| invalid("auth.tokens", r))?,
            metrics_open: cli.metrics_open.or(auth_file.metrics_open).unwrap_or(false),
        };
        let tls = match (cli.tls_cert.or(file.tls_cert), cli.tls_key.or(file.tls_key)) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(invalid("tls_cert", "tls_cert and tls_key go together: set both or neither".into())),
        };
        Ok(ServerConfig {
            listen: cli.listen.or(file.listen).unwrap_or_else(|| LISTEN_DEFAULT.to_string()),
            data_dir: cli.data_dir.or(file.data_dir).unwrap_or_else(|| PathBuf::from(DATA_DIR_DEFAULT)),
            auto_create_topics,
            body_bytes_max: usize::try_from(body_bytes_max)
                .map_err(|_| invalid("body_bytes_max", "too large for this platform".into()))?,
            idempotency_window: ms(
                "idempotency_window_ms",
                cli.idempotency_window_ms,
                file.idempotency_window_ms,
                IDEMPOTENCY_WINDOW_MS_DEFAULT,
            )?,
            connections: ConnectionLimits {
                connections_max,
                header_read_timeout: ms(
                    "header_read_timeout_ms",
                    cli.header_read_timeout_ms,
                    file.header_read_timeout_ms,
                    HEADER_READ_TIMEOUT_MS_DEFAULT,
                )?,
                header_bytes_max,
                idle_timeout: ms(
                    "idle_timeout_ms",
                    cli.idle_timeout_ms,
                    file.idle_timeout_ms,
                    IDLE_TIMEOUT_MS_DEFAULT,
                )?,
            },
            shutdown_grace: ms(
                "shutdown_grace_ms",
                cli.shutdown_grace_ms,
                file.shutdown_grace_ms,
                SHUTDOWN_GRACE_MS_DEFAULT,
            )?,
            retention_check_interval: ms(
                "retention_check_interval_ms",
                cli.retention_check_interval_ms,
                file.retention_check_interval_ms,
                RETENTION_CHECK_INTERVAL_MS_DEFAULT,
            )?,
            compaction,
            writer_threads,
            log: cli.log.or(file.log).unwrap_or_else(|| "info".to_string()),
            auth,
            allow_anonymous: cli.allow_anonymous || file.allow_anonymous.unwrap_or(false),
            tls,
        })
    }
}

fn invalid(name: &'static str, reason: String) -> ConfigError {
    ConfigError::Invalid { name, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_protected_mode_and_tls_settings() {
        let c = ServerConfig::default();
        assert!(c.auth.tokens.is_empty() && !c.auth.metrics_open && !c.allow_anonymous && c.tls.is_none());
        let hash = crate::auth::TokenHash::of("s").to_hex();
        let file: FileConfig = toml::from_str(&format!(
            "allow_anonymous = true\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n[auth]\nmetrics_open = true\n\
             [[auth.tokens]]\nname = \"ops\"\nsha256 = \"{hash}\"\nscopes = [\"admin\"]\n"
        ))
        .unwrap();
        let cli = Cli::try_parse_from(["cairnd", "--metrics-open", "false"]).unwrap();
        let c = ServerConfig::resolve(cli, file).unwrap();
        assert_eq!(c.auth.tokens.len(), 1);
        assert!(!c.auth.metrics_open && c.allow_anonymous);
        assert_eq!(c.tls, Some(TlsFiles { cert: "c.pem".into(), key: "k.pem".into() }));
        let cli = Cli::try_parse_from(["cairnd", "--tls-cert", "c.pem"]).unwrap();
        assert!(ServerConfig::resolve(cli, FileConfig::default()).is_err());
        let cli = Cli::try_parse_from(["cairnd", "--allow-anonymous"]).unwrap();
        assert!(ServerConfig::resolve(cli, FileConfig::default()).unwrap().allow_anonymous);
        let bad: FileConfig =
            toml::from_str("[[auth.tokens]]\nname = \"x\"\nsha256 = \"00\"\nscopes = [\"admin\"]").unwrap();
        assert!(ServerConfig::resolve(Cli::default(), bad).is_err());
    }

    #[test]
    fn defaults() {
        let c = ServerConfig::default();
        assert_eq!(c.listen, "127.0.0.1:7420");
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(c.auto_create_topics);
        assert_eq!(c.body_bytes_max, 32 * 1024 * 1024);
        assert_eq!(c.idempotency_window, Duration::from_secs(120));
    }

    #[test]
    fn flags_override_file_override_defaults() {
        let file: FileConfig = toml::from_str(
            "listen = \"0.0.0.0:1\"\ndata_dir = \"/f\"\nauto_create_topics = false\nbody_bytes_max = 4096",
        )
        .unwrap();
        let cli = Cli::try_parse_from(["cairnd", "--listen", "127.0.0.1:0"]).unwrap();
        let c = ServerConfig::resolve(cli, file).unwrap();
        assert_eq!(c.listen, "127.0.0.1:0");
        assert_eq!(c.data_dir, PathBuf::from("/f"));
        assert!(!c.auto_create_topics);
        assert_eq!(c.body_bytes_max, 4096);
    }

    #[test]
    fn no_auto_create_flag_wins() {
        let file: FileConfig = toml::from_str("auto_create_topics = true").unwrap();
        let cli = Cli::try_parse_from(["cairnd", "--no-auto-create-topics"]).unwrap();
        assert!(!ServerConfig::resolve(cli, file).unwrap().auto_create_topics);
    }

    #[test]
    fn compaction_settings() {
        let c = ServerConfig::default();
        assert_eq!(c.compaction.dirty_ratio, 0.5);
        assert_eq!(c.compaction.io_bytes_per_sec, Some(64 * 1024 * 1024));
        let file: FileConfig =
            toml::from_str("compaction_dirty_ratio = 0.25\ncompaction_io_bytes_per_sec = 0").unwrap();
        let c = ServerConfig::resolve(Cli::default(), file).unwrap();
        assert_eq!((c.compaction.dirty_ratio, c.compaction.io_bytes_per_sec), (0.25, None));
        let cli = Cli::try_parse_from(["cairnd", "--compaction-dirty-ratio", "1.5"]).unwrap();
        assert!(ServerConfig::resolve(cli, FileConfig::default()).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(toml::from_str::<FileConfig>("nonsense = 1").is_err());
        let cli = Cli::try_parse_from(["cairnd", "--idle-timeout-ms", "0"]).unwrap();
        assert!(ServerConfig::resolve(cli, FileConfig::default()).is_err());
        let cli = Cli::try_parse_from(["cairnd", "--header-bytes-max", "100"]).unwrap();
        assert!(ServerConfig::resolve(cli, FileConfig::default()).is_err());
    }
}
