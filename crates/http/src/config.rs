//! The server's settings: where it listens, how requests are batched, limits, job retention
//! and authentication — from a `serve.toml` file, with command-line flags on top. Unknown keys
//! are errors, and every check names the setting and the value it saw.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use omnifuse_serve::BatchPolicy;
use serde::Deserialize;

use crate::monitor::MonitoringConfig;

/// Default request-body limit: 32 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 << 20;

/// Everything the server needs besides the models.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// Largest request body, in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Longest a request may wait in the queue before it is answered 504, in milliseconds
    /// (0: no limit).
    pub request_timeout_ms: u64,
    /// How long a finished job's result is kept, in seconds.
    pub job_ttl_s: u64,
    /// Most jobs held at once (queued, running, or finished within the time to live).
    pub max_jobs: usize,
    /// Most named retrieval indexes.
    pub max_indexes: usize,
    /// Most entries a named retrieval index may hold.
    pub max_index_entries: usize,
    /// Batching of each model's requests.
    pub batching: BatchingConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// Traffic monitoring.
    pub monitoring: MonitoringConfig,
}

/// `[batching]`: the dynamic batcher's policy.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchingConfig {
    /// Most requests fused in one batch.
    pub max_batch: usize,
    /// Longest the oldest request of a batch waits for others, in milliseconds.
    pub max_delay_ms: u64,
    /// Most requests waiting; beyond it requests are refused with 503.
    pub queue_capacity: usize,
    /// Most inputs per batch, all requests together (a single larger request runs alone).
    pub max_inputs: usize,
    /// Same-modality grouping: a batch holds requests of one modality mix (requests that have
    /// waited `max_delay_ms` still leave in the next batch, whatever their mix).
    pub grouping: bool,
}

/// `[auth]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A file of API keys, one per line (blank lines and `#` comments ignored).
    pub api_keys_file: Option<std::path::PathBuf>,
    /// Serve without authentication (only on a loopback address unless `allow_insecure_bind`).
    pub no_auth: bool,
    /// Allow `no_auth` on a non-loopback address.
    pub allow_insecure_bind: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            request_timeout_ms: 30_000,
            job_ttl_s: 600,
            max_jobs: 10_000,
            max_indexes: 64,
            max_index_entries: 100_000,
            batching: BatchingConfig::default(),
            auth: AuthConfig::default(),
            monitoring: MonitoringConfig::default(),
        }
    }
}

impl Default for BatchingConfig {
    fn default() -> Self {
        let p = BatchPolicy::default();
        BatchingConfig {
            max_batch: p.max_batch,
            max_delay_ms: p.max_delay.as_millis() as u64,
            queue_capacity: p.queue_capacity,
            max_inputs: 1024,
            grouping: p.grouping,
        }
    }
}

/// A setting that cannot work, or a config file that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("serve config: {0}")]
pub struct ConfigError(pub String);

impl ServeConfig {
    /// Read a `serve.toml`.
    pub fn load(path: &Path) -> Result<ServeConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|ConfigError(m)| ConfigError(format!("{}: {m}", path.display())))
    }

    /// Parse the text of a `serve.toml`.
    pub fn from_toml(text: &str) -> Result<ServeConfig, ConfigError> {
        let c: ServeConfig = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Check the settings; the error names the offending one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_body_bytes == 0 {
            return Err(ConfigError("max_body_bytes must be at least 1, got 0".into()));
        }
        let at_least_one = [
            ("job_ttl_s", self.job_ttl_s as usize),
            ("max_jobs", self.max_jobs),
            ("max_indexes", self.max_indexes),
            ("max_index_entries", self.max_index_entries),
        ];
        if let Some((name, _)) = at_least_one.iter().find(|(_, v)| *v == 0) {
            return Err(ConfigError(format!("{name} must be at least 1, got 0")));
        }
        self.monitoring.validate().map_err(ConfigError)?;
        self.policy().validate().map_err(|e| ConfigError(e.to_string()))
    }

    /// The batch policy of each model's batcher. A request counts as many tokens as it has
    /// inputs, so `max_inputs` bounds a batch's inputs.
    pub fn policy(&self) -> BatchPolicy {
        BatchPolicy {
            max_batch: self.batching.max_batch,
            max_tokens: self.batching.max_inputs,
            max_delay: Duration::from_millis(self.batching.max_delay_ms),
            queue_capacity: self.batching.queue_capacity,
            preferred_sizes: Vec::new(),
            grouping: self.batching.grouping,
        }
    }

    /// The queue timeout of a request, if any.
    pub fn request_timeout(&self) -> Option<Duration> {
        (self.request_timeout_ms > 0).then(|| Duration::from_millis(self.request_timeout_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_config_and_names_bad_settings() {
        let c = ServeConfig::from_toml(
            "addr = \"0.0.0.0:9000\"\njob_ttl_s = 5\n[batching]\nmax_batch = 4\nmax_delay_ms = 20\n[auth]\nno_auth = true\n",
        )
        .unwrap();
        assert_eq!(c.addr.port(), 9000);
        assert_eq!(c.batching.max_batch, 4);
        assert_eq!(c.policy().max_delay, Duration::from_millis(20));
        assert!(c.auth.no_auth);
        assert_eq!(c.batching.queue_capacity, BatchingConfig::default().queue_capacity);
        assert!(!c.policy().grouping, "grouping is off unless asked");
        assert!(ServeConfig::from_toml("[batching]\ngrouping = true\n").unwrap().policy().grouping);
        let e = ServeConfig::from_toml("[batching]\nmax_batch = 0\n").unwrap_err();
        assert!(e.0.contains("max_batch"), "{e}");
        let e = ServeConfig::from_toml("max_jobs = 0\n").unwrap_err();
        assert!(e.0.contains("max_jobs must be at least 1"), "{e}");
        let c = ServeConfig::from_toml("[monitoring]\nwindow_requests = 20\nscale_out_after_s = 0\n").unwrap();
        assert_eq!((c.monitoring.window_requests, c.monitoring.scale_out_after_s), (20, 0));
        assert_eq!(c.monitoring.scale_out_image_share, 0.6);
        let e = ServeConfig::from_toml("[monitoring]\nscale_out_image_share = 2.0\n").unwrap_err();
        assert!(e.0.contains("scale_out_image_share"), "{e}");
        let e = ServeConfig::from_toml("adress = \"x\"\n").unwrap_err();
        assert!(e.0.contains("adress"), "{e}");
    }
}
