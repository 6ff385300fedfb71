//! Per-call observability: every store method runs inside [`observed!`],
//! which opens a `tracing` span named after the method, records the call's
//! duration and outcome, and warns when the call is slower than the
//! configured threshold (`DB_SLOW_QUERY_MS`). Only the method's name is
//! logged, never its arguments.

use std::time::{Duration, Instant};

/// Records the outcome of a finished call on its span, and warns when slow.
pub(crate) fn finish<T>(
    span: &tracing::Span,
    method: &'static str,
    started: Instant,
    slow: Duration,
    result: &crate::Result<T>,
) {
    let elapsed = started.elapsed();
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => e.kind(),
    };
    let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    span.record("outcome", outcome);
    span.record("elapsed_ms", elapsed_ms);
    if elapsed >= slow {
        tracing::warn!(parent: span, method, elapsed_ms, outcome, "slow database call");
    } else {
        tracing::debug!(parent: span, method, elapsed_ms, outcome, "database call");
    }
}

/// Runs `$body` (an expression producing a future of `crate::Result<T>`)
/// inside a span named `$method`, then records duration and outcome.
macro_rules! observed {
    ($slow:expr, $method:literal, $body:expr) => {{
        let span = tracing::info_span!(
            target: "pronghorn_db::store",
            $method,
            outcome = tracing::field::Empty,
            elapsed_ms = tracing::field::Empty
        );
        let started = std::time::Instant::now();
        let body = $body;
        // A span no subscriber records needs no entering on every poll.
        let result = if span.is_disabled() {
            body.await
        } else {
            tracing::Instrument::instrument(body, span.clone()).await
        };
        $crate::observe::finish(&span, $method, started, $slow, &result);
        result
    }};
}
pub(crate) use observed;
