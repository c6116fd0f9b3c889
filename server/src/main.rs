//! `cairnd`: the Cairn server binary. Parses the configuration, sets up logging and hands
//! over to [`cairn_server::run`]; see `docs/OPERATIONS.md`. `cairnd hash-token` prints the
//! digest of a token for the config file (Security in `docs/OPERATIONS.md`).

use std::io::{BufRead as _, Write as _};

use anyhow::Context as _;
use clap::Parser as _;
use tracing_subscriber::EnvFilter;

use cairn_server::auth::token::{generate, TokenHash};
use cairn_server::config::{Cli, Command};

/// jemalloc instead of glibc's malloc: cheaper per request (docs/ARCHITECTURE.md, dependencies);
/// its options are set at build time in `.cargo/config.toml`.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::HashToken { generate }) = &cli.command {
        return hash_token(*generate);
    }
    let config = cairn_server::ServerConfig::from_cli(cli).context("invalid configuration")?;
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new(&config.log))
        .context("invalid log filter")?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("cairnd").build()?;
    if let Err(e) = runtime.block_on(cairn_server::run(config)) {
        // One line: every `ServerError` message already carries its causes (printing the
        // source chain as well would repeat each of them).
        eprintln!("cairnd: {e}");
        std::process::exit(1);
    }
    Ok(())
}

/// `cairnd hash-token`: the SHA-256 of the first line of stdin (the token stays out of the
/// shell history and `ps`); with `--generate`, a new token, its digest and a config snippet.
fn hash_token(generate_new: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if generate_new {
        let token = generate().map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
        let hash = TokenHash::of(&token).to_hex();
        writeln!(out, "token:  {token}")?;
        writeln!(out, "sha256: {hash}")?;
        writeln!(out, "\n[[auth.tokens]]\nname = \"CHANGE-ME\"\nsha256 = \"{hash}\"\nscopes = [\"admin\"]")?;
        return Ok(());
    }
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the token from stdin")?;
    let token = line.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!token.is_empty(), "no token on stdin (try: printf %s \"$TOKEN\" | cairnd hash-token)");
    writeln!(out, "{}", TokenHash::of(token).to_hex())?;
    Ok(())
}
