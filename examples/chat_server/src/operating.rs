//! Operating the server: `GET /metrics` in the Prometheus text format, and logs.
//!
//! **Metrics.** Each server owns a Prometheus recorder (the official exporter crate,
//! `metrics-exporter-prometheus`, without its HTTP server: this server answers the
//! request itself) and a [`MetricsReporter`] labelled `engine="chat"`. A scrape records
//! the engine's `stats()` — and, with `--redis`, the bridge's — into that recorder as
//! absolute values, then renders it: the numbers are read when asked, and nothing is
//! counted per message on the way. The recorder is the server's own rather than the
//! process's global one, so that two servers in one process (the tests) each serve
//! their own numbers; an application with other libraries' metrics would install it
//! globally instead (`PrometheusBuilder::install_recorder`) and record the same way.
//! The names are in `fanout::observe`.
//!
//! A Prometheus scrape configuration for a server on port 8080:
//!
//! ```yaml
//! scrape_configs:
//!   - job_name: chat
//!     scrape_interval: 15s
//!     metrics_path: /metrics
//!     static_configs:
//!       - targets: ["127.0.0.1:8080"]
//! ```
//!
//! **Logs.** [`init_logging`] installs a `tracing-subscriber` formatter on stderr at
//! level INFO (stdout stays the command line's: its first line is the address), so the
//! engine's events appear as they happen: the Redis bridge connected, lost (with the
//! error) and reconnected, a connection's queue overflowing, shutdown.

use std::io::IsTerminal;
use std::sync::Mutex;

use fanout::observe::MetricsReporter;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::server::Shared;

/// The server's metrics: a recorder, and what reads the engine into it.
pub(crate) struct Operating {
    recorder: PrometheusRecorder,
    reporter: MetricsReporter,
    /// The Redis bridge (with `--redis`): the server's to shut down, read by scrapes.
    #[cfg(feature = "redis")]
    pub(crate) bridge: Mutex<Option<fanout::bridge::Bridge>>,
    /// Scrapes render one at a time (a scrape is rare; its text is the recorder's).
    render: Mutex<()>,
}

impl Operating {
    pub(crate) fn new(#[cfg(feature = "redis")] bridge: Option<fanout::bridge::Bridge>) -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        let reporter = MetricsReporter::new().label("engine", "chat");
        metrics::with_local_recorder(&recorder, || reporter.describe());
        Self {
            recorder,
            reporter,
            #[cfg(feature = "redis")]
            bridge: Mutex::new(bridge),
            render: Mutex::new(()),
        }
    }

    /// The Prometheus text of the engine's (and the bridge's) numbers now.
    pub(crate) fn render(&self, shared: &Shared) -> String {
        let _one_at_a_time = self.render.lock().unwrap_or_else(|e| e.into_inner());
        metrics::with_local_recorder(&self.recorder, || {
            self.reporter.record(&shared.pubsub.stats());
            #[cfg(feature = "redis")]
            if let Some(bridge) = &*self.bridge.lock().unwrap_or_else(|e| e.into_inner()) {
                self.reporter.record_bridge(&bridge.stats());
            }
        });
        self.recorder.handle().render()
    }
}

/// Answers `GET /metrics` (or `HEAD`) on `stream`, then closes it.
pub(crate) async fn serve_metrics(shared: &Shared, mut stream: TcpStream, head_only: bool) {
    let body = shared.operating.render(shared);
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        if !head_only {
            stream.write_all(body.as_bytes()).await?;
        }
        stream.shutdown().await
    };
    if let Ok(Ok(())) = timeout(shared.config.write_timeout, write).await {
        crate::http::drain(&mut stream, shared.config.close_timeout, 64 * 1024).await;
    }
}

/// Logs the engine's events (and anything else using `tracing`) to stderr at INFO and
/// above. Call once, from `main`; a second call changes nothing.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing_subscriber::filter::LevelFilter::INFO)
        .with_target(true)
        // Colours only for a person at a terminal, not in a log file.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
