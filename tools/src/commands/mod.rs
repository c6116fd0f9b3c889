//! The commands: dispatch from the parsed command line to one module per command.
//!
//! Online commands run on a tokio runtime made here; offline ones (in [`crate::offline`])
//! are plain synchronous code.

mod bench;
mod compact;
mod consume;
mod groups;
mod produce;
mod topics;

use crate::api::Api;
use crate::cli::{Cli, Command, ConsumeArgs};
use crate::offline;
use crate::outcome::Outcome;

/// Runs the command the user asked for.
pub fn run(cli: Cli) -> anyhow::Result<Outcome> {
    let json = cli.json;
    match cli.command {
        Command::Verify(args) => offline::verify::run(&args, json),
        Command::Dump(args) => offline::dump::run(&args, json),
        Command::Compact(args) if args.data_dir.is_some() => compact::run_offline(&args, json),
        command => {
            let api = Api::new(&cli.url, cli.token.as_deref(), cli.ca_cert.as_deref())?;
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            rt.block_on(online(api, command, json))
        }
    }
}

async fn online(api: Api, command: Command, json: bool) -> anyhow::Result<Outcome> {
    match command {
        Command::Topics(cmd) => topics::run(&api, cmd, json).await,
        Command::Produce(args) => produce::run(&api, args, json).await,
        Command::Consume(args) => consume::run(&api, args, json).await,
        Command::Tail(args) => consume::run(&api, ConsumeArgs { follow: true, ..args }, json).await,
        Command::Groups(cmd) => groups::run(&api, cmd, json).await,
        Command::Compact(args) => compact::run_online(&api, &args, json).await,
        Command::Bench(args) => bench::run(&api, args, json).await,
        Command::Verify(_) | Command::Dump(_) => unreachable_offline(),
    }
}

fn unreachable_offline() -> anyhow::Result<Outcome> {
    Err(anyhow::anyhow!("internal error: an offline command reached the online dispatcher"))
}
