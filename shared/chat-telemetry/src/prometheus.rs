//! The Prometheus exporter of the `metrics` crate, installed once per
//! process (the single-process mode runs both services in one).
//!
//! The recorder keeps every histogram sample until its upkeep folds them into
//! the summary; a scrape does it too, but a replica nobody scrapes would keep
//! them all (8 bytes a sample, without bound). A thread of its own runs the
//! upkeep every [`UPKEEP_EVERY`].

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// How often the histogram samples are folded into their summaries.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The name of the thread that runs the upkeep.
pub const UPKEEP_THREAD: &str = "metrics-upkeep";

/// The handle that renders `/metrics`; the first call installs the recorder
/// and starts its upkeep.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            let upkept = handle.clone();
            let started = std::thread::Builder::new()
                .name(UPKEEP_THREAD.into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkept.run_upkeep();
                    }
                });
            if let Err(e) = started {
                tracing::warn!(error = %e, "no metrics upkeep thread; histograms grow until scraped");
            }
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread_names() -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .map(|n| n.trim().to_owned())
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn installing_the_recorder_starts_its_upkeep() {
        let handle = prometheus();
        metrics::histogram!("upkeep_test_seconds").record(0.5);
        assert!(handle.render().contains("upkeep_test_seconds"));
        // The new thread names itself once it runs.
        let named = || thread_names().iter().any(|n| n == UPKEEP_THREAD);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !named() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            named(),
            "a thread named {UPKEEP_THREAD}: {:?}",
            thread_names()
        );
    }
}
