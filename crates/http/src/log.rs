//! The server's log lines: one line each on standard error, `omnifuse-http <level>: <message>`,
//! for start, stop and the scale-out signal.

/// Write an information line.
pub fn info(message: &str) {
    eprintln!("omnifuse-http info: {message}");
}
