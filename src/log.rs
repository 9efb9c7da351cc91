//! The library's one log sink. Library code reports progress and warnings through [`log`] (or
//! the crate-internal `log_warn!` macro); by default the text goes to stderr,
//! as llama.cpp's default logger does. A Rust caller replaces the sink with [`set_sink`]; the C
//! API's `bitnet_log_set` installs a sink that forwards to a C callback.

use std::sync::{Arc, RwLock};

/// Severity of a log message (the numbering of `ggml_log_level`, minus NONE/CONT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// A log sink: receives the level and one message line (ending in `\n`).
pub type Sink = Arc<dyn Fn(Level, &str) + Send + Sync>;

/// `None` = the default stderr sink.
static SINK: RwLock<Option<Sink>> = RwLock::new(None);

/// Installs `sink` for every later message; `None` restores the default (stderr).
pub fn set_sink(sink: Option<Sink>) {
    // A poisoned lock only means a sink panicked; the slot itself is still a valid Option.
    let mut slot = SINK.write().unwrap_or_else(|p| p.into_inner());
    *slot = sink;
}

/// Sends one message to the current sink. A trailing newline is added when missing, so sinks
/// that print the text as-is (llama.cpp's convention) produce one line per message.
pub fn log(level: Level, message: &str) {
    // Clone the sink out of the lock before calling it: a sink that logs, or that installs
    // another sink, must not deadlock.
    let sink = SINK.read().unwrap_or_else(|p| p.into_inner()).clone();
    let owned;
    let text = if message.ends_with('\n') {
        message
    } else {
        owned = format!("{message}\n");
        &owned
    };
    match sink {
        Some(sink) => sink(level, text),
        None => eprint!("{text}"),
    }
}

/// `log_warn!("bitnet: {what} is not supported")`: formats and sends a Warn message.
macro_rules! log_warn {
    ($($arg:tt)*) => { $crate::log::log($crate::log::Level::Warn, &format!($($arg)*)) };
}
pub(crate) use log_warn;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn sink_receives_lines_and_none_restores_default() {
        let got: Arc<Mutex<Vec<(Level, String)>>> = Arc::default();
        let g = got.clone();
        set_sink(Some(Arc::new(move |l, t: &str| {
            g.lock().unwrap().push((l, t.to_string()))
        })));
        log_warn!("tensor {} is odd", 3);
        log(Level::Info, "already terminated\n");
        set_sink(None);
        log(Level::Debug, "to stderr, not to the sink");
        // Other tests in this process may log meanwhile (a model load's notices): keep ours.
        let got: Vec<(Level, String)> = got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, t)| !t.starts_with("bitnet: "))
            .cloned()
            .collect();
        assert_eq!(
            got,
            vec![
                (Level::Warn, "tensor 3 is odd\n".to_string()),
                (Level::Info, "already terminated\n".to_string())
            ]
        );
    }
}
