//! `cairn verify`: check every segment of every partition of every topic of a stopped
//! server's data directory — each batch's header and CRC, offset order, the offset index and
//! the time index — and report each damaged file with the byte position of the damage.
//!
//! What counts as damage (exit status 1): a bad batch (a *torn tail* if nothing good follows
//! it in the partition and the server did not shut down cleanly — the rule recovery uses —;
//! a *power-loss tail* if good data follows it but it is the first damage of the partition's
//! last segment after an unclean shutdown: the server ends the log there, moving the rest to a
//! quarantine file; else *corruption*: acknowledged data), records that do
//! not decode (`--deep`), offsets going backwards, index or time-index entries that disagree
//! with the log, and an unreadable `topic.json`. What is only noted: missing index files and
//! leftovers of interrupted work (the server rebuilds or removes them at open), offset gaps
//! (left by compaction or an earlier forced repair), a damaged recovery point (read as 0),
//! quarantine files (`<segment>.log.cut-<position>`: bytes the server cut after a power loss,
//! kept for an operator),
//! and zeros from the last batch to the end of a log (the zero-filled space a crash leaves
//! ahead of the active segment's data, `docs/FORMAT.md` §2.1; the server cuts it at open).
//!
//! A committed compaction swap that a crash interrupted (its manifest `<base>.swap` is
//! present, `docs/FORMAT.md` §6) is completed by the server first thing at open, so the check
//! sees the partition as it will be then: the segments the swap replaces are left out and
//! the cleaned segment is checked from its `.swap` files (those not yet renamed into place);
//! the swap itself is a note. Uncommitted compaction output (`*.cleaned`, `.swap` files
//! without a manifest) is a leftover the open removes: the old segments are checked.
//!
//! With `--repair` the committed swaps are first completed (as the open would), then the
//! damage found is handed to [`super::repair`] and the directory is checked again
//! afterwards; the exit status is that of the second check.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use cairn_storage::format::{INDEX_ENTRY_LEN, TIMEINDEX_ENTRY_LEN};
use cairn_storage::DecodedBatch;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::report::{Kind, Note, PartitionSummary, Problem, Report};
use super::{lock_data_dir, repair};
use crate::cli::VerifyArgs;
use crate::outcome::Outcome;
use cairn_storage::inspect::{self as walk, Damage, LogFile, SegmentFiles, SegmentScan};

/// What a check of one partition keeps for repair.
#[derive(Debug)]
pub struct PartitionDetail {
    pub segments: Vec<(SegmentFiles, SegmentScan)>,
    /// Whether a bad batch at the very end may be a torn write: not after a clean shutdown
    /// (`.clean-shutdown` is written only once everything was synced), only after a crash.
    pub tail_may_be_torn: bool,
    /// Base offsets of segments whose index files are damaged or missing.
    pub rebuild_indexes: BTreeSet<u64>,
}

/// Options of one check.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions<'a> {
    pub topic: Option<&'a str>,
    pub deep: bool,
    pub progress: bool,
}

pub fn run(args: &VerifyArgs, json: bool) -> anyhow::Result<Outcome> {
    let _lock = lock_data_dir(&args.data_dir)?;
    let opts = CheckOptions { topic: args.topic.as_deref(), deep: args.deep, progress: !json };
    // Repairs act on the files as the server will open them: interrupted swaps completed.
    let swaps_completed = if args.repair { repair::complete_swaps(&args.data_dir, opts.topic)? } else { Vec::new() };
    let (report, details) = check(&args.data_dir, opts)?;
    if !args.repair {
        report.print(json, args.all)?;
        return Ok(if report.is_ok() { Outcome::Ok } else { Outcome::Failed });
    }
    let plan = repair::plan(&report, &details);
    let mut applied = swaps_completed;
    applied.extend(repair::apply(&plan, args.force, json)?);
    let (after, _) = check(&args.data_dir, opts)?;
    if json {
        crate::table::print_json(&serde_json::json!({
            "before": report, "repairs": applied, "after": after,
        }))?;
    } else {
        if !report.problems.is_empty() {
            outln!("before repair:");
            report.print_problems(args.all);
            outln!();
        }
        repair::print_applied(&applied);
        outln!();
        outln!("after repair:");
        after.print(false, args.all)?;
    }
    Ok(if after.is_ok() { Outcome::Ok } else { Outcome::Failed })
}

/// Checks the whole data directory (or one topic).
pub fn check(data_dir: &Path, opts: CheckOptions<'_>) -> anyhow::Result<(Report, Vec<PartitionDetail>)> {
    let mut report = Report::new(data_dir);
    let (mut topics, leftovers) = walk::topics(data_dir)?;
    for path in leftovers {
        report.notes.push(Note::new(path, "interrupted topic create or delete: the server removes it at open"));
    }
    if let Some(only) = opts.topic {
        topics.retain(|t| t.name == only);
        if topics.is_empty() {
            anyhow::bail!("no topic {only} in {}", data_dir.display());
        }
    }
    let mut work = Vec::new();
    for topic in &topics {
        if let Err(reason) = topic.config() {
            report.problems.push(Problem::new(
                Kind::Config,
                topic.config_path(),
                0,
                format!("unreadable topic config ({reason}): the server will not open"),
            ));
        }
        for (p, dir) in walk::partitions(topic)? {
            let listing = walk::list_segments(&dir)?;
            let segments = listing.segments_after_swaps();
            work.push((topic.name.clone(), p, dir, listing, segments));
        }
    }
    let total: u64 =
        work.iter().flat_map(|w| w.4.iter()).map(|s| std::fs::metadata(&s.log).map(|m| m.len()).unwrap_or(0)).sum();
    let bar = progress_bar(total, opts.progress);
    let mut details = Vec::new();
    for (topic, partition, dir, listing, segments) in work {
        for path in &listing.leftovers {
            report.notes.push(Note::new(path.clone(), "leftover of interrupted work: the server removes it at open"));
        }
        for swap in &listing.swaps {
            report.notes.push(Note::new(swap.manifest.clone(), swap_note(swap)));
        }
        for cut in &listing.cut_files {
            let bytes = std::fs::metadata(&cut.path).map(|m| m.len()).unwrap_or(0);
            report.notes.push(Note::new(
                cut.path.clone(),
                format!(
                    "quarantine file: {bytes} byte(s) the server cut from segment {} at byte {} after a power loss; \
                     not part of the log (inspect it with `cairn dump`, delete it once inspected: docs/OPERATIONS.md, \
                     \"Quarantine files\")",
                    cut.base, cut.position
                ),
            ));
        }
        let detail = check_partition(&mut report, &topic, partition, &dir, segments, opts, &bar)?;
        details.push(detail);
    }
    bar.finish_and_clear();
    Ok((report, details))
}

/// The note for a committed swap: what the open will do, and what was checked instead.
fn swap_note(swap: &walk::PendingSwap) -> String {
    let replaced: Vec<String> = swap.replaces.iter().map(u64::to_string).collect();
    let staged = swap.files_after();
    let staged = [&staged.index, &staged.timeindex, &staged.log]
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "interrupted compaction swap (committed): the server completes it at open; checked as it will be then: \
         segment {} from {staged}, replacing the segment(s) based at {} (`verify --repair` completes it now)",
        swap.base,
        replaced.join(", ")
    )
}

fn progress_bar(total: u64, visible: bool) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if !visible {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) = ProgressStyle::with_template("verify [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn check_partition(
    report: &mut Report,
    topic: &str,
    partition: u32,
    dir: &Path,
    segments: Vec<SegmentFiles>,
    opts: CheckOptions<'_>,
    bar: &ProgressBar,
) -> anyhow::Result<PartitionDetail> {
    let problems_before = report.problems.len();
    let clean = data_dir_of(dir).join(cairn_storage::format::CLEAN_SHUTDOWN_FILE).exists();
    let mut detail =
        PartitionDetail { segments: Vec::new(), tail_may_be_torn: !clean, rebuild_indexes: BTreeSet::new() };
    if let Err(reason) = walk::recovery_point(dir) {
        let path = dir.join(cairn_storage::format::RECOVERY_POINT_FILE);
        report.notes.push(Note::new(
            path,
            format!("damaged recovery point ({reason}): the server re-checks the partition at open"),
        ));
    }
    let mut prev_next: Option<u64> = None;
    for seg in segments {
        if let Some(prev) = prev_next.filter(|&prev| seg.base < prev) {
            report.problems.push(Problem::new(
                Kind::Offsets,
                seg.log.clone(),
                0,
                format!("segment starts at offset {} before the previous one ends ({prev})", seg.base),
            ));
        }
        let (scan, index_ok) = check_segment(report, &seg, opts.deep, bar)?;
        if !index_ok {
            detail.rebuild_indexes.insert(seg.base);
        }
        if let Some(prev) = prev_next.filter(|&prev| seg.base > prev) {
            report.notes.push(Note::new(
                seg.log.clone(),
                format!("offsets {prev}..{} are absent (a gap between segments)", seg.base - 1),
            ));
        }
        prev_next = Some(scan.next_offset);
        detail.segments.push((seg, scan));
    }
    classify_damage(report, &detail);
    let scans = detail.segments.iter().map(|(_, s)| s);
    report.partitions.push(PartitionSummary {
        topic: topic.to_string(),
        partition,
        segments: detail.segments.len() as u64,
        batches: scans.clone().map(|s| s.batches).sum(),
        records: scans.clone().map(|s| s.records).sum(),
        bytes: scans.clone().map(|s| s.len - s.zero_tail).sum(),
        start_offset: detail.segments.first().map(|(f, _)| f.base),
        end_offset: detail.segments.last().map_or(0, |(_, s)| s.next_offset),
        problems: report.problems.len() - problems_before,
    });
    Ok(detail)
}

/// Reports every damaged region of a partition's logs: the last one is a torn tail when
/// nothing good follows it anywhere in the partition; after an unclean shutdown the first one
/// of the last segment is a power-loss tail even when good data follows (the server ends the
/// log there, keeping the rest in a quarantine file: docs/FORMAT.md §6); the others are
/// corruption.
fn classify_damage(report: &mut Report, detail: &PartitionDetail) {
    let segs = &detail.segments;
    for (i, (files, scan)) in segs.iter().enumerate() {
        // Empty, or only a zero-filled tail (docs/FORMAT.md §2.1): no data.
        let later_empty = segs[i + 1..].iter().all(|(_, s)| s.batches == 0 && s.damage.is_empty());
        if let Some(d) = power_loss_tail(detail, i) {
            report.problems.push(Problem::new(
                Kind::PowerLossTail,
                files.log.clone(),
                d.start,
                format!(
                    "power-loss tail: {}, then valid data; the server ends the log here at open (offset {}) and \
                     moves bytes {}..{} ({} bytes) to the quarantine file {} (`verify --repair` does the same now)",
                    d.reason,
                    d.lost_from,
                    d.start,
                    scan.len,
                    scan.len - d.start,
                    walk::cut_file_path(&files.log, d.start, 1).display()
                ),
            ));
            continue;
        }
        for (j, d) in scan.damage.iter().enumerate() {
            let last_in_file = j + 1 == scan.damage.len() && d.end == scan.len && d.resumes_at.is_none();
            if last_in_file && later_empty && detail.tail_may_be_torn {
                report.problems.push(Problem::new(
                    Kind::TornTail,
                    files.log.clone(),
                    d.start,
                    format!(
                        "torn tail: {}; {} byte(s) after the last good batch (never acknowledged; the server \
                         cuts them at open, `verify --repair` cuts them now)",
                        d.reason,
                        d.end - d.start
                    ),
                ));
            } else {
                let next_base = segs.get(i + 1).map(|(f, _)| f.base);
                report.problems.push(Problem::new(
                    Kind::Corruption,
                    files.log.clone(),
                    d.start,
                    format!("{}; {} (data follows: not a torn tail)", d.reason, describe_loss(d, next_base)),
                ));
            }
        }
    }
}

/// The first damage of segment `i` if it is a power-loss tail, as the server's open decides
/// it: the partition's last segment, an unclean shutdown, and good data after the damage.
pub fn power_loss_tail(detail: &PartitionDetail, i: usize) -> Option<&Damage> {
    let (_, scan) = detail.segments.get(i)?;
    let first = scan.damage.first()?;
    (i + 1 == detail.segments.len() && detail.tail_may_be_torn && first.resumes_at.is_some()).then_some(first)
}

/// The data directory of a partition directory (`<data>/topics/<topic>/<p>`).
fn data_dir_of(partition_dir: &Path) -> &Path {
    partition_dir.ancestors().nth(3).unwrap_or(partition_dir)
}

/// What cutting out a damaged region loses, in bytes and offsets.
pub fn describe_loss(d: &Damage, next_segment_base: Option<u64>) -> String {
    let bytes = format!("bytes {}..{} ({} bytes)", d.start, d.end, d.end - d.start);
    match d.resumes_at.or(next_segment_base) {
        Some(resume) if resume > d.lost_from => format!("{bytes}, offsets {}..{} unreadable", d.lost_from, resume - 1),
        Some(_) => format!("{bytes} unreadable, no offsets"),
        None => format!("{bytes}, offsets from {} unreadable", d.lost_from),
    }
}

/// Scans one segment and checks its indexes. Returns the scan and whether its index files
/// are present and agree with the log.
fn check_segment(
    report: &mut Report,
    seg: &SegmentFiles,
    deep: bool,
    bar: &ProgressBar,
) -> anyhow::Result<(SegmentScan, bool)> {
    let index = walk::read_index_entries(&seg.index, INDEX_ENTRY_LEN)?;
    let time = walk::read_index_entries(&seg.timeindex, TIMEINDEX_ENTRY_LEN)?;
    let index_entries: Vec<(u32, u32)> =
        index.as_ref().map(|f| f.entries.iter().map(|e| walk::index_entry(e)).collect()).unwrap_or_default();
    let time_entries: Vec<(i64, u32)> =
        time.as_ref().map(|f| f.entries.iter().map(|e| walk::time_entry(e)).collect()).unwrap_or_default();
    // Positions and relative offsets the indexes name, filled in by the scan.
    let mut at_position: HashMap<u64, Option<u64>> = index_entries.iter().map(|&(_, p)| (u64::from(p), None)).collect();
    let mut at_relative: HashMap<u32, Option<i64>> = time_entries.iter().map(|&(_, r)| (r, None)).collect();
    let mut bad_records = Vec::new();
    let mut log = LogFile::open(&seg.log)?;
    let scan = walk::scan_segment(&mut log, seg.base, false, |pos, bytes, h| {
        bar.inc(h.total_len() as u64);
        if let Some(slot) = at_position.get_mut(&pos) {
            *slot = Some(h.base_offset);
        }
        if let Some(slot) = h
            .base_offset
            .checked_sub(seg.base)
            .and_then(|r| u32::try_from(r).ok())
            .and_then(|r| at_relative.get_mut(&r))
        {
            *slot = Some(h.first_timestamp);
        }
        if deep {
            let checked = DecodedBatch::trusting_crc(bytes, *h).and_then(|d| d.collect_checked().map(|_| ()));
            if let Err(e) = checked {
                bad_records.push((pos, e.to_string()));
            }
        }
    })?;
    bar.inc(scan.damage.iter().map(|d| d.end - d.start).sum());
    for (pos, reason) in bad_records {
        report.problems.push(Problem::new(
            Kind::Records,
            seg.log.clone(),
            pos,
            format!("records do not decode: {reason}"),
        ));
    }
    if scan.zero_tail > 0 {
        report.notes.push(Note::new(
            seg.log.clone(),
            format!(
                "{} zero byte(s) after the last batch (bytes {}..{}): space zero-filled ahead of the active segment's \
                 data, not data and not damage (the server cuts it at open)",
                scan.zero_tail,
                scan.len - scan.zero_tail,
                scan.len
            ),
        ));
    }
    for g in &scan.gaps {
        report.notes.push(Note::new(
            seg.log.clone(),
            format!(
                "offsets {}..{} are absent before byte {} (compaction or an earlier repair)",
                g.expected,
                g.found - 1,
                g.position
            ),
        ));
    }
    let mut ok = true;
    match &index {
        None => {
            report
                .notes
                .push(Note::new(seg.index.clone(), "missing: the server rebuilds it when it opens the partition"));
            ok = false;
        }
        Some(file) => {
            let problems = index_problems(seg, file, &index_entries, &at_position, scan.len);
            ok &= problems.is_empty();
            report.problems.extend(problems);
        }
    }
    match &time {
        None => {
            report
                .notes
                .push(Note::new(seg.timeindex.clone(), "missing: the server rebuilds it when it opens the partition"));
            ok = false;
        }
        Some(file) => {
            let indexed: HashSet<u32> = index_entries.iter().map(|&(r, _)| r).collect();
            let problems = time_problems(seg, file, &time_entries, &at_relative, &indexed);
            ok &= problems.is_empty();
            report.problems.extend(problems);
        }
    }
    Ok((scan, ok))
}

fn index_problems(
    seg: &SegmentFiles,
    file: &walk::IndexFileEntries,
    entries: &[(u32, u32)],
    at_position: &HashMap<u64, Option<u64>>,
    log_len: u64,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut problem = |i: usize, msg: String| {
        out.push(Problem::new(Kind::Index, seg.index.clone(), (i * INDEX_ENTRY_LEN) as u64, msg));
    };
    let mut prev: Option<(u32, u32)> = None;
    for (i, &(rel, pos)) in entries.iter().enumerate() {
        let pos64 = u64::from(pos);
        if rel == 0 || pos == 0 {
            problem(
                i,
                format!("invalid entry (relative offset {rel}, position {pos}): the first batch is never indexed"),
            );
        } else if prev.is_some_and(|(r, p)| rel <= r || pos <= p) {
            problem(i, format!("entry (relative offset {rel}, position {pos}) does not increase"));
        } else if pos64 >= log_len {
            problem(i, format!("entry points at byte {pos}, past the end of the log ({log_len} bytes)"));
        } else {
            match at_position.get(&pos64).copied().flatten() {
                None => problem(
                    i,
                    format!(
                        "no good batch starts at byte {pos} of the log (entry for offset {})",
                        seg.base + u64::from(rel)
                    ),
                ),
                Some(found) if found != seg.base + u64::from(rel) => problem(
                    i,
                    format!("the batch at byte {pos} has offset {found}, the entry says {}", seg.base + u64::from(rel)),
                ),
                Some(_) => {}
            }
        }
        prev = Some((rel, pos));
    }
    out.extend(layout_problems(Kind::Index, &seg.index, file));
    out
}

/// Problems with an index file's layout, beside its entries: a non-zero entry after the
/// zero that ends them, or a tail that is not a whole entry.
fn layout_problems(kind: Kind, path: &std::path::Path, file: &walk::IndexFileEntries) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Some(at) = file.stray_at {
        out.push(Problem::new(
            kind,
            path.to_path_buf(),
            at,
            "non-zero entry after the end of the index (after a zero entry)".into(),
        ));
    }
    if file.partial != 0 {
        let at = file.file_len - file.partial as u64;
        out.push(Problem::new(
            kind,
            path.to_path_buf(),
            at,
            format!("{} trailing bytes, not a whole entry", file.partial),
        ));
    }
    out
}

fn time_problems(
    seg: &SegmentFiles,
    file: &walk::IndexFileEntries,
    entries: &[(i64, u32)],
    at_relative: &HashMap<u32, Option<i64>>,
    indexed: &HashSet<u32>,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut problem = |i: usize, msg: String| {
        out.push(Problem::new(Kind::TimeIndex, seg.timeindex.clone(), (i * TIMEINDEX_ENTRY_LEN) as u64, msg));
    };
    let mut prev: Option<(i64, u32)> = None;
    for (i, &(ts, rel)) in entries.iter().enumerate() {
        if prev.is_some_and(|(t, r)| ts <= t || rel <= r) {
            problem(i, format!("entry (timestamp {ts}, relative offset {rel}) does not increase"));
        } else if !indexed.contains(&rel) {
            problem(i, format!("relative offset {rel} has no offset-index entry"));
        } else {
            match at_relative.get(&rel).copied().flatten() {
                None => problem(i, format!("no good batch has offset {}", seg.base + u64::from(rel))),
                Some(first_ts) if first_ts != ts => {
                    problem(i, format!("timestamp {ts} differs from the batch's first timestamp {first_ts}"))
                }
                Some(_) => {}
            }
        }
        prev = Some((ts, rel));
    }
    out.extend(layout_problems(Kind::TimeIndex, &seg.timeindex, file));
    out
}
