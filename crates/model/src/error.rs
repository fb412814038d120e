//! Errors of the model layer: bad inputs, bad configs, bad weights, and the runtime's own
//! errors passed through. Every message names what was seen and what was expected.

/// Result alias of the model crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong between a raw request and a head's answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request input is malformed, of an unknown kind, or over a configured limit.
    #[error("input {index}: {detail}")]
    Input {
        /// Position of the input in the request (0-based).
        index: usize,
        /// What was seen and what was expected.
        detail: String,
    },
    /// The request as a whole is invalid (no inputs, an unknown task, a bad parameter).
    #[error("request: {0}")]
    Request(String),
    /// The model configuration is invalid.
    #[error("config: {0}")]
    Config(String),
    /// The weights do not match the configuration, or cannot be read.
    #[error("weights: {0}")]
    Weights(String),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The graph runtime or a backend failed.
    #[error(transparent)]
    Runtime(#[from] omnifuse_core::Error),
}

impl Error {
    /// An error about request input `index`.
    pub fn input(index: usize, detail: impl Into<String>) -> Self {
        Error::Input { index, detail: detail.into() }
    }

    /// True when the error is the caller's fault (bad input, request, config or weights) rather
    /// than a failure of the runtime: the CLI exits 2 for these.
    pub fn is_usage(&self) -> bool {
        !matches!(self, Error::Runtime(_))
    }

    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }
}
