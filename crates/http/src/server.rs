//! The router (every route, the body limit, authentication and metrics around them) and the
//! two ways to run it: [`run`], blocking until Ctrl-C or SIGTERM (the `omnifuse serve`
//! command), and [`spawn`], on a thread of its own with a handle that stops it (tests,
//! embedding). Both warm every model up with one request before it reports ready, and on
//! shutdown stop accepting, answer what was accepted, then return.

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

/// Warm every model up on blocking threads, logging each outcome; readiness follows.
async fn warm_up(state: &AppState) {
    for m in &state.models {
        let m = m.clone();
        match tokio::task::spawn_blocking(move || m.warm_up().map(|()| m.name().to_string())).await {
            Ok(Ok(name)) => tracing::info!("model {name} warmed up: ready"),
            Ok(Err(e)) => tracing::warn!("{e}: not ready"),
            Err(e) => tracing::warn!("the warm-up task failed: {e}: not ready"),
        }
    }
}

/// Ctrl-C or, on Unix, SIGTERM, whichever comes first.
async fn stop_signal() {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(2);
    #[cfg(unix)]
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        let tx = tx.clone();
        tokio::spawn(async move {
            term.recv().await;
            let _ = tx.send(()).await;
        });
    }
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = tx.send(()).await;
    });
    let _ = rx.recv().await;
}

/// After the connections are closed: wait for the requests still queued (asynchronous jobs) to
/// be run, within the request timeout when there is one.
async fn drain(state: &AppState) {
    let limit = state.config.request_timeout().unwrap_or(std::time::Duration::from_secs(60));
    let start = std::time::Instant::now();
    while state.models.iter().any(|m| m.waiting() > 0) && start.elapsed() < limit {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Serve until Ctrl-C or SIGTERM; `on_listen` is told the bound address once the server
/// accepts connections, and the models warm up after it (readiness follows). On the signal it
/// stops accepting, answers the requests it accepted, then returns.
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
        tracing::info!("listening on http://{local}");
        let warming = state.clone();
        tokio::spawn(async move { warm_up(&warming).await });
        let served = axum::serve(listener, router(state.clone()))
            .with_graceful_shutdown(async {
                stop_signal().await;
                tracing::info!("stopping: no new connections; answering the accepted requests");
            })
            .await
            .map_err(io("serving"));
        drain(&state).await;
        tracing::info!("stopped");
        served
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

/// Start serving on a thread of its own; returns once the server listens and its models have
/// warmed up (bind to port 0 to let the system pick one: [`RunningServer::addr`] tells which).
pub fn spawn(config: ServeConfig, models: Vec<ServedModel>, keys: ApiKeys) -> Result<RunningServer, ServeError> {
    let rt = runtime()?;
    let addr = config.addr;
    let listener = rt.block_on(tokio::net::TcpListener::bind(addr)).map_err(io(format!("binding {addr}")))?;
    let local = listener.local_addr().map_err(io("reading the bound address"))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let (warmed_tx, warmed_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("omnifuse-http".into())
        .spawn(move || {
            rt.block_on(async move {
                let state = AppState::new(models, keys, config);
                jobs::spawn_purger(state.clone());
                warm_up(&state).await;
                let _ = warmed_tx.send(());
                let served = axum::serve(listener, router(state.clone()))
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .map_err(io("serving"));
                drain(&state).await;
                served
            })
        })
        .map_err(io("starting the server thread"))?;
    // The thread reports once warmed up; a thread that ended before is reported by `stop`.
    let _ = warmed_rx.recv();
    Ok(RunningServer { addr: local, stop: Some(stop), thread: Some(thread) })
}
