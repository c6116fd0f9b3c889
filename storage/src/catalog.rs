//! The catalogue: one data directory holding many topics, each with its partition logs and
//! configuration.
//!
//! Layout (see `docs/FORMAT.md`): `<data>/.lock`, `<data>/.clean-shutdown`,
//! `<data>/topics/<topic>/topic.json`, `<data>/topics/<topic>/<partition>/<segments>`.
//! A topic exists once its `topic.json` is durable; a directory without one is the
//! leftover of an interrupted create and is removed at open, like `.deleted-*` leftovers of
//! an interrupted delete. Topic create, update and delete are serialised by one lock.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::cache::{SegmentCache, OPEN_SEGMENTS_MAX_DEFAULT};
use crate::compaction::{read_cleaner_point, CompactionOptions, Stop, COMPACTION_DIRTY_RATIO_DEFAULT};
use crate::config::TopicConfig;
use crate::context::{system_clock, Clock, Context};
use crate::error::{Error, Result};
use crate::format::*;
use crate::fsutil::{self, DirLock};
use crate::partition::{lock, PartitionLog, Queue, Shared};
use crate::pool::{Flusher, WriterPool, WRITER_THREADS_DEFAULT};
use crate::prezero::Zeroer;
use crate::recovery::open_partition;
use crate::retention::RetentionStats;

/// How a catalogue runs.
#[derive(Clone)]
pub struct CatalogOptions {
    /// Threads running group commits, shared by all partitions.
    pub writer_threads: usize,
    /// Sealed segments kept mapped at once (see [`crate::cache`]).
    pub open_segments_max: usize,
    /// Run retention on this period in a background thread (`None`: only when asked).
    pub retention_check_interval: Option<Duration>,
    /// Look for compacted topics to clean on this period in a background thread (`None`:
    /// only when asked, [`Catalog::compact_topic`]).
    pub compaction_check_interval: Option<Duration>,
    /// The background compactor cleans a partition of a `compact` topic once this share of
    /// its sealed bytes is dirty (not yet written by compaction).
    pub compaction_dirty_ratio: f64,
    /// Key-map bound and I/O rate limit of background compactions (a compaction asked for
    /// with [`Catalog::compact_topic`] uses the key-map bound, without the rate limit).
    pub compaction: CompactionOptions,
    pub clock: Clock,
}

impl Default for CatalogOptions {
    fn default() -> Self {
        CatalogOptions {
            writer_threads: WRITER_THREADS_DEFAULT,
            open_segments_max: OPEN_SEGMENTS_MAX_DEFAULT,
            retention_check_interval: None,
            compaction_check_interval: None,
            compaction_dirty_ratio: COMPACTION_DIRTY_RATIO_DEFAULT,
            compaction: CompactionOptions::default(),
            clock: system_clock(),
        }
    }
}

impl std::fmt::Debug for CatalogOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogOptions")
            .field("writer_threads", &self.writer_threads)
            .field("open_segments_max", &self.open_segments_max)
            .field("retention_check_interval", &self.retention_check_interval)
            .field("compaction_check_interval", &self.compaction_check_interval)
            .field("compaction_dirty_ratio", &self.compaction_dirty_ratio)
            .field("compaction", &self.compaction)
            .finish()
    }
}

/// Checks a topic (or group) name: 1-249 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
/// Reserved prefixes are the server's business.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= NAME_LEN_MAX
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName(name.to_string()))
    }
}

/// A topic: its configuration and partitions.
#[derive(Debug)]
pub struct Topic {
    name: String,
    dir: PathBuf,
    config: RwLock<TopicConfig>,
    partitions: RwLock<Vec<PartitionLog>>,
}

impl Topic {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> TopicConfig {
        self.config.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn partition_count(&self) -> u32 {
        self.partitions.read().unwrap_or_else(|p| p.into_inner()).len() as u32
    }

    pub fn partition(&self, p: u32) -> Option<PartitionLog> {
        self.partitions.read().unwrap_or_else(|p| p.into_inner()).get(p as usize).cloned()
    }

    pub fn partitions(&self) -> Vec<PartitionLog> {
        self.partitions.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// An open data directory.
pub struct Catalog {
    dir: PathBuf,
    pub(crate) topics: Arc<RwLock<BTreeMap<String, Arc<Topic>>>>,
    pub(crate) ctx: Arc<Context>,
    admin: Mutex<()>,
    pub(crate) threads: Mutex<Vec<JoinHandle<()>>>,
    /// Set (and signalled) when the catalog closes: background threads and compactions stop.
    pub(crate) maintenance: Stop,
    pub(crate) compaction: CompactionOptions,
    /// Rounds completed by the background compactor (signalled after each).
    pub(crate) compactor_rounds: Arc<(Mutex<u64>, Condvar)>,
    opened_clean: bool,
    closed: AtomicBool,
    _lock: DirLock,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("dir", &self.dir).field("opened_clean", &self.opened_clean).finish()
    }
}

static DELETE_SEQ: AtomicU64 = AtomicU64::new(0);

impl Catalog {
    /// Opens (creating if needed) the data directory `dir`, recovering every partition.
    pub fn open(dir: impl AsRef<Path>, opts: CatalogOptions) -> Result<Catalog> {
        let dir = dir.as_ref().to_path_buf();
        fsutil::create_dir_durable(&dir)?;
        let lock = DirLock::acquire(&dir, LOCK_FILE)?;
        let topics_dir = dir.join(TOPICS_DIR);
        fsutil::create_dir_durable(&topics_dir)?;
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        let clean = marker.exists();
        let spawn_err = |e: std::io::Error| Error::io("spawn thread", &dir, e);
        let (pool, mut threads) = WriterPool::start(opts.writer_threads).map_err(spawn_err)?;
        let (flusher, fh) = Flusher::start().map_err(spawn_err)?;
        threads.push(fh);
        let (zeroer, zh) = Zeroer::start().map_err(spawn_err)?;
        threads.push(zh);
        let ctx = Arc::new(Context {
            clock: opts.clock.clone(),
            cache: SegmentCache::new(opts.open_segments_max),
            pool,
            flusher,
            zeroer,
        });
        let catalog = Catalog {
            dir: dir.clone(),
            topics: Arc::new(RwLock::new(BTreeMap::new())),
            ctx,
            admin: Mutex::new(()),
            threads: Mutex::new(threads),
            maintenance: Arc::new((Mutex::new(false), Condvar::new())),
            compaction: opts.compaction.clone(),
            compactor_rounds: Arc::new((Mutex::new(0), Condvar::new())),
            opened_clean: clean,
            closed: AtomicBool::new(false),
            _lock: lock,
        };
        catalog.load_topics(&topics_dir, clean)?;
        fsutil::remove_file_durable(&marker)?;
        if let Some(every) = opts.retention_check_interval {
            catalog.start_retention_thread(every).map_err(spawn_err)?;
        }
        if let Some(every) = opts.compaction_check_interval {
            catalog.start_compactor_thread(every, opts.compaction_dirty_ratio).map_err(spawn_err)?;
        }
        tracing::info!(dir = %dir.display(), clean, topics = catalog.topics.read().map(|t| t.len()).unwrap_or(0), "catalog open");
        Ok(catalog)
    }

    fn load_topics(&self, topics_dir: &Path, clean: bool) -> Result<()> {
        let entries = fs::read_dir(topics_dir).map_err(|e| Error::io("list", topics_dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", topics_dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let config_path = path.join(TOPIC_CONFIG_FILE);
            if name.starts_with(DELETED_PREFIX) || !config_path.exists() {
                tracing::info!("removing leftover {}", path.display());
                fs::remove_dir_all(&path).map_err(|e| Error::io("remove", &path, e))?;
                fsutil::sync_dir(topics_dir)?;
                continue;
            }
            let config = crate::inspect::read_topic_config(&config_path)?;
            let topic = self.open_topic(&name, config, clean)?;
            self.topics.write().unwrap_or_else(|p| p.into_inner()).insert(name, topic);
        }
        Ok(())
    }

    fn open_topic(&self, name: &str, config: TopicConfig, clean: bool) -> Result<Arc<Topic>> {
        let dir = self.dir.join(TOPICS_DIR).join(name);
        let mut partitions = Vec::with_capacity(config.partitions as usize);
        for p in 0..config.partitions {
            partitions.push(self.open_partition(name, p, &dir, &config, clean)?);
        }
        Ok(Arc::new(Topic {
            name: name.to_string(),
            dir,
            config: RwLock::new(config),
            partitions: RwLock::new(partitions),
        }))
    }

    fn open_partition(
        &self,
        topic: &str,
        p: u32,
        topic_dir: &Path,
        config: &TopicConfig,
        clean: bool,
    ) -> Result<PartitionLog> {
        let dir = topic_dir.join(p.to_string());
        let opened = open_partition(&dir, config.segment_bytes, clean)?;
        let cleaner_point = read_cleaner_point(&dir);
        let shared = Arc::new(Shared {
            topic: topic.to_string(),
            partition: p,
            dir,
            config: RwLock::new(config.clone()),
            segments: RwLock::new(opened.segments),
            start_offset: AtomicU64::new(opened.start_offset),
            end_offset: AtomicU64::new(opened.end_offset),
            queue: Mutex::new(Queue::default()),
            queue_idle: Condvar::new(),
            writer: Mutex::new(Some(opened.writer)),
            listeners: Mutex::new(Vec::new()),
            end_lock: Mutex::new(()),
            end_changed: Condvar::new(),
            poisoned: Mutex::new(None),
            dirty: AtomicBool::new(false),
            maintenance: Mutex::new(()),
            cleaner_point: AtomicU64::new(cleaner_point),
            swaps: AtomicU64::new(0),
            ctx: Arc::clone(&self.ctx),
        });
        Ok(PartitionLog { shared })
    }

    fn start_retention_thread(&self, every: Duration) -> std::io::Result<()> {
        let m = Arc::clone(&self.maintenance);
        let topics = Arc::clone(&self.topics);
        let clock = self.ctx.clock.clone();
        let h = std::thread::Builder::new().name("cairn-retention".into()).spawn(move || loop {
            {
                let stop = lock(&m.0);
                let (stop, _) = m.1.wait_timeout_while(stop, every, |s| !*s).unwrap_or_else(|p| p.into_inner());
                if *stop {
                    return;
                }
            }
            let snapshot: Vec<Arc<Topic>> =
                topics.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
            run_retention(&snapshot, clock());
        })?;
        lock(&self.threads).push(h);
        Ok(())
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the directory had been shut down cleanly when it was opened.
    pub fn opened_clean(&self) -> bool {
        self.opened_clean
    }

    /// Sealed segments currently mapped (bounded by `open_segments_max`).
    pub fn mapped_segments(&self) -> usize {
        self.ctx.cache.mapped()
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().unwrap_or_else(|p| p.into_inner()).get(name).cloned()
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    /// Creates a topic; its directory and partitions are durable before this returns.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Arc<Topic>> {
        validate_name(name)?;
        config.validate()?;
        let _admin = lock(&self.admin);
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if self.topic(name).is_some() {
            return Err(Error::TopicExists(name.to_string()));
        }
        let topics_dir = self.dir.join(TOPICS_DIR);
        let dir = topics_dir.join(name);
        let created = (|| {
            fsutil::create_dir_durable(&dir)?;
            let topic = self.open_topic(name, config.clone(), false)?;
            write_config(&dir, &config)?;
            Ok(topic)
        })();
        match created {
            Ok(topic) => {
                self.topics.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), Arc::clone(&topic));
                Ok(topic)
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    /// Replaces a topic's config. `partitions` may only grow; new partitions are created.
    pub fn update_topic(&self, name: &str, config: TopicConfig) -> Result<Arc<Topic>> {
        config.validate()?;
        let _admin = lock(&self.admin);
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let topic = self.topic(name).ok_or_else(|| Error::TopicNotFound(name.to_string()))?;
        let current = topic.partition_count();
        if config.partitions < current {
            return Err(Error::InvalidConfig(format!("partitions may only grow (currently {current})")));
        }
        let mut added = Vec::new();
        for p in current..config.partitions {
            added.push(self.open_partition(name, p, &topic.dir, &config, false)?);
        }
        write_config(&topic.dir, &config)?;
        for part in topic.partitions() {
            part.set_config(config.clone());
        }
        topic.partitions.write().unwrap_or_else(|p| p.into_inner()).extend(added);
        *topic.config.write().unwrap_or_else(|p| p.into_inner()) = config;
        Ok(topic)
    }

    /// Deletes a topic and its data. Appends still queued fail; readers holding mapped
    /// segments finish what they read.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let _admin = lock(&self.admin);
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        let topic = self
            .topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .ok_or_else(|| Error::TopicNotFound(name.to_string()))?;
        let parts = topic.partitions();
        // Held until the directory is gone: no compaction or retention runs in it meanwhile.
        let mut held = Vec::with_capacity(parts.len());
        for part in &parts {
            let _ = part.shared.close();
            held.push(lock(&part.shared.maintenance));
            for seg in part.shared.segments.read().unwrap_or_else(|p| p.into_inner()).values() {
                self.ctx.cache.forget(seg);
            }
        }
        let topics_dir = self.dir.join(TOPICS_DIR);
        let seq = DELETE_SEQ.fetch_add(1, Ordering::Relaxed);
        // At most DELETED_NAME_KEEP bytes of the name (ASCII): a 249-byte name with the prefix
        // and the suffix would pass the file system's 255-byte limit and the rename would fail.
        let kept = &name[..name.len().min(DELETED_NAME_KEEP)];
        let doomed = topics_dir.join(format!("{DELETED_PREFIX}{kept}-{}-{seq}", std::process::id()));
        if let Err(e) = crate::faults::check("topic.rename", &topic.dir).and_then(|()| fs::rename(&topic.dir, &doomed))
        {
            // Nothing changed on disk: the topic stays, reopened (its partitions were closed),
            // rather than vanish until the next restart brings it back.
            drop(held);
            match self.open_topic(name, topic.config(), false) {
                Ok(t) => {
                    self.topics.write().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), t);
                }
                Err(re) => {
                    tracing::error!(topic = name, "topic kept on disk but not reopened after a failed delete: {re}")
                }
            }
            return Err(Error::io("rename", &topic.dir, e));
        }
        fsutil::sync_dir(&topics_dir)?;
        fs::remove_dir_all(&doomed).map_err(|e| Error::io("remove", &doomed, e))?;
        drop(held);
        fsutil::sync_dir(&topics_dir)
    }

    /// Runs retention on every partition now.
    pub fn enforce_retention(&self) -> RetentionStats {
        run_retention(&self.topics(), (self.ctx.clock)())
    }

    /// Stops accepting appends, completes those queued, syncs everything, records recovery
    /// points and writes the clean-shutdown marker (only if every partition closed cleanly).
    pub fn close(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let _admin = lock(&self.admin);
        // Compactions in progress stop at their next check (a swap in progress finishes).
        *lock(&self.maintenance.0) = true;
        self.maintenance.1.notify_all();
        let mut first_error = None;
        for topic in self.topics() {
            for part in topic.partitions() {
                if let Err(e) = part.shared.close() {
                    tracing::error!(partition = %part.shared.name(), "close failed: {e}");
                    first_error.get_or_insert(e);
                }
                drop(lock(&part.shared.maintenance));
            }
        }
        self.stop_threads();
        match first_error {
            None => {
                fsutil::write_atomic(&self.dir.join(CLEAN_SHUTDOWN_FILE), b"")?;
                tracing::info!(dir = %self.dir.display(), "catalog closed cleanly");
                Ok(())
            }
            Some(e) => Err(e),
        }
    }

    fn stop_threads(&self) {
        *lock(&self.maintenance.0) = true;
        self.maintenance.1.notify_all();
        self.ctx.pool.shutdown();
        self.ctx.flusher.shutdown();
        self.ctx.zeroer.shutdown();
        for h in std::mem::take(&mut *lock(&self.threads)) {
            let _ = h.join();
        }
    }
}

impl Drop for Catalog {
    fn drop(&mut self) {
        // Not closed: like a crash, nothing more is synced and no marker is left (the next
        // open recovers). Partition handles that outlive the catalog refuse appends: the
        // directory lock is released with the catalog, and another catalog may open it.
        if !self.closed.swap(true, Ordering::AcqRel) {
            for topic in self.topics() {
                for part in topic.partitions() {
                    lock(&part.shared.queue).closed = true;
                }
            }
        }
        self.stop_threads();
    }
}

fn write_config(topic_dir: &Path, config: &TopicConfig) -> Result<()> {
    let json = serde_json::to_vec_pretty(config).map_err(|e| Error::InvalidConfig(e.to_string()))?;
    fsutil::write_atomic(&topic_dir.join(TOPIC_CONFIG_FILE), &json)
}

fn run_retention(topics: &[Arc<Topic>], now: i64) -> RetentionStats {
    let mut total = RetentionStats::default();
    for topic in topics {
        for part in topic.partitions() {
            match part.enforce_retention(now) {
                Ok(s) => total += s,
                Err(e) => tracing::warn!(topic = topic.name(), partition = part.partition(), "retention failed: {e}"),
            }
        }
    }
    total
}
