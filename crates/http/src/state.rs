//! What every handler shares: the served models, the job store, the named retrieval indexes,
//! the metrics, the API keys and the settings — behind one cheap-to-clone handle.

use std::ops::Deref;
use std::sync::Arc;

use crate::auth::ApiKeys;
use crate::config::ServeConfig;
use crate::engine::ServedModel;
use crate::error::{ApiError, ApiResult};
use crate::jobs::JobStore;
use crate::metrics::Metrics;
use crate::retrieval::Indexes;

/// The shared state (an `Arc`, so clones are cheap).
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The contents of [`AppState`].
pub struct Shared {
    /// The served models; the first is the default of the unified API.
    pub models: Vec<Arc<ServedModel>>,
    /// Asynchronous jobs.
    pub jobs: JobStore,
    /// Named retrieval indexes.
    pub indexes: Indexes,
    /// Request counters and latencies.
    pub metrics: Metrics,
    /// Accepted API keys (empty: authentication off).
    pub keys: ApiKeys,
    /// The settings.
    pub config: ServeConfig,
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl AppState {
    /// State over these models (at least one).
    pub fn new(models: Vec<ServedModel>, keys: ApiKeys, config: ServeConfig) -> Self {
        AppState(Arc::new(Shared {
            models: models.into_iter().map(Arc::new).collect(),
            jobs: JobStore::default(),
            indexes: Indexes::default(),
            metrics: Metrics::default(),
            keys,
            config,
        }))
    }

    /// The model called `name`, or 404 naming the ones served.
    pub fn model(&self, name: &str) -> ApiResult<Arc<ServedModel>> {
        self.models.iter().find(|m| m.name() == name).cloned().ok_or_else(|| {
            let names: Vec<&str> = self.models.iter().map(|m| m.name()).collect();
            ApiError::not_found(format!("no model '{name}': this server serves {}", names.join(", ")))
        })
    }

    /// The default model of the unified API.
    pub fn default_model(&self) -> ApiResult<Arc<ServedModel>> {
        self.models.first().cloned().ok_or_else(|| ApiError::internal("no model is served"))
    }
}
