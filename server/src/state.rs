//! The state every handler shares: the catalog, the settings handlers need, the
//! notification registry, metrics, the idempotency window, and the hook through which reads
//! find a consumer group's committed offset.
//!
//! Consumer groups live in `crate::groups` ([`GroupEngine`]); reads with `group=G` ask it for
//! the group's position and the `/v1/groups` routes drive it.

use std::sync::Arc;
use std::time::Duration;

use cairn_storage::{Catalog, Topic, TopicConfig};

use crate::ends::EndWatchers;
use crate::error::{ApiError, ApiResult};
use crate::groups::GroupEngine;
use crate::idempotency::Idempotency;
use crate::metrics::Metrics;
use crate::names;
use crate::partitioner::RoundRobin;
use crate::shutdown::Shutdown;

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
    pub groups: Arc<GroupEngine>,
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
        groups: Arc<GroupEngine>,
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
