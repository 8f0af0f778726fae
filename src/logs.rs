//! The service processes' logs: JSON lines, one object per `tracing` event, filtered by
//! `RUST_LOG` (default `info`).
//!
//! `drcheck serve` writes its own (the endpoint's and the supervisor's) to `<data>/serve.log`;
//! `drcheck region` and `drcheck control` write theirs to stderr, which `serve` appends to
//! `<data>/region-N.log` and `<data>/control.log`.

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::UsageError;

/// The log's file name in a `serve` data directory.
pub const SERVE_LOG: &str = "serve.log";

/// The filter when `RUST_LOG` is not set.
const DEFAULT_LEVEL: LevelFilter = LevelFilter::INFO;

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Set once this process's log goes to stderr: its errors are then told there as log lines.
static ON_STDERR: AtomicBool = AtomicBool::new(false);

/// The filter `RUST_LOG` asks for: comma-separated `level` (for every target) and
/// `target=level` directives, e.g. `info` or `warn,drcheck=debug`.
pub fn filter_from(value: Option<&str>) -> Result<Targets, UsageError> {
    let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
        return Ok(Targets::new().with_default(DEFAULT_LEVEL));
    };
    let bad = |why: String| {
        UsageError(format!(
            "RUST_LOG={value:?}: {why} (expected `level` or `target=level`, comma-separated; \
             levels: {})",
            LEVELS.join(", ")
        ))
    };
    let directives: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    for directive in &directives {
        // A bare word is a target to `tracing`, enabled at every level (and everything else
        // off): a misspelt level would silence the log. Only levels stand alone here.
        if !directive.contains('=') && !LEVELS.contains(&directive.to_lowercase().as_str()) {
            return Err(bad(format!("`{directive}` is not a level")));
        }
    }
    directives
        .join(",")
        .parse::<Targets>()
        .map_err(|e| bad(e.to_string()))
}

/// The filter of this process's `RUST_LOG`.
pub fn filter() -> Result<Targets, UsageError> {
    match std::env::var("RUST_LOG") {
        Ok(value) => filter_from(Some(&value)),
        Err(std::env::VarError::NotPresent) => filter_from(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(UsageError("RUST_LOG is not valid UTF-8".into()))
        }
    }
}

fn install<W>(filter: Targets, writer: W) -> Result<(), UsageError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let json = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(writer);
    tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .try_init()
        .map_err(|e| UsageError(format!("cannot install the log: {e}")))?;
    // A panic is a log line too (and still told as Rust tells it).
    let told = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(target: "drcheck::panic", "{info}");
        told(info);
    }));
    Ok(())
}

/// Logs this process (`drcheck region`, `drcheck control`) to stderr through `filter`.
pub fn to_stderr(filter: Targets) -> Result<(), UsageError> {
    install(filter, std::io::stderr)?;
    ON_STDERR.store(true, Ordering::SeqCst);
    Ok(())
}

/// Logs this process (`drcheck serve`) to `<data_dir>/serve.log` through `filter`, appended
/// to, created readable by its owner only.
pub fn to_file(data_dir: &Path, filter: Targets) -> Result<(), UsageError> {
    let path = data_dir.join(SERVE_LOG);
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file: File = options
        .open(&path)
        .map_err(|e| UsageError(format!("log {}: {e}", path.display())))?;
    // `&File` writes: each event is one `write` of its whole line, appended.
    install(filter, Arc::new(file))
}

/// Tells the error that ends the process: as a log line, and on stderr unless stderr is the
/// log already.
pub fn fatal(message: &str) {
    tracing::error!(target: "drcheck", "{message}");
    if !ON_STDERR.load(Ordering::SeqCst) {
        eprintln!("{message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_takes_levels_and_target_levels() {
        assert!(filter_from(None).is_ok());
        assert!(filter_from(Some("  ")).is_ok());
        for good in [
            "info",
            "WARN",
            "warn,drcheck=debug",
            "drcheck=trace,",
            "off",
        ] {
            assert!(filter_from(Some(good)).is_ok(), "{good}");
        }
        let default = filter_from(None).unwrap();
        assert!(default.would_enable("drcheck", &tracing::Level::INFO));
        assert!(!default.would_enable("drcheck", &tracing::Level::DEBUG));
        let mixed = filter_from(Some("warn,drcheck=debug")).unwrap();
        assert!(mixed.would_enable("drcheck", &tracing::Level::DEBUG));
        assert!(!mixed.would_enable("axum", &tracing::Level::INFO));
    }

    #[test]
    fn a_bad_rust_log_is_one_line_naming_it() {
        for bad in ["verbose", "drcheck=loud", "a=b=c", "info,x=y"] {
            let err = filter_from(Some(bad)).expect_err(bad).0;
            assert!(err.starts_with(&format!("RUST_LOG={bad:?}: ")), "{err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }
}
