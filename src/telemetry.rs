//! Logging set-up (text or JSON, filtered by RUST_LOG).
//!
//! `RUST_LOG` of targets and levels (`info`, `info,nexora=debug`) uses
//! [`Targets`]: a static filter. `EnvFilter` is used only when the value
//! needs its extras (span or field directives such as `[request]`): it keeps
//! per-span state behind a lock that every span enter and exit reads, which
//! cost a measurable share of a cache hit's CPU with a span per request.

use tracing_subscriber::{EnvFilter, filter::Targets, fmt, prelude::*};

use crate::config::Config;

/// Installs the global subscriber; call once, from `main`.
pub fn init(config: &Config) {
    let spec = config.log_filter.trim();
    let spec = if spec.is_empty() { "info" } else { spec };
    let needs_env_filter = spec.contains(['[', '{']);
    match spec.parse::<Targets>() {
        Ok(targets) if !needs_env_filter => install(config, targets),
        _ => {
            let filter = EnvFilter::try_new(spec).unwrap_or_else(|_| EnvFilter::new("info"));
            install(config, filter);
        }
    }
}

fn install<F>(config: &Config, filter: F)
where
    F: tracing_subscriber::layer::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    let registry = tracing_subscriber::registry().with(filter);
    if config.log_json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .init();
    } else {
        // colours only for a terminal: escape codes in log files are noise
        // (and formatting them was a visible cost per request)
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
        registry
            .with(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr))
            .init();
    }
}
