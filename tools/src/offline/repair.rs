//! `cairn verify --repair`: fix what a check found, never silently losing acknowledged data.
//!
//! - A torn tail (a bad batch with nothing good after it in the partition, in a directory the
//!   server did not shut down cleanly) is cut off, as the server would at open: the file is
//!   truncated and fsynced, and the partition's later, empty segments are removed. Those
//!   bytes were never acknowledged. After a clean shutdown a bad last batch is corruption.
//! - A power-loss tail (a bad batch followed by good data in a partition's last segment, in
//!   a directory the server did not shut down cleanly) is cut at the bad batch as the server's
//!   open would: the bytes from there are first copied, durably, to a quarantine file
//!   `<segment>.log.cut-<position>`, then the file is truncated (docs/FORMAT.md §6).
//! - Damaged or missing index files are rebuilt from the log, by the engine's rule (an entry
//!   for each batch at least `INDEX_INTERVAL_BYTES` past the previous one; a time entry with
//!   it when the timestamp grows), written aside and renamed into place. The engine would
//!   also rebuild them at open after a crash; rebuilding here makes `verify` pass afterwards.
//! - Damage in the middle (good data follows) is only cut out with `--force`: the segment is
//!   rewritten without the damaged byte ranges (`<segment>.log.tmp`, fsync, rename, directory
//!   fsync; a crash leaves either file, and the server removes `*.tmp` at open). The offsets
//!   in those ranges become a gap. Without `--force` the loss is printed and nothing is cut.
//! - First of all, a committed compaction swap interrupted by a crash is completed, as the
//!   server's open does (see [`complete_swaps`]).
//! - Anything else (records that do not decode, overlapping segments, a bad `topic.json`)
//!   is reported as not repairable.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use cairn_storage::fsutil;
use serde::Serialize;

use super::report::{Kind, Report};
use super::verify::{describe_loss, power_loss_tail, PartitionDetail};
use cairn_storage::inspect::{self as walk, LogFile, SegmentFiles};

/// Bytes copied at once when a segment is rewritten.
const COPY_CHUNK_BYTES: usize = 4 * 1024 * 1024;

/// One thing to do.
#[derive(Debug, Clone)]
enum Step {
    /// Truncate `log` to `at` bytes (first copying the bytes cut to a quarantine file if
    /// `quarantine`: a power-loss tail, cut as the server's open would).
    Truncate { seg: SegmentFiles, at: u64, len: u64, loss: String, force: bool, quarantine: bool },
    /// Rewrite `log` keeping only these byte ranges.
    CutOut { seg: SegmentFiles, keep: Vec<(u64, u64)>, loss: Vec<String> },
    /// Remove an empty segment's files.
    RemoveEmpty { seg: SegmentFiles },
    /// Rewrite the segment's two index files from its log.
    RebuildIndexes { seg: SegmentFiles },
    /// Damage this tool does not repair.
    Unrepairable { file: PathBuf, position: u64, message: String },
}

/// The ordered repairs for a data directory.
#[derive(Debug, Default)]
pub struct Plan {
    steps: Vec<Step>,
}

/// What happened to one step.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    pub action: &'static str,
    pub file: PathBuf,
    pub detail: String,
    /// `done`, `refused` (needs `--force`), `failed` or `not_repairable`.
    pub status: &'static str,
}

/// Completes the committed compaction swaps a crash interrupted (of one topic, or all), as
/// the server's open would before anything else, so that the repairs that follow act on the
/// segments the server will open. One [`Applied`] per swap.
pub fn complete_swaps(data_dir: &Path, topic: Option<&str>) -> anyhow::Result<Vec<Applied>> {
    let (topics, _) = walk::topics(data_dir)?;
    let mut out = Vec::new();
    for t in topics.iter().filter(|t| topic.is_none_or(|only| only == t.name)) {
        for (_, dir) in walk::partitions(t)? {
            let done = cairn_storage::compaction::complete_pending_swaps(&dir)
                .with_context(|| format!("completing the interrupted compaction swap in {}", dir.display()))?;
            for swap in done {
                let replaced: Vec<String> = swap.replaces.iter().map(u64::to_string).collect();
                out.push(Applied {
                    action: "complete compaction swap",
                    file: swap.manifest,
                    detail: format!(
                        "segment {} now replaces the segment(s) based at {} (as the server does at open)",
                        swap.base,
                        replaced.join(", ")
                    ),
                    status: "done",
                });
            }
        }
    }
    Ok(out)
}

/// Plans the repairs of everything `report` found.
pub fn plan(report: &Report, details: &[PartitionDetail]) -> Plan {
    let mut plan = Plan::default();
    for detail in details {
        plan_partition(&mut plan, detail);
    }
    for p in &report.problems {
        if matches!(p.kind, Kind::Records | Kind::Offsets | Kind::Config) {
            plan.steps.push(Step::Unrepairable {
                file: p.file.clone(),
                position: p.position,
                message: p.message.clone(),
            });
        }
    }
    plan
}

fn plan_partition(plan: &mut Plan, detail: &PartitionDetail) {
    let segs = &detail.segments;
    let mut rebuild: std::collections::BTreeSet<u64> = detail.rebuild_indexes.clone();
    let mut removed = std::collections::BTreeSet::new();
    for (i, (files, scan)) in segs.iter().enumerate() {
        if scan.damage.is_empty() || removed.contains(&files.base) {
            continue;
        }
        // Empty, or only a zero-filled tail (docs/FORMAT.md §2.1): no data.
        let later_empty = segs[i + 1..].iter().all(|(_, s)| s.batches == 0 && s.damage.is_empty());
        let next_base = segs.get(i + 1).map(|(f, _)| f.base);
        let loss: Vec<String> = scan.damage.iter().map(|d| describe_loss(d, next_base)).collect();
        rebuild.insert(files.base);
        if let Some(d) = power_loss_tail(detail, i) {
            plan.steps.push(Step::Truncate {
                seg: files.clone(),
                at: d.start,
                len: scan.len,
                loss: loss.join("; "),
                force: false,
                quarantine: true,
            });
            continue;
        }
        match scan.damage.as_slice() {
            [only] if only.end == scan.len => {
                let torn = only.resumes_at.is_none() && later_empty && detail.tail_may_be_torn;
                plan.steps.push(Step::Truncate {
                    seg: files.clone(),
                    at: only.start,
                    len: scan.len,
                    loss: loss.join("; "),
                    force: !torn,
                    quarantine: false,
                });
                if torn {
                    for (later, _) in &segs[i + 1..] {
                        removed.insert(later.base);
                        plan.steps.push(Step::RemoveEmpty { seg: later.clone() });
                    }
                }
            }
            damage => {
                let mut keep = Vec::new();
                let mut at = 0;
                for d in damage {
                    if d.start > at {
                        keep.push((at, d.start));
                    }
                    at = d.end;
                }
                // A zero-filled tail is not data: not kept.
                let data_end = scan.len - scan.zero_tail;
                if at < data_end {
                    keep.push((at, data_end));
                }
                plan.steps.push(Step::CutOut { seg: files.clone(), keep, loss });
            }
        }
    }
    for (files, _) in segs {
        if rebuild.contains(&files.base) && !removed.contains(&files.base) {
            plan.steps.push(Step::RebuildIndexes { seg: files.clone() });
        }
    }
}

/// Carries out the plan; steps that lose acknowledged data run only with `force`.
pub fn apply(plan: &Plan, force: bool, quiet: bool) -> anyhow::Result<Vec<Applied>> {
    let mut out = Vec::new();
    for step in &plan.steps {
        let (action, file, detail, needs_force) = describe(step);
        let status = if matches!(step, Step::Unrepairable { .. }) {
            "not_repairable"
        } else if needs_force && !force {
            "refused"
        } else {
            match run_step(step) {
                Ok(()) => "done",
                Err(e) => {
                    if !quiet {
                        eprintln!("error: {action} {}: {e:#}", file.display());
                    }
                    "failed"
                }
            }
        };
        out.push(Applied { action, file, detail, status });
    }
    Ok(out)
}

fn describe(step: &Step) -> (&'static str, PathBuf, String, bool) {
    match step {
        Step::Truncate { seg, at, len, loss, force, quarantine } => {
            let detail = if *force {
                format!("cut at byte {at}: {loss} (acknowledged data lost)")
            } else if *quarantine {
                format!(
                    "cut at byte {at}: a power-loss tail of {} byte(s), moved to the quarantine file {}",
                    len - at,
                    walk::cut_file_path(&seg.log, *at, 1).display()
                )
            } else {
                format!("cut at byte {at}: {} byte(s) of a torn write (never acknowledged)", len - at)
            };
            ("truncate", seg.log.clone(), detail, *force)
        }
        Step::CutOut { seg, loss, .. } => {
            ("cut out damaged data", seg.log.clone(), format!("{} (acknowledged data lost)", loss.join("; ")), true)
        }
        Step::RemoveEmpty { seg } => ("remove empty segment", seg.log.clone(), "after a torn tail".into(), false),
        Step::RebuildIndexes { seg } => {
            ("rebuild indexes", seg.index.clone(), format!("and {}", seg.timeindex.display()), false)
        }
        Step::Unrepairable { file, position, message } => {
            ("cannot repair", file.clone(), format!("at byte {position}: {message}"), false)
        }
    }
}

fn run_step(step: &Step) -> anyhow::Result<()> {
    match step {
        Step::Truncate { seg, at, quarantine, .. } => {
            if *quarantine {
                cairn_storage::quarantine_tail(&seg.log, *at)?;
            }
            truncate(&seg.log, *at)
        }
        Step::CutOut { seg, keep, .. } => rewrite(&seg.log, keep),
        Step::RemoveEmpty { seg } => {
            for p in [&seg.log, &seg.index, &seg.timeindex] {
                match fs::remove_file(p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).with_context(|| format!("remove {}", p.display())),
                }
            }
            sync_parent(&seg.log)
        }
        Step::RebuildIndexes { seg } => rebuild_indexes(seg),
        Step::Unrepairable { .. } => Ok(()),
    }
}

fn truncate(path: &Path, len: u64) -> anyhow::Result<()> {
    let f = OpenOptions::new().write(true).open(path).with_context(|| format!("open {}", path.display()))?;
    f.set_len(len).with_context(|| format!("truncate {}", path.display()))?;
    f.sync_all().with_context(|| format!("fsync {}", path.display()))
}

/// Rewrites `path` keeping only the byte ranges `keep`: written aside, synced, renamed over.
fn rewrite(path: &Path, keep: &[(u64, u64)]) -> anyhow::Result<()> {
    let tmp = fsutil::tmp_path(path);
    let result = (|| {
        let mut log = LogFile::open(path).with_context(|| format!("open {}", path.display()))?;
        let mut out = File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
        for &(start, end) in keep {
            let mut at = start;
            while at < end {
                let n = usize::try_from(end - at).unwrap_or(usize::MAX).min(COPY_CHUNK_BYTES);
                out.write_all(log.slice(at, n)?).with_context(|| format!("write {}", tmp.display()))?;
                at += n as u64;
            }
        }
        out.sync_all().with_context(|| format!("fsync {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("rename {} over {}", tmp.display(), path.display()))?;
        sync_parent(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes both index files of a segment from a fresh scan of its log, by the engine's rule.
fn rebuild_indexes(seg: &SegmentFiles) -> anyhow::Result<()> {
    walk::rebuild_sealed_indexes(seg)?;
    Ok(())
}

fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    Ok(fsutil::sync_dir(dir)?)
}

/// Prints what the repair did, one line per step.
pub fn print_applied(applied: &[Applied]) {
    if applied.is_empty() {
        outln!("nothing to repair");
        return;
    }
    let mut refused = false;
    for a in applied {
        let label = match a.status {
            "done" => "repaired:",
            "refused" => {
                refused = true;
                "NOT DONE (needs --force):"
            }
            "failed" => "FAILED:",
            _ => "cannot repair:",
        };
        outln!("{label} {} {}: {}", a.action, a.file.display(), a.detail);
    }
    if refused {
        outln!("Steps marked NOT DONE would lose acknowledged data; rerun with --repair --force to accept that loss.");
    }
}
