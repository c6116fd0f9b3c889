//! The command line: every subcommand, flag and help text of `cairn`, as clap derive types.
//!
//! Online commands talk to a running `cairnd` at `--url`; offline commands (`verify`, `dump`,
//! `compact --data-dir`) open a stopped server's data directory. Parsing is all this module
//! does: the commands themselves live in `commands/` and `offline/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Help heading of the options every command takes.
const GLOBAL: &str = "Global options";

/// Default server address, also the default of `cairnd --listen`.
pub const URL_DEFAULT: &str = "http://127.0.0.1:7420";

const ABOUT: &str = "cairn: command-line tool for the Cairn message store (cairnd).

Online commands talk to a running cairnd over HTTP or HTTPS (--url, env CAIRN_URL), with
a bearer token when the server wants one (--token, env CAIRN_TOKEN).
Offline commands (verify, dump, compact --data-dir) work on the data directory of a
stopped server and refuse to run while a server holds its lock.";

const AFTER_HELP: &str = "Examples:
  cairn topics create orders --partitions 3
  echo '{\"id\": 1}' | cairn produce orders --key user-42
  cairn consume orders --from earliest --follow
  cairn consume orders --group billing --max-messages 10
  cairn tail orders --from latest
  cairn groups describe billing
  cairn bench --messages 100000 --size 256 --batch 100 --connections 4
  cairn verify --data-dir ./data
  cairn dump --data-dir ./data --topic orders --records --json

Exit codes: 0 success; 1 failure (a request failed, damage found, data directory locked);
2 usage error; 130 stopped by Ctrl-C. More: docs/OPERATIONS.md, \"The cairn command line\".";

/// `cairn`: the command-line tool of the Cairn message store.
#[derive(Debug, Parser)]
#[command(name = "cairn", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// Server of online commands: http://HOST:PORT or https://HOST:PORT (a bare HOST:PORT means http).
    #[arg(long, global = true, env = "CAIRN_URL", default_value = URL_DEFAULT, help_heading = GLOBAL)]
    pub url: String,
    /// Bearer token for a server with authentication (sent as `Authorization: Bearer`).
    #[arg(long, global = true, env = "CAIRN_TOKEN", hide_env_values = true, help_heading = GLOBAL)]
    pub token: Option<String>,
    /// Extra CA certificate(s) to trust for an https:// --url (PEM file; e.g. a self-signed cert).
    #[arg(long, global = true, env = "CAIRN_CA_CERT", value_name = "PATH", help_heading = GLOBAL)]
    pub ca_cert: Option<PathBuf>,
    /// Machine-readable JSON output instead of tables (NDJSON, one message per line, for consume).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, describe and delete topics.
    #[command(
        subcommand,
        after_help = "Examples:
  cairn topics create orders --partitions 3
  cairn topics list
  cairn topics describe orders --json
  cairn topics alter orders --partitions 6
  cairn topics delete orders"
    )]
    Topics(TopicsCmd),
    /// Append messages from arguments or from standard input (one message per line).
    #[command(after_help = "Examples:
  cairn produce orders hello world            two messages
  cairn produce orders --key user-42 --header trace=abc '{\"total\": 12}'
  seq 1 1000 | cairn produce numbers          one message per line
  cairn produce events --value-format json < events.ndjson")]
    Produce(ProduceArgs),
    /// Read messages: a range, a live tail (--follow), or as a queue group (--group).
    #[command(after_help = "Examples:
  cairn consume orders                        everything stored, all partitions
  cairn consume orders --partition 0 --offset 100 --max-messages 10
  cairn consume orders --timestamp 1764000000000
  cairn consume orders --from latest --follow live tail over server-sent events
  cairn consume orders --group billing        lease, print and acknowledge")]
    Consume(ConsumeArgs),
    /// Follow a topic: `consume --follow`, with the same flags (new messages as they arrive).
    #[command(after_help = "Examples:
  cairn tail orders                           everything stored, then each new message
  cairn tail orders --from latest             only new messages
  cairn tail orders --group billing           lease, print and acknowledge, waiting for more")]
    Tail(ConsumeArgs),
    /// Consumer groups: list, describe, reset, delete.
    #[command(
        subcommand,
        after_help = "Examples:
  cairn groups list
  cairn groups describe billing
  cairn groups config billing --max-deliveries 3
  cairn groups reset billing --topic orders --to-earliest
  cairn groups delete billing"
    )]
    Groups(GroupsCmd),
    /// Compact a topic now (online), or a stopped server's topic (--data-dir).
    #[command(after_help = "Examples:
  cairn compact orders
  cairn compact --data-dir ./data --topic orders   (offline, server stopped)")]
    Compact(CompactArgs),
    /// Check every batch CRC, offset and index entry of a stopped server's data directory.
    #[command(after_help = "Examples:
  cairn verify --data-dir ./data
  cairn verify --data-dir ./data --deep --json
  cairn verify --data-dir ./data --repair             cut torn tails, rebuild indexes
  cairn verify --data-dir ./data --repair --force     also cut out damaged batches in the middle

A compaction swap interrupted by a crash (manifest <base>.swap present) is checked as the server
will complete it at open; --repair completes it first.

Exit status: 0 if everything is intact (or was repaired), 1 if damage was found (each damaged
file is printed with the byte position), 2 on a usage error.")]
    Verify(VerifyArgs),
    /// Print segments, indexes and batches of a stopped server's data directory.
    #[command(after_help = "Examples:
  cairn dump --data-dir ./data
  cairn dump --data-dir ./data --topic orders --partition 0 --records
  cairn dump --data-dir ./data --json | jq .")]
    Dump(DumpArgs),
    /// Produce and consume load against a server, with a latency summary.
    #[command(after_help = "Examples:
  cairn bench                                    100,000 messages of 100 bytes, produce then consume
  cairn bench --messages 1000000 --size 1024 --batch 500 --connections 8
  cairn bench --duration 30 --mode produce")]
    Bench(BenchArgs),
}

#[derive(Debug, Subcommand)]
pub enum TopicsCmd {
    /// Create a topic.
    #[command(
        after_help = "Example:\n  cairn topics create orders --partitions 3 --retention-ms 86400000 --compression zstd"
    )]
    Create(TopicCreateArgs),
    /// List topics with their sizes.
    #[command(after_help = "Examples:\n  cairn topics list\n  cairn topics list --json | jq -r '.topics[].name'")]
    List,
    /// Show a topic's configuration and partitions.
    #[command(after_help = "Examples:\n  cairn topics describe orders\n  cairn topics describe orders --json")]
    Describe {
        /// Topic name.
        topic: String,
    },
    /// Change a topic's configuration (partitions may only grow); only the flags given change.
    #[command(after_help = "Examples:
  cairn topics alter orders --partitions 6
  cairn topics alter orders --retention-ms unlimited --retention-bytes 10737418240
  cairn topics alter orders --sync 50

Messages already stored keep their partition; new keyed messages hash over the new count.")]
    Alter(TopicCreateArgs),
    /// Delete a topic and its data.
    #[command(
        after_help = "Example:\n  cairn topics delete orders\n\nExit status 1 (topic_not_found) if it does not exist."
    )]
    Delete {
        /// Topic name.
        topic: String,
    },
}

#[derive(Debug, Args)]
pub struct TopicCreateArgs {
    /// Topic name: 1-249 characters of [A-Za-z0-9._-].
    pub name: String,
    /// Number of partitions [server default: 1].
    #[arg(long, short)]
    pub partitions: Option<u32>,
    /// Retention by age in ms, or "unlimited" [server default: 604800000, 7 days].
    #[arg(long, value_parser = parse_limit)]
    pub retention_ms: Option<Limit>,
    /// Retention by size in bytes per partition, or "unlimited" [server default: unlimited].
    #[arg(long, value_parser = parse_limit)]
    pub retention_bytes: Option<Limit>,
    /// Segment size in bytes, at least 4096 [server default: 134217728, 128 MiB].
    #[arg(long)]
    pub segment_bytes: Option<u64>,
    /// What happens to old data: deleted by retention, or compacted by key [server default: delete].
    #[arg(long, value_enum)]
    pub cleanup_policy: Option<CleanupPolicyArg>,
    /// Compression of stored batches [server default: none].
    #[arg(long, value_enum)]
    pub compression: Option<CompressionArg>,
    /// "always" (fdatasync before each reply) or an interval in ms [server default: always].
    #[arg(long, value_parser = parse_sync)]
    pub sync: Option<SyncArg>,
    /// Largest message (key + value + headers) in bytes [server default: 1048576, 1 MiB].
    #[arg(long)]
    pub max_message_bytes: Option<u64>,
}

/// A retention limit: a number or unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Unlimited,
    Value(u64),
}

fn parse_limit(s: &str) -> Result<Limit, String> {
    match s {
        "unlimited" | "none" | "null" => Ok(Limit::Unlimited),
        _ => s.parse().map(Limit::Value).map_err(|_| format!("expected a number or \"unlimited\", got {s:?}")),
    }
}

/// A topic's sync policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncArg {
    Always,
    IntervalMs(u64),
}

fn parse_sync(s: &str) -> Result<SyncArg, String> {
    if s == "always" {
        return Ok(SyncArg::Always);
    }
    s.parse().map(SyncArg::IntervalMs).map_err(|_| format!("expected \"always\" or an interval in ms, got {s:?}"))
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CleanupPolicyArg {
    Delete,
    Compact,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CompressionArg {
    None,
    Zstd,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Topic (created with defaults if missing, unless the server forbids it).
    pub topic: String,
    /// Message values; without any, standard input is read, one message per line.
    pub values: Vec<String>,
    /// Key of every message (same key, same partition).
    #[arg(long, short)]
    pub key: Option<String>,
    /// A header on every message, as name=value (repeatable).
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Partition of every message (default: by key hash, else spread).
    #[arg(long, short)]
    pub partition: Option<u32>,
    /// How values are sent: raw bytes (stored exactly) or JSON (stored as compact JSON text).
    #[arg(long, value_enum, default_value_t = ValueFormat::Raw)]
    pub value_format: ValueFormat,
    /// Messages per request when reading standard input.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected name=value, got {s:?}")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ValueFormat {
    Raw,
    Json,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic to read.
    pub topic: String,
    /// Read only this partition (default: all).
    #[arg(long, short)]
    pub partition: Option<u32>,
    /// Start at this offset of --partition (required with it, as in kafka-console-consumer: an
    /// offset means one partition's position).
    #[arg(long, requires = "partition", conflicts_with_all = ["from", "timestamp", "group"])]
    pub offset: Option<u64>,
    /// Start at the earliest or the latest offset [default: earliest, unlike kafka-console-consumer].
    #[arg(long, value_enum, conflicts_with_all = ["timestamp", "group"])]
    pub from: Option<FromArg>,
    /// Start at the first message with a timestamp (ms since the epoch) at or after this one.
    #[arg(long, conflicts_with = "group")]
    pub timestamp: Option<i64>,
    /// Keep reading new messages as they arrive (server-sent events; queue mode: long-poll).
    #[arg(long, short)]
    pub follow: bool,
    /// Consume as queue group G: lease messages, print them, acknowledge them.
    #[arg(long, short)]
    pub group: Option<String>,
    /// Lease only, do not acknowledge (messages are delivered again after the ack timeout).
    #[arg(long, requires = "group")]
    pub no_ack: bool,
    /// Stop after this many messages [default: no limit].
    #[arg(long, short = 'n')]
    pub max_messages: Option<u64>,
    /// Messages per request.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FromArg {
    Earliest,
    Latest,
}

#[derive(Debug, Subcommand)]
pub enum GroupsCmd {
    /// List groups.
    #[command(after_help = "Examples:\n  cairn groups list\n  cairn groups list --json")]
    List,
    /// Show a group's configuration and its position, lag and leases per partition.
    #[command(after_help = "Examples:\n  cairn groups describe billing\n  cairn groups describe billing --json")]
    Describe {
        /// Group name.
        group: String,
    },
    /// Change a group's settings (PUT /v1/groups/{group}); only the flags given change.
    #[command(after_help = "Examples:
  cairn groups config billing --ack-timeout-ms 60000 --max-deliveries 3
  cairn groups config billing --dead-letter-topic billing-failed
  cairn groups config billing --ordered true --start latest

The group is created if it does not exist (with the defaults for what is not given).")]
    Config(GroupConfigArgs),
    /// Move a group's committed offset (replay or skip), clearing acks and leases above it.
    #[command(after_help = "Examples:
  cairn groups reset billing --topic orders --to-earliest
  cairn groups reset billing --topic orders --to-offset 100 --partitions 0,2
  cairn groups reset billing --topic orders --to-timestamp 1764000000000")]
    Reset(GroupResetArgs),
    /// Delete a group.
    #[command(
        after_help = "Example:\n  cairn groups delete billing\n\nExit status 1 (group_not_found) if it does not exist."
    )]
    Delete {
        /// Group name.
        group: String,
    },
}

#[derive(Debug, Args)]
pub struct GroupConfigArgs {
    /// Group name.
    pub group: String,
    /// Where the group begins in a topic it has not read yet [server default: earliest].
    #[arg(long, value_enum)]
    pub start: Option<FromArg>,
    /// How long a leased message may go unacknowledged before it is delivered again, in ms
    /// [server default: 30000].
    #[arg(long)]
    pub ack_timeout_ms: Option<u64>,
    /// Deliveries before a message is dead-lettered; 0 = never [server default: 5].
    #[arg(long)]
    pub max_deliveries: Option<u64>,
    /// Topic dead letters go to, or "default" for <topic>.dlq [server default: default].
    #[arg(long, value_name = "TOPIC")]
    pub dead_letter_topic: Option<String>,
    /// One consumer at a time per partition, in offset order [server default: false].
    #[arg(long, value_name = "BOOL", value_parser = clap::value_parser!(bool))]
    pub ordered: Option<bool>,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("to").required(true))]
pub struct GroupResetArgs {
    /// Group name.
    pub group: String,
    /// Topic whose position is moved.
    #[arg(long, short)]
    pub topic: String,
    /// Move to the start of each partition.
    #[arg(long, group = "to")]
    pub to_earliest: bool,
    /// Move to the end of each partition (skip everything stored).
    #[arg(long, group = "to")]
    pub to_latest: bool,
    /// Move to this offset.
    #[arg(long, group = "to")]
    pub to_offset: Option<u64>,
    /// Move to the first message at or after this time (ms since the epoch).
    #[arg(long, group = "to")]
    pub to_timestamp: Option<i64>,
    /// Only these partitions (comma separated; default: all).
    #[arg(long, value_delimiter = ',')]
    pub partitions: Vec<u32>,
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    /// Topic to compact.
    #[arg(required_unless_present = "topic_flag", conflicts_with = "topic_flag")]
    pub topic: Option<String>,
    /// Topic to compact (same as the positional argument).
    #[arg(long = "topic", short = 't', id = "topic_flag", value_name = "TOPIC")]
    pub topic_flag: Option<String>,
    /// Compact offline in this data directory (the server must be stopped) [default: online, through --url].
    #[arg(long, short)]
    pub data_dir: Option<PathBuf>,
}

impl CompactArgs {
    /// The topic, whichever way it was given.
    pub fn topic(&self) -> &str {
        self.topic.as_deref().or(self.topic_flag.as_deref()).unwrap_or_default()
    }
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Data directory of a stopped server.
    #[arg(long, short)]
    pub data_dir: PathBuf,
    /// Only this topic [default: every topic].
    #[arg(long, short)]
    pub topic: Option<String>,
    /// Also decode every record (decompressing zstd batches), not only CRCs and headers.
    #[arg(long)]
    pub deep: bool,
    /// Complete interrupted compaction swaps, cut torn tails, rebuild damaged or missing indexes.
    #[arg(long)]
    pub repair: bool,
    /// With --repair: also cut out damaged data in the middle of a log (loses it; shown first).
    #[arg(long, requires = "repair")]
    pub force: bool,
    /// List every problem even when there are many (default: the first 100).
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Data directory of a stopped server.
    #[arg(long, short)]
    pub data_dir: PathBuf,
    /// Only this topic.
    #[arg(long, short)]
    pub topic: Option<String>,
    /// Only this partition.
    #[arg(long, short)]
    pub partition: Option<u32>,
    /// Only the segment with this base offset.
    #[arg(long)]
    pub segment: Option<u64>,
    /// Decode and print every record.
    #[arg(long)]
    pub records: bool,
    /// Do not print index entries.
    #[arg(long)]
    pub no_indexes: bool,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Topic to use (default: a new topic cairn-bench-<time>, deleted afterwards).
    #[arg(long, short)]
    pub topic: Option<String>,
    /// Keep the topic afterwards.
    #[arg(long)]
    pub keep: bool,
    /// What to run.
    #[arg(long, value_enum, default_value_t = BenchMode::Both)]
    pub mode: BenchMode,
    /// Messages to produce (or to consume in consume mode).
    #[arg(long, short = 'n', default_value_t = 100_000)]
    pub messages: u64,
    /// Value size in bytes.
    #[arg(long, short, default_value_t = 100)]
    pub size: usize,
    /// Messages per produce request.
    #[arg(long, short, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch: u32,
    /// Concurrent connections (requests in flight).
    #[arg(long, short, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub connections: u32,
    /// Stop each phase after this many seconds even if not all messages are done [default: no limit].
    #[arg(long, short)]
    pub duration: Option<u64>,
    /// Partitions of a topic the bench creates (default: one per connection).
    #[arg(long)]
    pub partitions: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchMode {
    Produce,
    Consume,
    Both,
}
