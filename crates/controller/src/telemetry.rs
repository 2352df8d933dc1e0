//! Logging setup shared by the binaries: `RITMA_LOG` filters, `RITMA_LOG_FORMAT=json`
//! switches to JSON lines.

pub fn init(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RITMA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let json = std::env::var("RITMA_LOG_FORMAT").is_ok_and(|v| v == "json");
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
