//! `cairnd`: the Cairn server binary. Parses the configuration, sets up logging and hands
//! over to [`cairn_server::run`]; see `docs/OPERATIONS.md`.

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: a request allocates a few dozen small buffers,
/// and glibc's malloc/free took ~11 % of cairnd's CPU under single-message produce load
/// (docs/BENCHMARKS.md, profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let config = cairn_server::ServerConfig::from_env().context("invalid configuration")?;
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new(&config.log))
        .context("invalid log filter")?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("cairnd").build()?;
    runtime.block_on(cairn_server::run(config)).context("cairnd failed")?;
    Ok(())
}
