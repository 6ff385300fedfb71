//! The example server in tests: served on a free port over real HTTP, with
//! a mailer that keeps the reset tokens it would send.

#![allow(dead_code)]

#[path = "../../examples/server/app.rs"]
pub mod app;

use pronghorn_db::{ResetDelivery, Store};
pub use reqwest::Method as M;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Keeps the reset tokens the app "emails", so the test can follow the link.
#[derive(Default)]
pub struct Outbox(pub Mutex<Vec<(String, String)>>);

impl app::Mailer for Outbox {
    fn send_password_reset(&self, delivery: &ResetDelivery) {
        if let Ok(mut sent) = self.0.lock() {
            sent.push((delivery.email.clone(), delivery.token.expose().to_owned()));
        }
    }
}

/// The example's `SESSION_SECRET` in these tests: two secrets, as during a
/// rotation.
pub const SESSION_SECRET: &str = "example-test-secret,example-retired-secret";

/// The example's `HEALTH_TOKEN` in these tests.
pub const HEALTH_TOKEN: &str = "example-test-health-token";

pub struct Server {
    /// The API's base URL (`http://127.0.0.1:<port>/api/v1`).
    pub base: String,
    /// The client the helpers use.
    pub http: reqwest::Client,
}

/// Serves the example app on the store, under `/api/v1`.
pub async fn serve(store: Arc<dyn Store>, outbox: Arc<Outbox>) -> Server {
    serve_state(state(store, outbox)).await
}

/// The state `serve` uses, for a test to change before `serve_state`.
pub fn state(store: Arc<dyn Store>, outbox: Arc<Outbox>) -> app::AppState {
    app::AppState {
        store,
        mailer: outbox,
        started: Instant::now(),
        cookies: pronghorn_db::CookieSigner::from_setting(SESSION_SECRET).expect("secret"),
        health_token: Some(HEALTH_TOKEN.to_owned()),
        reset_jobs: Arc::new(tokio::sync::Semaphore::new(app::RESET_JOBS)),
        // Generous: the tests of other things make many requests from one
        // address; the limit itself is tested with a state of its own.
        rate_limit: app::RateLimit {
            window: std::time::Duration::from_secs(60),
            max_requests: 100_000,
        },
    }
}

/// Serves the example app with this state, under `/api/v1`.
pub async fn serve_state(state: app::AppState) -> Server {
    let routes = app::router(state, "/api/v1").into_make_service_with_connect_info::<SocketAddr>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, routes).await;
    });
    Server {
        base: format!("http://{addr}/api/v1"),
        http: reqwest::Client::new(),
    }
}

/// One HTTP exchange: method, path, optional JSON body and session cookie.
pub async fn call(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    cookie: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    let mut req = s.http.request(method, format!("{}{path}", s.base));
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(c) = cookie {
        req = req.header("cookie", format!("{}={c}", app::SESSION_COOKIE));
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let set_cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = res.text().await.expect("body");
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, json, set_cookie)
}

/// The session cookie's value in a `Set-Cookie` header.
pub fn sid_of(set_cookie: Option<String>) -> String {
    let header = set_cookie.expect("a session cookie is set");
    let value = header
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .expect("cookie value");
    assert!(header.contains("HttpOnly"), "{header}");
    value
}

/// Logs in; returns the session cookie's value and the refresh token.
pub async fn login(s: &Server, email: &str, password: &str) -> (String, String) {
    let (status, body, cookie) = call(
        s,
        M::POST,
        "/auth/login",
        Some(json!({"email": email, "password": password})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let refresh = body["refreshToken"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    (sid_of(cookie), refresh)
}
