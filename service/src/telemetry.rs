//! JSON logs through `tracing`, one object per line on stdout.
//!
//! Every line logged while a request is being handled carries a `request`
//! object: its request id, method, path and the caller's W3C `traceparent`.
//! They come from a task-local [`RequestContext`] that the outermost layer
//! sets for the request's task, not from a tracing span: a span per request
//! formatted its four fields to JSON at creation and went through the
//! subscriber at every poll, about 6% of the service's CPU on the read
//! benchmark, for requests that almost never log anything.

use std::fmt;
use std::sync::Arc;

use axum::http::HeaderValue;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{fmt as subscriber_fmt, EnvFilter};

tokio::task_local! {
    static REQUEST: Arc<RequestContext>;
}

/// What the logs say about the request being handled.
#[derive(Debug)]
pub struct RequestContext {
    pub request_id: HeaderValue,
    pub method: axum::http::Method,
    pub path: String,
    pub traceparent: Option<HeaderValue>,
}

impl RequestContext {
    /// Runs `future` with this context attached to every line it logs.
    pub async fn scope<F: std::future::Future>(self: Arc<Self>, future: F) -> F::Output {
        REQUEST.scope(self, future).await
    }

    /// Runs `f` with this context attached to every line it logs.
    pub fn in_scope<R>(self: Arc<Self>, f: impl FnOnce() -> R) -> R {
        REQUEST.sync_scope(self, f)
    }

    fn to_json(&self) -> serde_json::Value {
        let text = |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
        let mut object = serde_json::json!({
            "request_id": text(&self.request_id),
            "method": self.method.as_str(),
            "path": self.path,
        });
        if let Some(traceparent) = &self.traceparent {
            object["traceparent"] = text(traceparent).into();
        }
        object
    }
}

/// The JSON format of `tracing-subscriber`, plus the `request` object when
/// the line is logged inside a request.
struct WithRequest<F>(F);

impl<S, N, F> FormatEvent<S, N> for WithRequest<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Ok(request) = REQUEST.try_with(|request| request.to_json()) else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        // The inner format writes one object and a newline: reopen the object.
        let object = line.trim_end();
        match object.strip_suffix('}') {
            Some(fields) if fields.len() > 1 => {
                writeln!(writer, "{fields},\"request\":{request}}}")
            }
            _ => writer.write_str(&line),
        }
    }
}

/// The format of every line: `tracing-subscriber`'s JSON with the current
/// span, plus the request.
fn line_format() -> WithRequest<subscriber_fmt::format::Format<subscriber_fmt::format::Json>> {
    WithRequest(
        subscriber_fmt::format()
            .json()
            .with_current_span(true)
            .with_span_list(false),
    )
}

/// Installs the global subscriber. `RUST_LOG` wins over the configured filter
/// so that an operator can turn up one module without a config change.
pub fn init(default_filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // try_init: tests build many applications in one process.
    let _ = subscriber_fmt()
        .json()
        .event_format(line_format())
        .with_env_filter(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_logged_inside_a_request_carry_it() {
        let buffer = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = Arc::clone(&buffer);
        let subscriber = subscriber_fmt()
            .json()
            .event_format(line_format())
            .with_writer(move || Sink(Arc::clone(&sink)))
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let context = Arc::new(RequestContext {
            request_id: HeaderValue::from_static("req-1"),
            method: axum::http::Method::POST,
            path: "/v1/transfers".into(),
            traceparent: Some(HeaderValue::from_static(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )),
        });
        context
            .scope(async { tracing::warn!(attempt = 2, "inside") })
            .await;
        tracing::warn!("outside");

        let text = String::from_utf8(buffer.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is one JSON object"))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["fields"]["message"], "inside");
        assert_eq!(lines[0]["fields"]["attempt"], 2);
        assert_eq!(
            lines[0]["request"],
            serde_json::json!({
                "request_id": "req-1",
                "method": "POST",
                "path": "/v1/transfers",
                "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            })
        );
        assert_eq!(lines[1]["fields"]["message"], "outside");
        assert!(lines[1].get("request").is_none(), "{text}");
    }

    struct Sink(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
