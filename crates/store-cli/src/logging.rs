//! The library's log messages on stderr.
//!
//! The library reports what it recovers from on its own through the `log` crate: an unfinished
//! analytics file moved aside, a panicking `on_change` callback, a background purge or
//! checkpoint that failed and will retry. A command-line user should see those, so the tool
//! prints warnings and errors by default. `STORE_LOG` picks another level (`off`, `error`,
//! `warn`, `info`, `debug`, `trace`, any case); `--quiet` does not hide them, as it does not
//! hide errors.

use std::io::Write;
use std::str::FromStr;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// The environment variable naming the level.
pub const LEVEL_VAR: &str = "STORE_LOG";

/// Installs the stderr logger at the level `STORE_LOG` names (warnings when unset, empty or
/// not a level; a value that is not a level is reported once).
pub fn install() {
    static LOGGER: Stderr = Stderr;
    let requested = std::env::var_os(LEVEL_VAR).filter(|v| !v.is_empty());
    let level = match requested {
        None => LevelFilter::Warn,
        Some(value) => match value.to_str().and_then(|v| LevelFilter::from_str(v.trim()).ok()) {
            Some(level) => level,
            None => {
                let shown = crate::output::visible(&value.to_string_lossy());
                note(&format!(
                    "store: warning: {LEVEL_VAR}={shown} is not a level (off, error, warn, info, \
                     debug, trace); printing warnings"
                ));
                LevelFilter::Warn
            }
        },
    };
    // Only fails if a logger is already installed, which nothing else in the tool does.
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        // The library's messages name themselves (`store: …`); the line gets the level after it.
        let message = message.strip_prefix("store: ").unwrap_or(&message);
        let level = match record.level() {
            Level::Error => "error",
            Level::Warn => "warning",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        };
        note(&format!(
            "store: {level}: {}",
            crate::output::human_error(message)
        ));
    }

    fn flush(&self) {}
}

/// One line on stderr, never panicking (a closed stderr loses it).
fn note(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
