//! Logging set-up (text or JSON, filtered by RUST_LOG).

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::Config;

/// Installs the global subscriber; call once, from `main`.
pub fn init(config: &Config) {
    let filter = EnvFilter::try_new(&config.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if config.log_json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.init();
    }
}
