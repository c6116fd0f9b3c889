//! The state every handler shares: the catalog, the settings handlers need, the
//! notification registry, metrics, the idempotency window, and the hook through which reads
//! find a consumer group's committed offset.
//!
//! Consumer groups live in `crate::groups` (a separate engine). Reads only need one thing
//! from it — "where is group G in (topic, partition)?" — which is the [`GroupOffsets`] trait.
//! Until the engine is wired in, [`NoGroups`] answers `404 group_not_found` for every group.
//! The engine plugs in by implementing the trait and passing it to [`State::new`] (and may add
//! its own fields here and routes in `crate::routes`).

use std::sync::Arc;
use std::time::Duration;

use cairn_storage::{Catalog, Topic, TopicConfig};

use crate::ends::EndWatchers;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::idempotency::Idempotency;
use crate::metrics::Metrics;
use crate::names;
use crate::partitioner::RoundRobin;
use crate::shutdown::Shutdown;

/// Where consumer groups stand. Implemented by the group engine.
pub trait GroupOffsets: Send + Sync + 'static {
    /// The offset `group` reads next in `topic`'s `partition`: its committed offset, or where
    /// the group's `start` setting puts a partition it has not committed in yet.
    /// `404 group_not_found` if the group does not exist.
    fn committed_offset(&self, group: &str, topic: &str, partition: u32) -> ApiResult<u64>;

    /// Appends the group metrics (for example per-group lag) to a `/metrics` scrape.
    fn render_metrics(&self, _catalog: &Catalog, _out: &mut String) {}
}

/// The group engine answers reads with `group=G` from its positions.
impl GroupOffsets for crate::groups::GroupEngine {
    fn committed_offset(&self, group: &str, topic: &str, partition: u32) -> ApiResult<u64> {
        self.position(group, topic, partition).map_err(ApiError::from)
    }

    fn render_metrics(&self, _catalog: &Catalog, out: &mut String) {
        self.write_metrics(out);
    }
}

/// The placeholder until the group engine is wired in: no group exists.
#[derive(Debug, Default)]
pub struct NoGroups;

impl GroupOffsets for NoGroups {
    fn committed_offset(&self, group: &str, _topic: &str, _partition: u32) -> ApiResult<u64> {
        Err(ApiError::new(ErrorCode::GroupNotFound, format!("group {group} not found")))
    }
}

/// Settings the handlers need.
#[derive(Debug, Clone)]
pub struct HandlerSettings {
    pub auto_create_topics: bool,
    pub body_bytes_max: usize,
    /// SSE keepalive comment period.
    pub keepalive: Duration,
}

/// Shared by every handler (as `Arc<State>`).
pub struct State {
    pub catalog: Arc<Catalog>,
    pub settings: HandlerSettings,
    pub ends: EndWatchers,
    pub metrics: Metrics,
    pub idempotency: Idempotency,
    pub groups: Arc<dyn GroupOffsets>,
    pub round_robin: RoundRobin,
    pub shutdown: Shutdown,
}

/// What axum handlers receive.
pub type AppState = Arc<State>;

impl State {
    pub fn new(
        catalog: Arc<Catalog>,
        settings: HandlerSettings,
        idempotency: Idempotency,
        groups: Arc<dyn GroupOffsets>,
        shutdown: Shutdown,
    ) -> AppState {
        Arc::new(State {
            catalog,
            settings,
            ends: EndWatchers::default(),
            metrics: Metrics::default(),
            idempotency,
            groups,
            round_robin: RoundRobin::default(),
            shutdown,
        })
    }

    /// A client-visible topic (`400 invalid_name` for bad or reserved names, `404` if absent).
    pub fn user_topic(&self, name: &str) -> ApiResult<Arc<Topic>> {
        names::check_user_name(name)?;
        self.catalog.topic(name).ok_or_else(|| ApiError::topic_not_found(name))
    }

    /// The topic a produce names: `Ok(Some(topic))` if it exists, `Ok(None)` if it does not
    /// but auto-create is on (the caller checks the request, then calls
    /// [`State::create_for_produce`]), `404 topic_not_found` otherwise.
    pub fn topic_for_produce(&self, name: &str) -> ApiResult<Option<Arc<Topic>>> {
        names::check_user_name(name)?;
        match self.catalog.topic(name) {
            Some(t) => Ok(Some(t)),
            None if self.settings.auto_create_topics => Ok(None),
            None => Err(ApiError::topic_not_found(name)),
        }
    }

    /// Creates a topic with the defaults for a produce (or returns it if a concurrent
    /// request just created it). Creating syncs to disk, so it runs on the blocking pool.
    pub async fn create_for_produce(&self, name: &str) -> ApiResult<Arc<Topic>> {
        let catalog = Arc::clone(&self.catalog);
        let owned = name.to_string();
        let created = tokio::task::spawn_blocking(move || match catalog.create_topic(&owned, TopicConfig::default()) {
            Err(cairn_storage::Error::TopicExists(_)) => {
                catalog.topic(&owned).ok_or_else(|| ApiError::topic_not_found(&owned))
            }
            other => other.map_err(ApiError::from),
        })
        .await
        .map_err(|e| ApiError::internal(format!("topic creation task failed: {e}")))??;
        tracing::info!(topic = name, "topic auto-created on produce");
        Ok(created)
    }
}
