//! The example application's routes: axum handlers that call the store.
//!
//! Everything the database layer reports as an [`Error`] becomes an HTTP
//! answer in one place, [`ApiError`]'s `IntoResponse`.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use pronghorn_db::migrate::MigrationState;
use pronghorn_db::models::{
    MessageOrder, NewConversation, NewLocalUser, NewMessage, ProfileUpdate, RequestMeta, Role,
    User, UserFilter, UserId,
};
use pronghorn_db::{
    CookieSigner, Error, Page, PageRequest, ResetDelivery, ResetPolicy, SessionCookie, SessionData,
    Store, Token,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// The session cookie's name, as the Node template names it.
pub const SESSION_COOKIE: &str = "pronghorn.sid";
/// How long a login session lasts.
const SESSION_TTL: chrono::Duration = chrono::Duration::hours(24);
/// How long a refresh token lasts.
const REFRESH_TTL: chrono::Duration = chrono::Duration::days(30);

/// Where password-reset tokens go. A real application sends an email; the
/// example's default only logs that a reset was requested (never the token).
pub trait Mailer: Send + Sync {
    /// Delivers a password-reset token to its account's owner.
    fn send_password_reset(&self, delivery: &ResetDelivery);
}

/// The example's mailer: logs the recipient, never the token.
pub struct LogMailer;

impl Mailer for LogMailer {
    fn send_password_reset(&self, delivery: &ResetDelivery) {
        tracing::info!(user = %delivery.user_id, "a password reset email would be sent now");
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The data layer: PostgreSQL, or disabled.
    pub store: Arc<dyn Store>,
    /// Where reset tokens are delivered.
    pub mailer: Arc<dyn Mailer>,
    /// When the server started, for `/health`'s uptime.
    pub started: Instant,
    /// Signs and verifies the session cookie as express-session does with
    /// the same `SESSION_SECRET`.
    pub cookies: CookieSigner,
    /// `HEALTH_TOKEN`: a bearer token that opens `/health/detailed` to a
    /// monitor without an admin session. `None`: admins only.
    pub health_token: Option<String>,
    /// Password-reset requests being worked on after their answer; when
    /// none is free, a request is refused with 503 instead of queueing.
    pub reset_jobs: Arc<Semaphore>,
    /// The per-client-address limit on API requests.
    pub rate_limit: RateLimit,
}

/// At most `max_requests` per client address in `window`
/// (`RATE_LIMIT_MAX_REQUESTS`, default 100, in `RATE_LIMIT_WINDOW_MS`,
/// default 15 minutes, as the template sets them), refilled evenly: one
/// request every `window / max_requests`.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    /// The window.
    pub window: Duration,
    /// Requests allowed in it.
    pub max_requests: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            window: Duration::from_secs(15 * 60),
            max_requests: 100,
        }
    }
}

/// Password-reset requests handled at once after their answer, by default.
pub const RESET_JOBS: usize = 16;

/// The routes, mounted under `base` (for example `/api/v1`).
pub fn router(state: AppState, base: &str) -> Router {
    let api = Router::new()
        .route("/health", get(health))
        .route("/health/detailed", get(health_detailed))
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
        .route("/auth/logout", post(logout))
        .route("/auth/logout-all", post(logout_all))
        .route("/auth/me", get(me))
        .route("/auth/password-reset", post(password_reset))
        .route("/auth/password-reset/confirm", post(password_reset_confirm))
        .route("/users", get(list_users))
        .route("/users/profile", get(profile).put(update_profile))
        .route("/users/password", put(change_password))
        .route("/users/me", delete(delete_me))
        .route("/users/admin/password-resets", get(pending_resets))
        .route("/users/{id}", delete(delete_user))
        .route("/users/{id}/role", put(change_role))
        .route("/users/{id}/block", post(block))
        .route("/users/{id}/unblock", post(unblock))
        .route("/users/{id}/audit", get(audit))
        .route(
            "/conversations",
            get(list_conversations).post(create_conversation),
        )
        .route(
            "/conversations/{id}",
            get(get_conversation).delete(delete_conversation),
        )
        .route(
            "/conversations/{id}/messages",
            get(list_messages).post(post_message),
        )
        .fallback(no_route)
        .method_not_allowed_fallback(no_method);
    let limit = state.rate_limit;
    let api = api.with_state(state);
    let app = if base.is_empty() || base == "/" {
        api
    } else {
        Router::new().nest(base, api).fallback(no_route)
    };
    // A bucket of `max_requests` per client (see `ClientKey`), refilled one
    // request every `window / max_requests`. It answers 429 before any
    // handler runs.
    let max = limit.max_requests.max(1);
    let period = (limit.window / max).max(Duration::from_millis(1));
    let config = tower_governor::governor::GovernorConfigBuilder::default()
        .key_extractor(ClientKey)
        .period(period)
        .burst_size(max)
        .use_headers()
        .finish();
    let app = match config {
        Some(config) => {
            // Once per window, the buckets of clients quiet long enough to
            // be full again are dropped, so that a client rotating
            // addresses cannot grow the limiter without bound.
            sweep_while_alive(config.limiter(), limit.window, |limiter| {
                limiter.retain_recent()
            });
            app.layer(tower_governor::GovernorLayer::new(config))
        }
        None => {
            tracing::error!("the rate limit cannot be built; serving without it");
            app
        }
    };
    // Outermost: every error answer, the limiter's and axum's own included,
    // gets the one JSON error body.
    app.layer(axum::middleware::map_response(one_error_body))
}

/// Calls `sweep` on `target` once per `every` (at least a second), from
/// a task that holds `target` weakly and ends once it is dropped. Outside
/// a Tokio runtime nothing is started. Returns the task, if started.
pub fn sweep_while_alive<T: Send + Sync + 'static>(
    target: &Arc<T>,
    every: Duration,
    sweep: fn(&T),
) -> Option<tokio::task::JoinHandle<()>> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let target = Arc::downgrade(target);
    let every = every.max(Duration::from_secs(1));
    Some(runtime.spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.tick().await;
        loop {
            ticks.tick().await;
            match target.upgrade() {
                Some(target) => sweep(&target),
                None => break,
            }
        }
    }))
}

/// The rate limit's key: the peer's IPv4 address, or the /64 network of
/// its IPv6 address. One host is usually given a whole /64, so keying on
/// the full IPv6 address would hand it 2^64 buckets; an IPv4-mapped address
/// counts as the IPv4 address it carries. Never a forwarded header, which
/// any client can write. A request without `ConnectInfo` (a server not
/// started with `into_make_service_with_connect_info`) fails with
/// `UnableToExtractKey`, answered as an internal error.
#[derive(Debug, Clone, Copy)]
pub struct ClientKey;

impl tower_governor::key_extractor::KeyExtractor for ClientKey {
    type Key = std::net::IpAddr;

    fn extract<T>(
        &self,
        req: &axum::http::Request<T>,
    ) -> Result<Self::Key, tower_governor::GovernorError> {
        req.extensions()
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| client_key(c.0.ip()))
            .ok_or(tower_governor::GovernorError::UnableToExtractKey)
    }
}

/// What [`ClientKey`] keys `ip` on.
pub fn client_key(ip: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

async fn no_route() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn no_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

/// Gives an error answer that is not JSON yet (axum's rejections, the rate
/// limiter's 429, a body too large) the one JSON error body, keeping its
/// status and headers (`Retry-After`, `Allow`).
async fn one_error_body(response: Response) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    let message = match status {
        StatusCode::TOO_MANY_REQUESTS => "too many requests; try again later".to_owned(),
        s => s.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let (json_parts, body) = ApiError::new(status, code, message)
        .into_response()
        .into_parts();
    parts.headers.extend(json_parts.headers);
    Response::from_parts(parts, body)
}

// ---- errors ----------------------------------------------------------------

/// An error answer. Built from the crate's [`Error`] (mapped once, below) or
/// from the HTTP layer's own checks.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<&'static str>,
    retry_after: Option<Duration>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    fn bad_request(status: StatusCode, message: &str) -> Self {
        ApiError::new(status, "bad_request", message)
    }

    fn unauthenticated() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "log in first")
    }

    fn admin_only() -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", "admins only")
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let (status, code) = match &e {
            Error::LoginThrottled { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            Error::Unavailable { target, .. }
                if target == pronghorn_db::password::HASHING_TARGET =>
            {
                (StatusCode::SERVICE_UNAVAILABLE, "busy")
            }
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Error::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            Error::Validation { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
            Error::Forbidden { .. } => (StatusCode::FORBIDDEN, "forbidden"),
            Error::AccountBlocked => (StatusCode::FORBIDDEN, "account_blocked"),
            Error::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            Error::TokenRejected { .. } | Error::TokenReused => {
                (StatusCode::UNAUTHORIZED, "invalid_token")
            }
            Error::Disabled => (StatusCode::SERVICE_UNAVAILABLE, "database_disabled"),
            Error::Unavailable { .. } | Error::TransactionConflict { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable")
            }
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let field = match &e {
            Error::Validation { field, .. } => Some(*field),
            _ => None,
        };
        let retry_after = match &e {
            Error::LoginThrottled { retry_after } => Some(*retry_after),
            Error::Unavailable { .. } => Some(Duration::from_secs(1)),
            _ => None,
        };
        let message = match status {
            StatusCode::INTERNAL_SERVER_ERROR => {
                tracing::error!(error = %e, "request failed");
                "internal server error".to_owned()
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                tracing::warn!(error = %e, "unavailable");
                match (code, e) {
                    (_, Error::Disabled) => "the database is disabled".to_owned(),
                    ("busy", _) => "the server is busy; try again".to_owned(),
                    _ => "the database is unavailable; try again".to_owned(),
                }
            }
            // Neither constraint names nor token states reach a client: the
            // first describe the schema, the second tell an attacker which
            // stolen tokens were ever real.
            _ => match e {
                Error::Conflict { .. } => "it already exists".to_owned(),
                Error::TokenRejected { .. } | Error::TokenReused => {
                    "the token is invalid or has expired".to_owned()
                }
                Error::LoginThrottled { .. } => {
                    "too many failed logins for this email; try again later".to_owned()
                }
                e => e.to_string(),
            },
        };
        ApiError {
            status,
            code,
            message,
            field,
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(field) = self.field {
            error["field"] = json!(field);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(wait) = self.retry_after {
            // Whole seconds, rounded up: never an invitation to retry early.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

type ApiResult<T> = Result<T, ApiError>;

// ---- extractors whose rejections use the one error body ----------------------

/// A JSON body, as `axum::Json`, refused with the JSON error body.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(JsonBody(value)),
            // Generic words: serde's own messages may quote the input, and
            // the input may be a password.
            Err(rejection) => Err(ApiError::bad_request(
                rejection.status(),
                match rejection {
                    JsonRejection::MissingJsonContentType(_) => "send the body as application/json",
                    JsonRejection::JsonSyntaxError(_) => "the body is not valid JSON",
                    JsonRejection::JsonDataError(_) => {
                        "the body does not have the expected fields and types"
                    }
                    _ => "the body cannot be read",
                },
            )),
        }
    }
}

/// Path parameters, as `axum::extract::Path`, refused with the JSON error
/// body.
pub struct UrlPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for UrlPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| UrlPath(value))
            .map_err(|_| ApiError::bad_request(StatusCode::BAD_REQUEST, "the path is invalid"))
    }
}

/// A query string, as `axum::extract::Query`, refused with the JSON error
/// body.
pub struct UrlQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for UrlQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| UrlQuery(value))
            .map_err(|_| {
                ApiError::bad_request(StatusCode::BAD_REQUEST, "the query string is invalid")
            })
    }
}

// ---- request context -------------------------------------------------------

/// The client's address and user agent, for the audit log.
pub struct Meta(RequestMeta);

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Meta(RequestMeta { ip, user_agent }))
    }
}

/// The session id in the request's session cookie, when a secret signed
/// it. The first cookie of that name counts, as in express-session; an
/// unsigned or badly signed one names no session.
fn session_id(headers: &HeaderMap, cookies: &CookieSigner) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| name.trim() == SESSION_COOKIE)
        .and_then(|(_, value)| {
            // The cookie package drops one pair of surrounding quotes.
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            cookies.verify(value)
        })
}

/// The logged-in user, from the session cookie.
pub struct CurrentUser {
    user: User,
    sid: String,
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        // With no database there are no sessions: say so, not "log in".
        if !state.store.is_configured() {
            return Err(Error::Disabled.into());
        }
        let sid =
            session_id(&parts.headers, &state.cookies).ok_or_else(ApiError::unauthenticated)?;
        let session = state
            .store
            .get_session(&sid)
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        let id = session
            .data
            .fields
            .get("userId")
            .and_then(Value::as_str)
            .and_then(canonical_user_id)
            .ok_or_else(ApiError::unauthenticated)?;
        let user = match state.store.user_by_id(UserId(id)).await {
            Err(Error::NotFound { .. }) => return Err(ApiError::unauthenticated()),
            other => other?,
        };
        if user.blocked() {
            return Err(Error::AccountBlocked.into());
        }
        Ok(CurrentUser { user, sid })
    }
}

/// The id in a session's `userId`, accepted only in the form the store
/// matches when it ends a user's sessions (lowercase, hyphenated): a session
/// naming its user any other way would survive a password reset.
fn canonical_user_id(text: &str) -> Option<Uuid> {
    text.parse::<Uuid>()
        .ok()
        .filter(|id| id.hyphenated().to_string() == text)
}

/// A logged-in admin or superadmin.
pub struct Admin(User);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let current = CurrentUser::from_request_parts(parts, state).await?;
        match current.user.parsed_role() {
            Some(Role::Admin | Role::Superadmin) => Ok(Admin(current.user)),
            _ => Err(ApiError::admin_only()),
        }
    }
}

/// Whether `APP_ENV` or `NODE_ENV` says production.
pub fn production() -> bool {
    // The crate's one rule (trimmed, any case), as the seed guard reads it.
    pronghorn_db::seed::is_production(|k| std::env::var(k).ok())
}

/// The `Set-Cookie` value for a session id, signed and encoded as
/// express-session sets it (so always a valid header), or one that clears
/// the cookie when `sid` is empty.
fn session_cookie(cookies: &CookieSigner, sid: &str, max_age: i64) -> ApiResult<HeaderValue> {
    // Over plain HTTP in development; HTTPS-only in production, as the
    // template does.
    let secure = if production() { "; Secure" } else { "" };
    let value = if sid.is_empty() {
        String::new()
    } else {
        cookies.cookie_value(sid)
    };
    let value = format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&value)
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "bad cookie"))
}

// ---- health ----------------------------------------------------------------

/// Public: whether the app and its database serve, from the pool's last
/// known state. A query runs only when that state is not "connected" (at
/// start, or after a failure), so a flood of probes costs at most one cheap
/// query each while the database is down, and none while it is up.
async fn health(State(state): State<AppState>) -> Response {
    let store = &state.store;
    let connected =
        store.is_configured() && (store.is_connected() || store.server_info().await.is_ok());
    let body = json!({
        "status": if connected { "healthy" } else { "degraded" },
        "timestamp": chrono::Utc::now(),
        "uptime": state.started.elapsed().as_secs(),
        "database": {
            "configured": store.is_configured(),
            "connected": connected,
        },
    });
    let status = if connected {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Who may read `/health/detailed`: a monitor presenting `HEALTH_TOKEN` as
/// a bearer token, or a logged-in admin.
pub struct HealthReader;

impl FromRequestParts<AppState> for HealthReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let (Some(presented), Some(expected)) = (bearer, state.health_token.as_deref()) {
            if same_secret(presented.as_bytes(), expected.as_bytes()) {
                return Ok(HealthReader);
            }
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "a valid health token or an admin session is required",
            ));
        }
        Admin::from_request_parts(parts, state)
            .await
            .map(|_| HealthReader)
    }
}

/// Compares two secrets in time that depends on their lengths only.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// For admins and monitors: server version, pool figures, replicas,
/// migrations and websocket statistics.
async fn health_detailed(State(state): State<AppState>, _reader: HealthReader) -> Response {
    let store = &state.store;
    let info = store.server_info().await.ok();
    let connected = info.is_some();
    let migrations: Option<Vec<MigrationState>> = store.migrations().await.ok();
    let websockets = store.websocket_stats().await.ok();
    let body = json!({
        "status": if connected { "healthy" } else { "degraded" },
        "timestamp": chrono::Utc::now(),
        "uptime": state.started.elapsed().as_secs(),
        "database": {
            "configured": store.is_configured(),
            "connected": connected,
            "poolStats": store.pool_stats(),
            // State and lag only: targets name hosts and users.
            "replicas": store.replica_status().iter().map(|r| json!({
                "healthy": r.healthy,
                "lagMs": r.lag_ms,
            })).collect::<Vec<_>>(),
            "version": info.map(|i| i.version),
            "migrations": migrations.map(|m| json!({
                "applied": m.iter().filter(|m| m.applied).count(),
                "pending": m.iter().filter(|m| !m.applied).count(),
            })),
        },
        "websockets": websockets,
    });
    let status = if connected {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

// ---- auth ------------------------------------------------------------------

#[derive(Deserialize)]
struct Register {
    email: String,
    password: String,
    display_name: String,
}

async fn register(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Register>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let user = state
        .store
        .create_user(NewLocalUser::new(
            body.email,
            body.password,
            body.display_name,
        ))
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
}

async fn login(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Login>,
) -> ApiResult<Response> {
    let sid = Token::generate()?;
    let data = SessionData::new(SessionCookie::with_max_age(SESSION_TTL));
    // One call: a password change racing this login cannot leave it a
    // session or a refresh token.
    let logged_in = state
        .store
        .log_in(
            &body.email,
            &body.password,
            sid.expose(),
            &data,
            Some(REFRESH_TTL),
        )
        .await?;
    let refresh = logged_in
        .refresh_token
        .ok_or_else(|| Error::Internal("log_in issued no refresh token".into()))?;
    let mut response = Json(json!({
        "user": logged_in.user,
        "refreshToken": refresh.token.expose(),
        "refreshTokenExpiresAt": refresh.expires_at,
    }))
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie(&state.cookies, sid.expose(), SESSION_TTL.num_seconds())?,
    );
    Ok(response)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Refresh {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<Refresh>,
) -> ApiResult<Json<Value>> {
    let next = state
        .store
        .rotate_refresh_token(&body.refresh_token, REFRESH_TTL)
        .await?;
    Ok(Json(json!({
        "refreshToken": next.token.expose(),
        "refreshTokenExpiresAt": next.expires_at,
    })))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Logout {
    refresh_token: Option<String>,
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Option<Json<Logout>>,
) -> ApiResult<Response> {
    if !state.store.is_configured() {
        return Err(Error::Disabled.into());
    }
    if let Some(sid) = session_id(&headers, &state.cookies) {
        state.store.destroy_session(&sid).await?;
    }
    if let Some(token) = body.and_then(|b| b.0.refresh_token) {
        state.store.revoke_refresh_token(&token).await?;
    }
    let mut response = Json(json!({ "message": "logged out" })).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state.cookies, "", 0)?);
    Ok(response)
}

/// Logs the caller out on every device: every session and refresh token.
async fn logout_all(State(state): State<AppState>, current: CurrentUser) -> ApiResult<Response> {
    let ended = state.store.end_all_sessions(current.user.id).await?;
    let mut response = Json(json!({
        "message": "logged out everywhere",
        "sessionsEnded": ended.sessions,
        "refreshTokensRevoked": ended.refresh_tokens,
    }))
    .into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state.cookies, "", 0)?);
    Ok(response)
}

async fn me(current: CurrentUser) -> Json<User> {
    Json(current.user)
}

#[derive(Deserialize)]
struct ResetRequest {
    email: String,
}

async fn password_reset(
    State(state): State<AppState>,
    Meta(meta): Meta,
    JsonBody(body): JsonBody<ResetRequest>,
) -> ApiResult<Json<Value>> {
    // Bad input and a missing database are answered now; the request itself
    // (which writes only when the account exists) runs after the answer, so
    // the answer's timing says nothing about the email.
    pronghorn_db::validate::email(&body.email)?;
    if !state.store.is_configured() {
        return Err(Error::Disabled.into());
    }
    // A bounded number of requests are worked on at once; past that the
    // answer is 503, the same for every email, instead of a task per
    // request piling up.
    let Ok(job) = state.reset_jobs.clone().try_acquire_owned() else {
        let mut busy = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many password reset requests at once; try again",
        );
        busy.retry_after = Some(Duration::from_secs(1));
        return Err(busy);
    };
    tokio::spawn(async move {
        let _job = job;
        match state
            .store
            .request_password_reset(&body.email, &ResetPolicy::default(), &meta)
            .await
        {
            Ok(requested) => {
                if let Some(delivery) = &requested.delivery {
                    state.mailer.send_password_reset(delivery);
                }
            }
            Err(e) => tracing::warn!(error = %e, "a password reset request failed"),
        }
    });
    // The same answer whether or not the email has an account.
    Ok(Json(json!({
        "message": "If an account exists for that email, a reset link has been sent."
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResetConfirm {
    reset_token: String,
    new_password: String,
    confirm_password: String,
}

async fn password_reset_confirm(
    State(state): State<AppState>,
    Meta(meta): Meta,
    JsonBody(body): JsonBody<ResetConfirm>,
) -> ApiResult<Json<Value>> {
    if body.new_password != body.confirm_password {
        return Err(Error::validation("confirmPassword", "does not match newPassword").into());
    }
    state
        .store
        .reset_password(&body.reset_token, &body.new_password, &meta)
        .await?;
    Ok(Json(
        json!({ "message": "password reset; log in with the new password" }),
    ))
}

// ---- the user's own account -------------------------------------------------

async fn profile(current: CurrentUser) -> Json<User> {
    Json(current.user)
}

async fn update_profile(
    State(state): State<AppState>,
    current: CurrentUser,
    Meta(meta): Meta,
    JsonBody(update): JsonBody<ProfileUpdate>,
) -> ApiResult<Json<User>> {
    Ok(Json(
        state
            .store
            .update_profile(current.user.id, &update, &meta)
            .await?,
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

async fn change_password(
    State(state): State<AppState>,
    current: CurrentUser,
    Meta(meta): Meta,
    JsonBody(body): JsonBody<PasswordChange>,
) -> ApiResult<Response> {
    state
        .store
        .change_password(
            current.user.id,
            &body.current_password,
            &body.new_password,
            &meta,
        )
        .await?;
    // The change ended every session, this one too.
    let mut response = Json(json!({ "message": "password changed; log in with the new password" }))
        .into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state.cookies, "", 0)?);
    Ok(response)
}

async fn delete_me(
    State(state): State<AppState>,
    current: CurrentUser,
    Meta(meta): Meta,
) -> ApiResult<Response> {
    state
        .store
        .delete_own_account(current.user.id, &meta)
        .await?;
    state.store.destroy_session(&current.sid).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state.cookies, "", 0)?);
    Ok(response)
}

// ---- admin -----------------------------------------------------------------

/// Page parameters in the query string: `?limit=20&cursor=...`.
#[derive(Deserialize, Default)]
struct PageQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

impl PageQuery {
    fn page(&self) -> PageRequest {
        PageRequest {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
    }
}

#[derive(Deserialize)]
struct UserListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    role: Option<String>,
    blocked: Option<bool>,
    search: Option<String>,
}

async fn list_users(
    State(state): State<AppState>,
    _admin: Admin,
    UrlQuery(q): UrlQuery<UserListQuery>,
) -> ApiResult<Json<Page<User>>> {
    let filter = UserFilter {
        role: q.role.as_deref().map(str::parse::<Role>).transpose()?,
        blocked: q.blocked,
        search: q.search,
    };
    let page = PageRequest {
        limit: q.limit,
        cursor: q.cursor,
    };
    Ok(Json(state.store.list_users(&filter, &page).await?))
}

#[derive(Deserialize)]
struct RoleChange {
    role: String,
}

async fn change_role(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Meta(meta): Meta,
    UrlPath(id): UrlPath<Uuid>,
    JsonBody(body): JsonBody<RoleChange>,
) -> ApiResult<Json<User>> {
    let role: Role = body.role.parse()?;
    Ok(Json(
        state
            .store
            .change_role(admin.id, UserId(id), role, &meta)
            .await?,
    ))
}

#[derive(Deserialize)]
struct BlockBody {
    reason: String,
}

async fn block(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Meta(meta): Meta,
    UrlPath(id): UrlPath<Uuid>,
    JsonBody(body): JsonBody<BlockBody>,
) -> ApiResult<Json<User>> {
    Ok(Json(
        state
            .store
            .block_user(admin.id, UserId(id), &body.reason, &meta)
            .await?,
    ))
}

async fn unblock(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Meta(meta): Meta,
    UrlPath(id): UrlPath<Uuid>,
) -> ApiResult<Json<User>> {
    Ok(Json(
        state
            .store
            .unblock_user(admin.id, UserId(id), &meta)
            .await?,
    ))
}

async fn delete_user(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Meta(meta): Meta,
    UrlPath(id): UrlPath<Uuid>,
) -> ApiResult<StatusCode> {
    state.store.delete_user(admin.id, UserId(id), &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn audit(
    State(state): State<AppState>,
    _admin: Admin,
    UrlPath(id): UrlPath<Uuid>,
    UrlQuery(q): UrlQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let page = state
        .store
        .audit_log(
            &pronghorn_db::models::AuditQuery::User(UserId(id)),
            &q.page(),
        )
        .await?;
    Ok(Json(json!(page)))
}

async fn pending_resets(
    State(state): State<AppState>,
    _admin: Admin,
    UrlQuery(q): UrlQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(
        state.store.pending_password_resets(&q.page()).await?
    )))
}

// ---- conversations ---------------------------------------------------------

#[derive(Deserialize)]
struct CreateConversation {
    provider: String,
    model: Option<String>,
    title: Option<String>,
}

async fn create_conversation(
    State(state): State<AppState>,
    current: CurrentUser,
    JsonBody(body): JsonBody<CreateConversation>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let new = NewConversation {
        user_id: current.user.id,
        provider: body.provider,
        model: body.model,
        title: body.title,
    };
    let created = state.store.create_conversation(new).await?;
    Ok((StatusCode::CREATED, Json(json!(created))))
}

async fn list_conversations(
    State(state): State<AppState>,
    current: CurrentUser,
    UrlQuery(q): UrlQuery<PageQuery>,
) -> ApiResult<Json<Value>> {
    let page = state
        .store
        .list_conversations(current.user.id, &q.page())
        .await?;
    Ok(Json(json!(page)))
}

async fn get_conversation(
    State(state): State<AppState>,
    current: CurrentUser,
    UrlPath(id): UrlPath<Uuid>,
) -> ApiResult<Json<Value>> {
    Ok(Json(json!(
        state.store.conversation(current.user.id, id).await?
    )))
}

async fn delete_conversation(
    State(state): State<AppState>,
    current: CurrentUser,
    UrlPath(id): UrlPath<Uuid>,
) -> ApiResult<StatusCode> {
    state.store.delete_conversation(current.user.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct MessageQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    /// `desc` (newest first, the default) or `asc` (oldest first).
    order: Option<String>,
}

async fn list_messages(
    State(state): State<AppState>,
    current: CurrentUser,
    UrlPath(id): UrlPath<Uuid>,
    UrlQuery(q): UrlQuery<MessageQuery>,
) -> ApiResult<Json<Value>> {
    let order = match q.order.as_deref() {
        None | Some("desc") => MessageOrder::NewestFirst,
        Some("asc") => MessageOrder::OldestFirst,
        Some(_) => return Err(Error::validation("order", "must be asc or desc").into()),
    };
    let page = PageRequest {
        limit: q.limit,
        cursor: q.cursor,
    };
    let messages = state
        .store
        .list_messages(current.user.id, id, order, &page)
        .await?;
    Ok(Json(json!(messages)))
}

#[derive(Deserialize)]
struct PostMessage {
    role: String,
    content: String,
    tokens_used: Option<i32>,
}

async fn post_message(
    State(state): State<AppState>,
    current: CurrentUser,
    UrlPath(id): UrlPath<Uuid>,
    JsonBody(body): JsonBody<PostMessage>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let new = NewMessage {
        role: body.role,
        content: body.content,
        tokens_used: body.tokens_used,
    };
    let message = state.store.append_message(current.user.id, id, new).await?;
    Ok((StatusCode::CREATED, Json(json!(message))))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_the_form_the_store_matches_names_a_sessions_user() {
        let id = uuid::Uuid::new_v4();
        let text = id.to_string();
        assert_eq!(super::canonical_user_id(&text), Some(id));
        for other in [
            text.to_uppercase(),
            id.simple().to_string(),
            format!("{{{text}}}"),
            id.urn().to_string(),
        ] {
            assert_eq!(super::canonical_user_id(&other), None, "{other}");
        }
    }
}
