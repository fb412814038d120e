//! API keys: loaded from a file (one per line) or the `OMNIFUSE_API_KEYS` environment
//! variable (comma- or newline-separated), checked on every request as
//! `Authorization: Bearer <key>` in constant time. Without keys the server refuses to start
//! unless authentication is explicitly turned off, and that is allowed only on a loopback
//! address unless insecure binding is also allowed.

use std::net::SocketAddr;
use std::path::Path;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::config::{AuthConfig, ConfigError};
use crate::error::ApiError;
use crate::state::AppState;

/// Environment variable holding API keys.
pub const KEYS_ENV: &str = "OMNIFUSE_API_KEYS";

/// The accepted keys; empty means authentication is off.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.keys.len())
    }
}

impl ApiKeys {
    /// These keys (blank ones dropped).
    pub fn new<S: AsRef<str>>(keys: impl IntoIterator<Item = S>) -> Self {
        let keys = keys.into_iter().map(|k| k.as_ref().trim().as_bytes().to_vec()).filter(|k| !k.is_empty()).collect();
        ApiKeys { keys }
    }

    /// No keys: every request is let through.
    pub fn none() -> Self {
        ApiKeys::default()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there are no keys.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keys of a file: one per line; blank lines and lines starting with `#` are skipped.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read the API key file {}: {e}", path.display())))?;
        Ok(Self::new(text.lines().filter(|l| !l.trim_start().starts_with('#'))))
    }

    /// Keys of a comma- or newline-separated list.
    pub fn from_list(text: &str) -> Self {
        Self::new(text.split([',', '\n']))
    }

    /// The keys the settings name: the file's, plus those of `OMNIFUSE_API_KEYS`; then the
    /// start-up rule — no keys needs `no_auth`, and `no_auth` needs a loopback address or
    /// `allow_insecure_bind`. Keys together with `no_auth` is a contradiction and an error.
    pub fn resolve(auth: &AuthConfig, env: Option<&str>, addr: SocketAddr) -> Result<Self, ConfigError> {
        let mut keys = match &auth.api_keys_file {
            Some(p) => Self::from_file(p)?,
            None => Self::none(),
        };
        if let Some(list) = env {
            keys.keys.extend(Self::from_list(list).keys);
        }
        if auth.api_keys_file.is_some() && keys.is_empty() {
            return Err(ConfigError("the API key file holds no keys: expected one key per line".into()));
        }
        match (keys.is_empty(), auth.no_auth) {
            (false, true) => Err(ConfigError(format!(
                "--no-auth was given but {} API key(s) are configured: drop one or the other",
                keys.len()
            ))),
            (false, false) => Ok(keys),
            (true, false) => Err(ConfigError(format!(
                "no API keys: give --api-keys FILE or set {KEYS_ENV}, or --no-auth to serve without \
                 authentication on a loopback address"
            ))),
            (true, true) if addr.ip().is_loopback() || auth.allow_insecure_bind => Ok(keys),
            (true, true) => Err(ConfigError(format!(
                "--no-auth on {addr}, which is not a loopback address: anyone who can reach it could use \
                 the server; bind 127.0.0.1 or add --allow-insecure-bind"
            ))),
        }
    }

    /// True when `presented` is one of the keys. Every key is compared, each in time that
    /// depends only on the lengths, so the answer's timing does not reveal a key's bytes.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let mut ok = 0u8;
        for k in &self.keys {
            ok |= constant_time_eq(k, presented) as u8;
        }
        ok == 1
    }
}

/// Byte equality whose running time depends on the lengths only, not on where the bytes differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= std::hint::black_box(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// Paths open without a key: liveness and readiness probes.
pub fn is_open_path(path: &str) -> bool {
    matches!(path, "/v2/health/live" | "/v2/health/ready" | "/health")
}

/// The middleware: lets open paths through, then requires a valid bearer key when keys are
/// configured; otherwise 401 with `WWW-Authenticate: Bearer`.
pub async fn require_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let keys = &state.keys;
    if keys.is_empty() || is_open_path(request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key);
    let problem = match presented {
        None => "missing API key: send the header Authorization: Bearer <key>",
        Some(k) if keys.accepts(k.trim().as_bytes()) => return next.run(request).await,
        Some(_) => "invalid API key",
    };
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, problem).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn compares_keys_exactly() {
        let keys = ApiKeys::from_list("alpha, beta\n\n");
        assert_eq!(keys.len(), 2);
        assert!(keys.accepts(b"alpha") && keys.accepts(b"beta"));
        assert!(!keys.accepts(b"alph") && !keys.accepts(b"alphaa") && !keys.accepts(b"") && !keys.accepts(b"Beta"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn start_up_rules() {
        let off = AuthConfig { no_auth: true, ..AuthConfig::default() };
        assert!(ApiKeys::resolve(&off, None, addr("127.0.0.1:1")).unwrap().is_empty());
        assert!(ApiKeys::resolve(&off, None, addr("[::1]:1")).is_ok());
        let e = ApiKeys::resolve(&off, None, addr("0.0.0.0:1")).unwrap_err();
        assert!(e.0.contains("--allow-insecure-bind"), "{e}");
        let open = AuthConfig { allow_insecure_bind: true, ..off.clone() };
        assert!(ApiKeys::resolve(&open, None, addr("0.0.0.0:1")).is_ok());
        let e = ApiKeys::resolve(&AuthConfig::default(), None, addr("127.0.0.1:1")).unwrap_err();
        assert!(e.0.contains("no API keys"), "{e}");
        let k = ApiKeys::resolve(&AuthConfig::default(), Some("k1,k2"), addr("0.0.0.0:1")).unwrap();
        assert_eq!(k.len(), 2);
        assert!(ApiKeys::resolve(&off, Some("k1"), addr("127.0.0.1:1")).is_err());
    }
}
