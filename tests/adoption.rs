//! Adopting a database the Node template made: our migrations run on it
//! without error and without changing a row, the template's `migrations`
//! record stays as it was, and every row reads back through the typed models.

mod common;

use chrono::{DateTime, NaiveDate, Utc};
use common::TestDb;
use diesel::{ExpressionMethods, QueryDsl, SelectableHelper};
use diesel_async::RunQueryDsl;
use pronghorn_db::models::{
    ActiveWebsocketConnection, PendingPasswordReset, ResetStatus, WebsocketConnectionStats,
};
use pronghorn_db::models::{
    AuditLogEntry, Conversation, Message, PasswordResetRequest, RefreshToken, Role, Session,
    TemplateMigration, User, UserId, WebsocketConnection,
};
use pronghorn_db::schema::{
    active_websocket_connections, pending_password_resets, websocket_connection_stats,
};
use pronghorn_db::schema::{
    conversations, messages, migrations, password_reset_requests, refresh_tokens, session,
    user_audit_log, users, websocket_connections,
};
use std::collections::BTreeMap;
use uuid::Uuid;

const FIXTURE: &str = include_str!("fixtures/template_schema.sql");

/// The template's migration names, in the order it ran them.
const TEMPLATE_MIGRATIONS: [&str; 18] = [
    "create_users_table",
    "create_sessions_table",
    "create_refresh_tokens_table",
    "create_conversations_table",
    "create_messages_table",
    "create_migrations_table",
    "create_websocket_connections_table",
    "create_websocket_triggers",
    "create_websocket_views",
    "create_websocket_cleanup_function",
    "add_user_profile_fields",
    "add_user_blocking_fields",
    "add_password_reset_fields",
    "create_users_updated_at_trigger",
    "create_user_blocking_trigger",
    "create_role_hierarchy_function",
    "create_password_reset_requests_table",
    "create_user_audit_log_table",
];

fn fixture_id(prefix: u128, low: u128) -> Uuid {
    Uuid::from_u128((prefix << 96) | 0x4000_8000_0000_0000_0000 | low)
}

fn user_id(n: u128) -> UserId {
    UserId(fixture_id(0x1000_0000, n))
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap_or_else(|e| panic!("bad time {s}: {e}"))
}

/// Per table: (row count, md5 of every row as text, in a stable order).
type Snapshot = BTreeMap<String, (i64, String)>;

async fn base_tables(client: &tokio_postgres::Client) -> Vec<String> {
    client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
            &[],
        )
        .await
        .expect("list tables")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn snapshot(client: &tokio_postgres::Client, tables: &[String]) -> Snapshot {
    let mut out = Snapshot::new();
    for table in tables {
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') \
                     FROM \"{table}\" t"
                ),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("snapshot {table}: {e}"));
        out.insert(table.clone(), (row.get(0), row.get(1)));
    }
    out
}

#[tokio::test]
async fn template_database_is_adopted_without_losing_a_row() {
    let db = TestDb::empty().await;
    let client = db.client().await;
    client
        .batch_execute(FIXTURE)
        .await
        .expect("load the template fixture");

    let tables = base_tables(&client).await;
    assert_eq!(
        tables,
        [
            "conversations",
            "messages",
            "migrations",
            "password_reset_requests",
            "refresh_tokens",
            "session",
            "user_audit_log",
            "users",
            "websocket_connections",
        ]
    );
    let before = snapshot(&client, &tables).await;
    let counts: BTreeMap<&str, i64> = before.iter().map(|(t, (n, _))| (t.as_str(), *n)).collect();
    assert_eq!(
        counts,
        BTreeMap::from([
            ("conversations", 2),
            ("messages", 6),
            ("migrations", 18),
            ("password_reset_requests", 1),
            ("refresh_tokens", 1),
            ("session", 1),
            ("user_audit_log", 1),
            ("users", 4),
            ("websocket_connections", 1),
        ])
    );

    let store = db.store().await;
    let applied = pronghorn_db::migrate::run_pending(&store)
        .await
        .expect("our migrations run on the template's database");
    // The 18 that mirror the template's come first, in its order; later
    // migrations of this crate (additive ones) follow them.
    assert!(applied.len() >= 18, "applied: {applied:?}");
    for (name, template) in applied.iter().zip(TEMPLATE_MIGRATIONS) {
        assert!(
            name.starts_with("2024-01-01-0000") && name.ends_with(&format!("_{template}")),
            "{name} mirrors {template}"
        );
    }
    let states = pronghorn_db::migrate::list(&store).await.expect("list");
    assert!(states.iter().all(|m| m.applied), "all applied: {states:?}");
    assert_eq!(
        applied.len(),
        states.len(),
        "every embedded migration ran once"
    );

    // No row of the template's tables changed; the only new tables are
    // Diesel's record and our own login_failures (empty).
    let after_tables = base_tables(&client).await;
    let mut expected_tables = tables.clone();
    expected_tables.push("__diesel_schema_migrations".to_owned());
    expected_tables.push("login_failures".to_owned());
    expected_tables.sort();
    let mut sorted_after = after_tables.clone();
    sorted_after.sort();
    assert_eq!(sorted_after, expected_tables);
    assert_eq!(
        snapshot(&client, &tables).await,
        before,
        "a template row changed"
    );

    let mut conn = store.conn().await.expect("conn");

    // The template's own record: exactly its 18 names, in order, times kept.
    let recorded: Vec<TemplateMigration> = migrations::table
        .select(TemplateMigration::as_select())
        .order(migrations::id.asc())
        .load(&mut *conn)
        .await
        .expect("migrations");
    let names: Vec<&str> = recorded.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, TEMPLATE_MIGRATIONS);
    assert_eq!(recorded[0].id, 1);
    assert_eq!(recorded[0].executed_at, Some(at("2024-03-01T09:00:00Z")));
    assert_eq!(recorded[17].executed_at, Some(at("2024-06-01T10:00:02Z")));

    // users
    let all_users: Vec<User> = users::table
        .select(User::as_select())
        .order(users::id.asc())
        .load(&mut *conn)
        .await
        .expect("users");
    assert_eq!(all_users.len(), 4);
    let ids: Vec<UserId> = all_users.iter().map(|u| u.id).collect();
    assert_eq!(ids, (1..=4).map(user_id).collect::<Vec<_>>());
    let [superadmin, admin, marie, sam] = &all_users[..] else {
        unreachable!("four users")
    };
    for local in [superadmin, admin, marie] {
        let hash = local
            .password_hash
            .as_deref()
            .expect("local users have a hash");
        assert!(hash.starts_with("$2a$12$"), "bcrypt cost 12: {hash}");
        assert_eq!(hash.len(), 60);
        assert_eq!(local.oauth_provider.as_deref(), Some("local"));
        assert!(!format!("{local:?}").contains(hash), "Debug hides the hash");
    }
    assert_eq!(superadmin.email, "superadmin@pronghorn.test");
    assert_eq!(superadmin.parsed_role(), Some(Role::Superadmin));
    assert_eq!(admin.parsed_role(), Some(Role::Admin));
    assert_eq!(marie.display_name, "Marie Dubois");
    assert_eq!(marie.language_preference.as_deref(), Some("fr"));
    assert_eq!(marie.parsed_role(), Some(Role::User));
    assert_eq!(marie.updated_at, Some(at("2024-06-18T07:30:00Z")));
    assert_eq!(marie.additional_roles, Some(serde_json::json!([])));
    // Columns the fixture left to their defaults.
    assert_eq!(marie.reset_token, None);
    assert_eq!(marie.reset_token_used, Some(false));
    assert_eq!(marie.reset_attempts, Some(0));

    assert_eq!(sam.email, "sam.oauth@gmail.example");
    assert_eq!(sam.password_hash, None, "the OAuth user has no password");
    assert_eq!(sam.oauth_provider.as_deref(), Some("google"));
    assert_eq!(sam.oauth_id.as_deref(), Some("109876543210987654321"));
    assert_eq!(
        sam.avatar_url.as_deref(),
        Some("https://lh3.googleusercontent.com/a/fixture-avatar")
    );
    assert!(sam.blocked());
    assert_eq!(sam.blocked_at, Some(at("2024-06-15T11:00:00Z")));
    assert_eq!(sam.blocked_by, Some(admin.id));
    assert_eq!(
        sam.blocked_reason.as_deref(),
        Some("Repeated abusive messages")
    );
    assert_eq!(sam.last_login, Some(at("2024-06-14T20:10:00Z")));
    assert!(!superadmin.blocked());

    // session
    let sessions: Vec<Session> = session::table
        .select(Session::as_select())
        .load(&mut *conn)
        .await
        .expect("session");
    assert_eq!(sessions.len(), 1);
    let s = &sessions[0];
    assert_eq!(s.sid, "qL7cN2xV9bR4tY6uI1oP3aS5dF8gH0jK");
    assert_eq!(
        s.expire,
        NaiveDate::from_ymd_opt(2099, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("date")
    );
    assert_eq!(s.sess["userId"], marie.id.to_string());
    assert_eq!(s.sess["cookie"]["originalMaxAge"], 86_400_000);
    assert_eq!(s.sess["cookie"]["httpOnly"], true);

    // refresh_tokens
    let tokens: Vec<RefreshToken> = refresh_tokens::table
        .select(RefreshToken::as_select())
        .load(&mut *conn)
        .await
        .expect("refresh_tokens");
    assert_eq!(tokens.len(), 1);
    let t = &tokens[0];
    assert_eq!(t.id, fixture_id(0x4000_0000, 1));
    assert_eq!(t.user_id, admin.id);
    assert_eq!(
        t.token_hash,
        "362c9d6fc4982b9dfdd648cef2b54c4b9857a77ce510bcc8e0e863d1c7d655f5"
    );
    assert_eq!(t.expires_at, at("2099-01-01T00:00:00Z"));
    assert_eq!(t.revoked_at, None);

    // conversations and messages
    let convs: Vec<Conversation> = conversations::table
        .select(Conversation::as_select())
        .order(conversations::id.asc())
        .load(&mut *conn)
        .await
        .expect("conversations");
    assert_eq!(convs.len(), 2);
    assert_eq!(convs[0].id, fixture_id(0x2000_0000, 1));
    assert_eq!(convs[0].user_id, marie.id);
    assert_eq!(convs[0].title.as_deref(), Some("Voyage à Lyon"));
    assert_eq!(convs[0].provider, "openai");
    assert_eq!(convs[0].model.as_deref(), Some("gpt-4o"));
    assert_eq!(convs[1].user_id, superadmin.id);
    assert_eq!(convs[1].provider, "anthropic");

    let msgs: Vec<Message> = messages::table
        .select(Message::as_select())
        .order(messages::id.asc())
        .load(&mut *conn)
        .await
        .expect("messages");
    assert_eq!(msgs.len(), 6);
    assert_eq!(
        msgs.iter()
            .filter(|m| m.conversation_id == convs[0].id)
            .count(),
        3
    );
    assert_eq!(msgs[1].id, fixture_id(0x3000_0000, 0x12));
    assert_eq!(msgs[1].role, "assistant");
    assert_eq!(
        msgs[1].content,
        "Le Vieux Lyon, Fourvière, la Presqu'île et un bouchon lyonnais."
    );
    assert_eq!(msgs[1].tokens_used, Some(142));
    assert_eq!(msgs[0].tokens_used, None);
    assert_eq!(msgs[5].content, "Thanks!");

    // websocket_connections
    let conns: Vec<WebsocketConnection> = websocket_connections::table
        .select(WebsocketConnection::as_select())
        .load(&mut *conn)
        .await
        .expect("websocket_connections");
    assert_eq!(conns.len(), 1);
    let c = &conns[0];
    assert_eq!(c.id, fixture_id(0x5000_0000, 1));
    assert_eq!(c.connection_id, "ws_1718701800000_k3j9x2");
    assert_eq!(c.user_id, Some(marie.id));
    assert_eq!(c.ip_address, Some("203.0.113.10/32".parse().expect("ip")));
    assert_eq!(c.disconnected_at, None);
    assert_eq!(c.message_count, 5);
    assert!(c.is_authenticated && !c.is_blocked);
    assert_eq!(
        c.metadata,
        Some(serde_json::json!({"path": "/ws", "protocol": "pronghorn.v1"}))
    );
    assert_eq!(c.updated_at, at("2024-06-18T07:41:12Z"));

    // password_reset_requests
    let resets: Vec<PasswordResetRequest> = password_reset_requests::table
        .select(PasswordResetRequest::as_select())
        .load(&mut *conn)
        .await
        .expect("password_reset_requests");
    assert_eq!(resets.len(), 1);
    let r = &resets[0];
    assert_eq!(r.id, fixture_id(0x7000_0000, 1));
    assert_eq!(r.user_id, marie.id);
    assert!(r.reset_token_hash.starts_with("$2a$12$"));
    assert!(!format!("{r:?}").contains(&r.reset_token_hash));
    assert_eq!(r.requested_at, at("2024-06-17T18:00:00Z"));
    assert_eq!(r.expires_at, at("2024-06-17T19:00:00Z"));
    assert_eq!(r.used_at, None);

    // user_audit_log
    let log: Vec<AuditLogEntry> = user_audit_log::table
        .select(AuditLogEntry::as_select())
        .load(&mut *conn)
        .await
        .expect("user_audit_log");
    assert_eq!(log.len(), 1);
    let e = &log[0];
    assert_eq!(e.id, fixture_id(0x6000_0000, 1));
    assert_eq!((e.user_id, e.actor_id), (Some(sam.id), Some(admin.id)));
    assert_eq!(e.action, "user_blocked");
    assert_eq!(
        e.details,
        Some(serde_json::json!({"reason": "Repeated abusive messages"}))
    );
    assert_eq!(e.ip_address, Some("198.51.100.7/32".parse().expect("ip")));

    // The views, recreated by our migrations, see the template's rows.
    let active: Vec<ActiveWebsocketConnection> = active_websocket_connections::table
        .select(ActiveWebsocketConnection::as_select())
        .load(&mut *conn)
        .await
        .expect("active_websocket_connections");
    assert_eq!(active.len(), 1);
    assert_eq!(
        active[0].user_email.as_deref(),
        Some("marie.dubois@pronghorn.test")
    );
    let stats: WebsocketConnectionStats = websocket_connection_stats::table
        .select(WebsocketConnectionStats::as_select())
        .first(&mut *conn)
        .await
        .expect("websocket_connection_stats");
    assert_eq!(
        (stats.active_connections, stats.total_connections_all_time),
        (1, 1)
    );
    assert_eq!(stats.max_messages_per_connection, 5);
    let pending: Vec<PendingPasswordReset> = pending_password_resets::table
        .select(PendingPasswordReset::as_select())
        .load(&mut *conn)
        .await
        .expect("pending_password_resets");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].status, ResetStatus::Expired);
    assert_eq!(pending[0].email, "marie.dubois@pronghorn.test");
    drop(conn);

    // Running again applies nothing and still changes nothing.
    let again = pronghorn_db::migrate::run_pending(&store)
        .await
        .expect("second run");
    assert_eq!(again, Vec::<String>::new());
    assert_eq!(snapshot(&client, &tables).await, before);
}

/// The template's own catalog facts: what its migrate.js leaves.
const TEMPLATE_FACTS: &str = include_str!("fixtures/template_facts.txt");
const FACTS_SQL: &str = include_str!("sql/template_facts.sql");

/// The database's facts in the template's format, sorted by byte.
async fn facts(client: &tokio_postgres::Client) -> Vec<String> {
    let mut facts: Vec<String> = client
        .query(FACTS_SQL, &[])
        .await
        .expect("facts query")
        .iter()
        .map(|r| r.get(0))
        .collect();
    facts.sort();
    facts
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// The template's facts plus what each of our later migrations declares
/// (`-- fact: ` lines).
fn expected_facts() -> Vec<String> {
    let mut expected = sorted_lines(TEMPLATE_FACTS);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    for entry in std::fs::read_dir(dir).expect("migrations dir") {
        let up = entry.expect("entry").path().join("up.sql");
        let sql = std::fs::read_to_string(&up).expect("up.sql");
        expected.extend(
            sql.lines()
                .filter_map(|l| l.strip_prefix("-- fact: "))
                .map(str::to_owned),
        );
    }
    expected.sort();
    expected
}

#[tokio::test]
async fn the_cli_adopts_the_template_database_to_the_template_facts() {
    let db = TestDb::empty().await;
    let client = db.client().await;
    client.batch_execute(FIXTURE).await.expect("load fixture");
    assert_eq!(
        facts(&client).await,
        sorted_lines(TEMPLATE_FACTS),
        "the fixture is the template's schema, fact by fact"
    );
    let tables = base_tables(&client).await;
    let before = snapshot(&client, &tables).await;

    let url = db.url();
    let (code, out, err) = common::run_cli(&url, &["migrate", "run"]);
    let said = out + &err;
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("create_role_hierarchy_function"), "{said}");

    let (code, out, _) = common::run_cli(&url, &["status", "--json"]);
    assert_eq!(code, Some(0));
    let status: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(status["migrations_pending"], 0, "{status}");

    assert_eq!(
        facts(&client).await,
        expected_facts(),
        "the template's facts plus our declared additions"
    );
    assert_eq!(snapshot(&client, &tables).await, before, "no row changed");
}

#[tokio::test]
async fn a_fresh_database_has_the_template_facts_plus_our_additions() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    assert_eq!(facts(&client).await, expected_facts());
}
