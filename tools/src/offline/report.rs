//! The result of `cairn verify`: problems (each with the damaged file and byte position),
//! notes, and a summary per partition; printed as text or JSON.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::table::{self, Table};

/// Problems listed before "… and N more" (unless `--all`).
const PROBLEMS_SHOWN_MAX: usize = 100;

/// What kind of damage a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A bad batch with nothing good after it in the partition: an unacknowledged write.
    TornTail,
    /// A bad batch with good data after it in the last segment after an unclean shutdown: a
    /// power loss tore the unsynced tail (the server cuts it at open, into a quarantine file).
    PowerLossTail,
    /// A bad batch with good data after it: acknowledged data is unreadable.
    Corruption,
    /// A batch whose CRC matches but whose records do not decode.
    Records,
    /// Segments whose offsets overlap.
    Offsets,
    /// An offset-index entry that disagrees with the log.
    Index,
    /// A time-index entry that disagrees with the log or the offset index.
    TimeIndex,
    /// An unreadable `topic.json`.
    Config,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::TornTail => "torn tail",
            Kind::PowerLossTail => "power-loss tail",
            Kind::Corruption => "CORRUPTION",
            Kind::Records => "bad records",
            Kind::Offsets => "offsets",
            Kind::Index => "index",
            Kind::TimeIndex => "time index",
            Kind::Config => "config",
        }
    }
}

/// One piece of damage.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub kind: Kind,
    pub file: PathBuf,
    /// Byte position in `file`.
    pub position: u64,
    pub message: String,
}

impl Problem {
    pub fn new(kind: Kind, file: PathBuf, position: u64, message: String) -> Self {
        Problem { kind, file, position, message }
    }
}

/// Something worth knowing that is not damage.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub file: PathBuf,
    pub message: String,
}

impl Note {
    pub fn new(file: PathBuf, message: impl Into<String>) -> Self {
        Note { file, message: message.into() }
    }
}

/// One partition's totals.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionSummary {
    pub topic: String,
    pub partition: u32,
    pub segments: u64,
    pub batches: u64,
    pub records: u64,
    pub bytes: u64,
    pub start_offset: Option<u64>,
    pub end_offset: u64,
    pub problems: usize,
}

/// Everything a check found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub data_dir: PathBuf,
    pub ok: bool,
    pub partitions: Vec<PartitionSummary>,
    pub problems: Vec<Problem>,
    pub notes: Vec<Note>,
}

impl Report {
    pub fn new(data_dir: &Path) -> Self {
        Report {
            data_dir: data_dir.to_path_buf(),
            ok: true,
            partitions: Vec::new(),
            problems: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Whether nothing is damaged.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// Prints the report (problems, notes, summary table) or its JSON.
    pub fn print(&self, json: bool, all: bool) -> anyhow::Result<()> {
        if json {
            let mut me = self.clone();
            me.ok = self.is_ok();
            return table::print_json(&me);
        }
        self.print_problems(all);
        for n in &self.notes {
            outln!("note: {}: {}", n.file.display(), n.message);
        }
        if !self.problems.is_empty() || !self.notes.is_empty() {
            outln!();
        }
        self.print_summary();
        outln!();
        if self.is_ok() {
            outln!("OK: {} partition(s) verified, no damage found", self.partitions.len());
        } else {
            let files: std::collections::BTreeSet<&PathBuf> = self.problems.iter().map(|p| &p.file).collect();
            outln!("DAMAGED: {} problem(s) in {} file(s)", self.problems.len(), files.len());
        }
        Ok(())
    }

    /// Prints one line per problem: `DAMAGED <file> at byte <n>: [<kind>] <message>`.
    pub fn print_problems(&self, all: bool) {
        let shown = if all { self.problems.len() } else { self.problems.len().min(PROBLEMS_SHOWN_MAX) };
        for p in &self.problems[..shown] {
            outln!("DAMAGED {} at byte {}: [{}] {}", p.file.display(), p.position, p.kind.label(), p.message);
        }
        if shown < self.problems.len() {
            outln!("… and {} more problem(s) (--all lists them)", self.problems.len() - shown);
        }
    }

    fn print_summary(&self) {
        let mut t = Table::new(&["TOPIC", "PARTITION", "SEGMENTS", "BATCHES", "MESSAGES", "SIZE", "OFFSETS", "STATUS"]);
        let mut totals = (0u64, 0u64, 0u64, 0u64);
        for p in &self.partitions {
            totals.0 += p.segments;
            totals.1 += p.batches;
            totals.2 += p.records;
            totals.3 += p.bytes;
            let offsets = match p.start_offset {
                Some(s) if p.end_offset > s => format!("{s}..{}", p.end_offset - 1),
                _ => "empty".into(),
            };
            t.row(vec![
                p.topic.clone(),
                p.partition.to_string(),
                table::count(p.segments),
                table::count(p.batches),
                table::count(p.records),
                table::bytes(p.bytes),
                offsets,
                if p.problems == 0 { "ok".into() } else { format!("DAMAGED ({})", p.problems) },
            ]);
        }
        if self.partitions.len() > 1 {
            t.row(vec![
                "total".into(),
                String::new(),
                table::count(totals.0),
                table::count(totals.1),
                table::count(totals.2),
                table::bytes(totals.3),
                String::new(),
                String::new(),
            ]);
        }
        if t.is_empty() {
            outln!("no topics in {}", self.data_dir.display());
        } else {
            t.print();
        }
    }
}
