//! The router (every route, the body limit, authentication and metrics around them) and the
//! two ways to run it: [`run`], blocking until Ctrl-C (the `omnifuse serve` command), and
//! [`spawn`], on a thread of its own with a handle that stops it (tests, embedding).

use std::net::SocketAddr;
use std::thread::JoinHandle;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Uri;
use axum::middleware;
use axum::routing::{get, post};
use tokio::sync::oneshot;

use crate::auth::{self, ApiKeys};
use crate::config::ServeConfig;
use crate::engine::ServedModel;
use crate::error::ApiError;
use crate::state::AppState;
use crate::{jobs, limits, metrics, oip, retrieval, unified};

/// Every route over `state`.
pub fn router(state: AppState) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route("/v1/infer", post(unified::infer))
        .route("/v1/jobs", post(jobs::create))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::delete))
        .route("/v1/index/{name}", post(retrieval::add).get(retrieval::show))
        .route("/v1/search", get(retrieval::search).post(retrieval::search_by_input))
        .route("/v2", get(oip::server_metadata))
        .route("/v2/health/live", get(oip::live))
        .route("/v2/health/ready", get(oip::ready))
        .route("/health", get(oip::live))
        .route("/v2/models/stats", get(oip::all_stats))
        .route("/v2/models/{m}", get(oip::model_metadata))
        .route("/v2/models/{m}/versions/{v}", get(oip::model_version_metadata))
        .route("/v2/models/{m}/ready", get(oip::model_ready))
        .route("/v2/models/{m}/config", get(oip::model_config))
        .route("/v2/models/{m}/stats", get(oip::model_stats))
        .route("/v2/models/{m}/infer", post(oip::infer))
        .route("/v2/models/{m}/versions/{v}/infer", post(oip::infer_version))
        .route("/metrics", get(metrics::render))
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(limits::require_json))
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_key))
        .layer(middleware::from_fn_with_state(state.clone(), metrics::track))
        .with_state(state)
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route {}: expected /v1/infer, /v1/jobs, /v1/index/NAME, /v1/search, /v2/..., or /metrics",
        uri.path()
    ))
}

async fn wrong_method(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}: see the routes in `omnifuse serve --help`", uri.path()),
    )
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A setting cannot work.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Binding, the runtime or the connection loop failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let context = context.into();
    move |source| ServeError::Io { context, source }
}

/// Put each `(name, model)` behind its own batcher with the settings' policy.
pub fn serve_models(
    config: &ServeConfig,
    models: Vec<(String, omnifuse_model::Model)>,
) -> Result<Vec<ServedModel>, ServeError> {
    config.validate()?;
    if models.is_empty() {
        return Err(crate::config::ConfigError("no model to serve".into()).into());
    }
    models
        .into_iter()
        .map(|(name, m)| {
            ServedModel::new(&name, m, config.policy(), config.request_timeout())
                .map(|s| s.with_monitoring(config.monitoring.clone()))
                .map_err(|e| crate::config::ConfigError(e.to_string()).into())
        })
        .collect()
}

fn runtime() -> Result<tokio::runtime::Runtime, ServeError> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(io("starting the async runtime"))
}

/// Serve until Ctrl-C; `on_listen` is told the bound address once the server accepts
/// connections. Requests in flight finish before it returns.
pub fn run(
    config: ServeConfig,
    models: Vec<ServedModel>,
    keys: ApiKeys,
    on_listen: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let rt = runtime()?;
    rt.block_on(async move {
        let addr = config.addr;
        let state = AppState::new(models, keys, config);
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(io(format!("binding {addr}")))?;
        let local = listener.local_addr().map_err(io("reading the bound address"))?;
        jobs::spawn_purger(state.clone());
        on_listen(local);
        axum::serve(listener, router(state))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(io("serving"))
    })
}

/// A server running on its own thread; stopped by [`RunningServer::stop`] or when dropped.
pub struct RunningServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ServeError>>>,
}

impl RunningServer {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, finish what is in flight, and wait for the thread.
    pub fn stop(mut self) -> Result<(), ServeError> {
        self.shut()
    }

    fn shut(&mut self) -> Result<(), ServeError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(ServeError::Io {
                context: "the server thread".into(),
                source: std::io::Error::other("it panicked"),
            }),
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.shut();
    }
}

/// Start serving on a thread of its own; returns once the server listens (bind to port 0 to
/// let the system pick one: [`RunningServer::addr`] tells which).
pub fn spawn(config: ServeConfig, models: Vec<ServedModel>, keys: ApiKeys) -> Result<RunningServer, ServeError> {
    let rt = runtime()?;
    let addr = config.addr;
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).map_err(io(format!("binding {addr}")))?;
    let local = listener.local_addr().map_err(io("reading the bound address"))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("omnifuse-http".into())
        .spawn(move || {
            rt.block_on(async move {
                let state = AppState::new(models, keys, config);
                jobs::spawn_purger(state.clone());
                axum::serve(listener, router(state))
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .map_err(io("serving"))
            })
        })
        .map_err(io("starting the server thread"))?;
    Ok(RunningServer { addr: local, stop: Some(stop), thread: Some(thread) })
}
