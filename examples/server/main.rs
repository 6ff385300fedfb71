//! The example application: an axum server whose handlers call the store.
//!
//! `cargo run --example server` listens on `HOST:PORT` (default
//! `localhost:3000`) under `API_BASE_PATH` (default `/api/v1`). With no
//! database configured it still starts, and its data routes answer 503.

mod app;

use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = dotenvy::dotenv();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    // Tests the connection and logs the outcome, honours DB_AUTO_MIGRATE, and
    // keeps starting when the database is missing or down.
    let store = pronghorn_db::connect_from_env().await?;

    let host = std::env::var("HOST").unwrap_or_else(|_| "localhost".to_owned());
    let port: u16 = match std::env::var("PORT") {
        Ok(p) => p
            .parse()
            .map_err(|_| format!("PORT: '{p}' is not a port number"))?,
        Err(_) => 3000,
    };
    let base = std::env::var("API_BASE_PATH").unwrap_or_else(|_| "/api/v1".to_owned());

    let state = app::AppState {
        store: store.clone(),
        mailer: Arc::new(app::LogMailer),
        started: Instant::now(),
        cookies: session_secrets()?,
        health_token: std::env::var("HEALTH_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty()),
        reset_jobs: Arc::new(tokio::sync::Semaphore::new(app::RESET_JOBS)),
        rate_limit: rate_limit()?,
    };
    // Rows that no longer serve anyone are deleted every ten minutes:
    // expired sessions and refresh tokens, and login-attempt counts whose
    // window has passed (one row per email ever tried).
    let janitor = tokio::spawn({
        let store = store.clone();
        async move {
            let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
            loop {
                every.tick().await;
                if !store.is_configured() {
                    continue;
                }
                let swept = (
                    store.delete_expired_sessions().await,
                    store.delete_expired_refresh_tokens().await,
                    store.prune_login_failures().await,
                );
                match swept {
                    (Ok(s), Ok(t), Ok(l)) => tracing::debug!(
                        sessions = s,
                        refresh_tokens = t,
                        login_counts = l,
                        "deleted expired rows"
                    ),
                    (s, t, l) => {
                        for e in [s.err(), t.err(), l.err()].into_iter().flatten() {
                            tracing::warn!(error = %e, "deleting expired rows failed");
                        }
                    }
                }
            }
        }
    });
    let routes =
        app::router(state, &base).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await?;
    tracing::info!("listening on http://{host}:{port}{base} (try {base}/health)");
    axum::serve(listener, routes)
        .with_graceful_shutdown(shutdown_signal())
        .await?;

    // In-flight requests have finished; close the pool.
    janitor.abort();
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The session cookie's signer from `SESSION_SECRET` (comma-separated for
/// rotation, new first), as the Node app is given it. Without it, a
/// development server signs with a random secret of its own (sessions then
/// end when it restarts, and a Node app cannot read its cookies); a
/// production one refuses to start.
fn session_secrets() -> Result<pronghorn_db::CookieSigner, Box<dyn std::error::Error>> {
    match std::env::var("SESSION_SECRET") {
        Ok(v) if !v.trim().is_empty() => Ok(pronghorn_db::CookieSigner::from_setting(&v)?),
        _ if app::production() => Err(
            "SESSION_SECRET must be set in production (the same value as the Node app's)".into(),
        ),
        _ => {
            tracing::warn!(
                "SESSION_SECRET is not set: signing session cookies with a random secret; \
                 sessions end when the server restarts"
            );
            let secret = pronghorn_db::Token::generate()?;
            Ok(pronghorn_db::CookieSigner::new([secret.expose()])?)
        }
    }
}

/// The API's per-address rate limit from `RATE_LIMIT_WINDOW_MS` and
/// `RATE_LIMIT_MAX_REQUESTS` (the template's variables and defaults); a
/// value that is not a positive whole number is an error naming it.
fn rate_limit() -> Result<app::RateLimit, Box<dyn std::error::Error>> {
    let read = |name: &str| -> Result<Option<u64>, Box<dyn std::error::Error>> {
        match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(format!("{name}: '{}' is not a positive whole number", v.trim()).into()),
            },
            _ => Ok(None),
        }
    };
    let defaults = app::RateLimit::default();
    Ok(app::RateLimit {
        window: read("RATE_LIMIT_WINDOW_MS")?
            .map_or(defaults.window, std::time::Duration::from_millis),
        max_requests: match read("RATE_LIMIT_MAX_REQUESTS")? {
            None => defaults.max_requests,
            Some(n) => u32::try_from(n)
                .map_err(|_| format!("RATE_LIMIT_MAX_REQUESTS: {n} is too large"))?,
        },
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
