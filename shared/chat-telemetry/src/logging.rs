//! Logs and traces.
//!
//! Logs go to stderr, filtered by `RUST_LOG` (default `info`), as JSON lines
//! when `LOG_FORMAT=json` (with the fields of the spans they happen in, among
//! them `trace_id`). Traces are exported over OTLP/HTTP only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
//! set (and `OTEL_SDK_DISABLED` is not `true`); the exporter reads the other
//! standard variables itself (`OTEL_EXPORTER_OTLP_PROTOCOL` —
//! `http/protobuf` or `http/json` —, headers, timeout), and the SDK reads
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER`
//! and the batch settings. With none of them set, no OpenTelemetry layer is
//! installed at all, so tracing costs nothing extra.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// What must be flushed before the process exits.
#[derive(Debug, Default)]
#[must_use = "call shutdown() before exiting so buffered spans are exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are being exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("could not flush traces: {e}");
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn otlp_requested() -> bool {
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    !disabled
        && (env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some())
}

fn tracer_provider(service: &'static str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| e.to_string())?;
    let mut resource = Resource::builder();
    if env("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Installs logging and, when asked for, trace export. `service` names the
/// service unless `OTEL_SERVICE_NAME` does. Safe to call more than once
/// (later calls install nothing).
pub fn init_tracing(service: &'static str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = env("LOG_FORMAT").is_some_and(|v| v.eq_ignore_ascii_case("json"));
    // Colours only for a person at a terminal, never in files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let fmt = if json {
        fmt.json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed()
    } else {
        fmt.boxed()
    };

    let (otel, telemetry, problem) = if otlp_requested() {
        match tracer_provider(service) {
            Ok(provider) => {
                opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
                let layer = tracing_opentelemetry::layer()
                    .with_tracer(provider.tracer("chat"))
                    .boxed();
                (
                    Some(layer),
                    Telemetry {
                        provider: Some(provider),
                    },
                    None,
                )
            }
            Err(e) => (None, Telemetry::default(), Some(e)),
        }
    } else {
        (None, Telemetry::default(), None)
    };
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()
        .is_ok();
    if let Some(e) = problem {
        tracing::warn!(error = %e, "OTLP trace export is off: the exporter could not be built");
    }
    if installed {
        telemetry
    } else {
        Telemetry::default()
    }
}

/// `error: cause: cause`: an error and every error behind it, for one log line.
pub fn cause_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
