//! Each store call runs in a tracing span named after its method, and a
//! call slower than `DB_SLOW_QUERY_MS` logs a warning. Alone in its own
//! test binary: tracing caches per call site whether anyone listens, and
//! other tests on other threads hitting the same call sites with no
//! subscriber can race that cache.

mod common;

use common::{configured, TestDb};
use pronghorn_db::{HealthStore, PgStore};

use std::sync::{Arc, Mutex};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

#[derive(Default, Clone)]
struct Seen {
    spans: Arc<Mutex<Vec<String>>>,
    warnings: Arc<Mutex<Vec<String>>>,
}

struct Recorder(Seen);

struct Fields(String);
impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        self.0
            .spans
            .lock()
            .unwrap()
            .push(attrs.metadata().name().to_owned());
    }
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut f = Fields(String::new());
            event.record(&mut f);
            self.0.warnings.lock().unwrap().push(f.0);
        }
    }
}

async fn run_with(slow_ms: &str) -> Seen {
    let seen = Seen::default();
    let subscriber = tracing_subscriber::registry().with(Recorder(seen.clone()));
    let _guard = tracing::subscriber::set_default(subscriber);
    let db = TestDb::migrated().await;
    let url = db.url();
    let config = configured(&[
        ("DB_CONNECTION_STRING", &url),
        ("DB_SLOW_QUERY_MS", slow_ms),
    ]);
    let store = PgStore::new(config).await.expect("store");
    store.server_info().await.expect("query");
    store.close().await;
    seen
}

#[tokio::test(flavor = "current_thread")]
async fn each_call_has_a_span_named_after_its_method_and_slow_calls_warn() {
    let seen = run_with("0").await;
    assert!(
        seen.spans
            .lock()
            .unwrap()
            .iter()
            .any(|s| s == "server_info"),
        "{:?}",
        seen.spans.lock().unwrap()
    );
    let warnings = seen.warnings.lock().unwrap().clone();
    let slow: Vec<_> = warnings
        .iter()
        .filter(|w| w.contains("slow database call"))
        .collect();
    assert_eq!(slow.len(), 1, "{warnings:?}");
    assert!(slow[0].contains("method=\"server_info\""), "{}", slow[0]);
    assert!(slow[0].contains("outcome=\"ok\""), "{}", slow[0]);

    let seen = run_with("60000").await;
    let warnings = seen.warnings.lock().unwrap().clone();
    assert!(
        !warnings.iter().any(|w| w.contains("slow database call")),
        "{warnings:?}"
    );
}
