//! How many round trips the store's writes of more than one statement
//! take, counted on the wire: the store reaches its database through a
//! proxy that holds every answer of the server back for `LATENCY`, as a
//! distant server would, and counts the groups of messages the store sends
//! after an answer reached it and a pause of at least half that latency
//! (the benchmark's wire proxy, `bench/src/wire.rs`).
//!
//! Each method runs once to prepare its statements on the store's one
//! connection, then is counted on its second run. A transaction takes its
//! `BEGIN` and `COMMIT` (one round trip each, as diesel-async sends them)
//! plus one round trip per answer the method must read before it can
//! decide what to send next; every statement that needs no such answer is
//! pipelined with the others of its round trip. The expected counts are
//! written out below, with what each round trip carries.

mod common;

#[allow(dead_code)]
#[path = "../bench/src/wire.rs"]
mod wire;

use common::TestDb;
use pronghorn_db::models::{
    NewConversation, NewLocalUser, NewMessage, NewOAuthUser, ProfileUpdate, RequestMeta, Role,
    User, UserId,
};
use pronghorn_db::{
    ConversationStore, Error, PasswordResetStore, PgStore, PoolSettings, RefreshTokenStore,
    ResetPolicy, SessionStore, UserStore,
};
use std::future::Future;
use std::time::{Duration, Instant};
use wire::Proxy;

/// What the proxy adds to every answer: far above the time a local server
/// takes, so that each round trip shows as a pause on the wire.
const LATENCY: Duration = Duration::from_millis(40);

const PW: &str = "correct horse battery";
const NEW_PW: &str = "a different horse battery";

fn meta() -> RequestMeta {
    RequestMeta {
        ip: Some("203.0.113.9".parse().expect("ip")),
        user_agent: Some("round-trips/1.0".into()),
    }
}

/// A store of one connection reaching `db` through `proxy`.
async fn store_through(proxy: &Proxy, db: &TestDb) -> PgStore {
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/{}?sslmode=disable",
        proxy.port(),
        db.name()
    );
    let config = common::configured(&[("DB_CONNECTION_STRING", &url)]);
    PgStore::new(config.with_pool(PoolSettings {
        min_idle: 1,
        max_size: 1,
        idle_timeout: Duration::from_secs(300),
        connection_timeout: Duration::from_secs(10),
    }))
    .await
    .expect("store through the proxy")
}

/// The test server's `host:port`, from `TEST_DATABASE_URL`.
fn upstream() -> String {
    let config: tokio_postgres::Config = common::admin_url().parse().expect("TEST_DATABASE_URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        other => panic!("the round-trip proxy needs a TCP host, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}")
}

/// One measured call: its round trips (with how long it took) and its
/// result.
async fn counted<T>(proxy: &Proxy, call: impl Future<Output = T>) -> (Trips, T) {
    proxy.take();
    let started = Instant::now();
    let out = call.await;
    let trips = Trips {
        flights: proxy.take().flights,
        took: started.elapsed(),
    };
    (trips, out)
}

/// The round trips of one call, and its time behind the proxy's latency.
#[derive(Debug, Clone, Copy)]
struct Trips {
    flights: u64,
    took: Duration,
}

async fn user(store: &PgStore, email: &str, role: Role) -> User {
    let mut new = NewLocalUser::new(email, PW, format!("Name of {email}"));
    new.role = role;
    store.create_user(new).await.expect("create user")
}

struct Tally {
    rows: Vec<(&'static str, Trips, u64, &'static str)>,
}

impl Tally {
    fn record(&mut self, method: &'static str, counted: Trips, expected: u64, what: &'static str) {
        self.rows.push((method, counted, expected, what));
    }

    /// Prints every count, then fails on the first that differs.
    fn check(&self) {
        for (method, counted, expected, what) in &self.rows {
            eprintln!(
                "{method:<34} {:>2} round trips in {:>4} ms (expected {expected}: {what})",
                counted.flights,
                counted.took.as_millis()
            );
        }
        for (method, counted, expected, _) in &self.rows {
            assert_eq!(counted.flights, *expected, "round trips of {method}");
        }
    }
}

#[tokio::test]
async fn store_writes_take_the_fewest_round_trips_their_reads_allow() {
    let db = TestDb::migrated().await;
    let proxy = Proxy::with_latency(upstream(), LATENCY)
        .await
        .expect("proxy");
    let store = store_through(&proxy, &db).await;
    let admin = user(&store, "boss@example.com", Role::Superadmin).await;
    let mut tally = Tally { rows: Vec::new() };

    // create_user: its look-up of a differently-cased twin and its insert
    // are pipelined.
    user(&store, "warm@example.com", Role::User).await;
    let (n, ann) = counted(&proxy, user(&store, "ann@example.com", Role::User)).await;
    tally.record(
        "create_user",
        n,
        3,
        "BEGIN | twin look-up + insert | COMMIT",
    );

    // authenticate: the attempt's count and the account's look-up are
    // pipelined; the success is one statement.
    store
        .authenticate("ann@example.com", PW)
        .await
        .expect("login");
    let (n, r) = counted(&proxy, store.authenticate("ann@example.com", PW)).await;
    r.expect("login");
    tally.record(
        "authenticate",
        n,
        2,
        "count attempt + user | clear count + record login",
    );
    // log_in: authenticate's two, then the share lock, the session and the
    // refresh token in one transaction.
    let session = || {
        pronghorn_db::SessionData::new(pronghorn_db::SessionCookie::with_max_age(
            chrono::Duration::hours(1),
        ))
    };
    let day = Some(chrono::Duration::days(1));
    for run in 0..2 {
        let sid = format!("round-trips-{run}");
        let (n, r) = counted(
            &proxy,
            store.log_in("ann@example.com", PW, &sid, &session(), day),
        )
        .await;
        r.expect("log in");
        if run == 1 {
            tally.record(
                "log_in",
                n,
                5,
                "authenticate's 2 | BEGIN | lock user + session + refresh token | COMMIT",
            );
        }
    }

    // add_additional_role and remove_additional_role: one UPDATE each.
    for role in ["beta", "gamma"] {
        let (n, r) = counted(&proxy, store.add_additional_role(ann.id, role)).await;
        r.expect("add role");
        if role == "gamma" {
            tally.record("add_additional_role", n, 1, "append unless present");
        }
    }
    for role in ["beta", "gamma"] {
        let (n, r) = counted(&proxy, store.remove_additional_role(ann.id, role)).await;
        let roles = r.expect("remove role").additional_roles;
        if role == "gamma" {
            assert_eq!(roles, Some(serde_json::json!([])));
            tally.record("remove_additional_role", n, 1, "remove when present");
        }
    }

    // find_or_create_oauth_user: both look-ups are pipelined; a first
    // login then inserts.
    let oauth = |id: &str| NewOAuthUser {
        provider: "github".into(),
        oauth_id: id.into(),
        email: format!("{id}@example.com"),
        display_name: "From GitHub".into(),
        avatar_url: None,
        email_verified: true,
    };
    let (_, created) = store
        .find_or_create_oauth_user(oauth("gh1"))
        .await
        .expect("first oauth login");
    assert!(created);
    let (n, r) = counted(&proxy, store.find_or_create_oauth_user(oauth("gh2"))).await;
    assert!(r.expect("oauth creation").1, "created");
    tally.record(
        "find_or_create_oauth_user (new)",
        n,
        4,
        "BEGIN | identity + email look-ups | insert | COMMIT",
    );
    let (n, r) = counted(&proxy, store.find_or_create_oauth_user(oauth("gh2"))).await;
    assert!(!r.expect("oauth login").1, "found");
    tally.record(
        "find_or_create_oauth_user (known)",
        n,
        3,
        "BEGIN | identity + email look-ups | COMMIT",
    );

    // create_user_by_admin: the admin's lock decides; the new user's id is
    // chosen by the store, so its audit entry goes with the insert.
    let request = meta();
    let by_admin = |email: &str| {
        let mut new = NewLocalUser::new(email, PW, "Made by an admin");
        new.role = Role::User;
        store.create_user_by_admin(admin.id, new, &request)
    };
    by_admin("made1@example.com").await.expect("by admin");
    let (n, made) = counted(&proxy, by_admin("made2@example.com")).await;
    made.expect("by admin");
    tally.record(
        "create_user_by_admin",
        n,
        4,
        "BEGIN | lock admin | twin look-up + insert + audit | COMMIT",
    );

    let rename = |name: &str| ProfileUpdate {
        display_name: Some(name.into()),
        ..ProfileUpdate::default()
    };
    store
        .update_profile(ann.id, &rename("Ann A"), &meta())
        .await
        .expect("profile");
    let (n, r) = counted(
        &proxy,
        store.update_profile(ann.id, &rename("Ann B"), &meta()),
    )
    .await;
    r.expect("profile");
    tally.record("update_profile", n, 3, "BEGIN | update + audit | COMMIT");

    store
        .update_user_by_admin(admin.id, ann.id, &rename("Ann C"), &meta())
        .await
        .expect("admin update");
    let (n, r) = counted(
        &proxy,
        store.update_user_by_admin(admin.id, ann.id, &rename("Ann D"), &meta()),
    )
    .await;
    r.expect("admin update");
    tally.record(
        "update_user_by_admin",
        n,
        4,
        "BEGIN | lock both | update + audit | COMMIT",
    );

    for role in [Role::Admin, Role::User] {
        let (n, r) = counted(&proxy, store.change_role(admin.id, ann.id, role, &meta())).await;
        r.expect("change role");
        if role == Role::User {
            tally.record(
                "change_role",
                n,
                4,
                "BEGIN | lock both | set role + revoke tokens + delete sessions + end reset links + audit | COMMIT",
            );
        }
    }

    for pass in 0..2 {
        store
            .block_user(admin.id, ann.id, "spam", &meta())
            .await
            .expect("block");
        let (n, r) = counted(&proxy, store.unblock_user(admin.id, ann.id, &meta())).await;
        r.expect("unblock");
        if pass == 1 {
            tally.record(
                "unblock_user",
                n,
                4,
                "BEGIN | lock both | unblock + audit | COMMIT",
            );
        }
    }
    let (n, r) = counted(&proxy, store.block_user(admin.id, ann.id, "spam", &meta())).await;
    r.expect("block");
    tally.record(
        "block_user",
        n,
        4,
        "BEGIN | lock both | block + revoke tokens + delete sessions + end reset links + audit | COMMIT",
    );
    store
        .unblock_user(admin.id, ann.id, &meta())
        .await
        .expect("unblock");

    // change_password: the user and the attempt count come first, each on
    // its own (the count is keyed by the user's email); then one
    // transaction.
    store
        .change_password(ann.id, PW, NEW_PW, &meta())
        .await
        .expect("first change");
    let (n, r) = counted(&proxy, store.change_password(ann.id, NEW_PW, PW, &meta())).await;
    r.expect("second change");
    tally.record(
        "change_password",
        n,
        5,
        "user | count attempt | BEGIN | update hash + revoke tokens + delete sessions + end reset links + audit | COMMIT",
    );

    store.end_all_sessions(ann.id).await.expect("end all");
    let (n, r) = counted(&proxy, store.end_all_sessions(ann.id)).await;
    r.expect("end all");
    tally.record(
        "end_all_sessions",
        n,
        3,
        "BEGIN | lock user + revoke tokens + delete sessions + end reset links | COMMIT",
    );

    let ttl = chrono::Duration::days(1);
    let first = store.issue_refresh_token(ann.id, ttl).await.expect("issue");
    let second = store
        .rotate_refresh_token(first.token.expose(), ttl)
        .await
        .expect("rotate");
    let (n, r) = counted(
        &proxy,
        store.rotate_refresh_token(second.token.expose(), ttl),
    )
    .await;
    r.expect("rotate again");
    tally.record(
        "rotate_refresh_token",
        n,
        4,
        "BEGIN | lock owner + lock token | revoke + insert successor | COMMIT",
    );

    store
        .revoke_user_refresh_tokens(ann.id)
        .await
        .expect("revoke all");
    let (n, r) = counted(&proxy, store.revoke_user_refresh_tokens(ann.id)).await;
    r.expect("revoke all");
    tally.record(
        "revoke_user_refresh_tokens",
        n,
        3,
        "BEGIN | lock user + revoke tokens | COMMIT",
    );

    let policy = ResetPolicy::default();
    // The first request opens the account's window, the later ones count
    // in it: each shape is prepared once.
    for _ in 0..2 {
        let warm = store
            .request_password_reset("ann@example.com", &policy, &meta())
            .await
            .expect("request");
        assert!(warm.delivery.is_some(), "a token was issued");
    }
    let (n, r) = counted(
        &proxy,
        store.request_password_reset("ann@example.com", &policy, &meta()),
    )
    .await;
    assert!(r.expect("request").delivery.is_some(), "a token was issued");
    tally.record(
        "request_password_reset",
        n,
        4,
        "BEGIN | lock counter | count + insert request | COMMIT",
    );

    let issued = store
        .admin_generate_password_reset(admin.id, ann.id, &meta())
        .await
        .expect("admin reset");
    // Redeeming a token ends the account's other requests, so each
    // redemption gets a token of its own.
    store
        .reset_password(issued.token.expose(), NEW_PW, &meta())
        .await
        .expect("reset");
    let (n, r) = counted(
        &proxy,
        store.admin_generate_password_reset(admin.id, ann.id, &meta()),
    )
    .await;
    let issued_again = r.expect("admin reset");
    tally.record(
        "admin_generate_password_reset",
        n,
        4,
        "BEGIN | lock both | insert request + audit | COMMIT",
    );
    let (n, r) = counted(
        &proxy,
        store.reset_password(issued_again.token.expose(), PW, &meta()),
    )
    .await;
    r.expect("reset again");
    tally.record(
        "reset_password",
        n,
        5,
        "find token | BEGIN | lock user + lock request | 7 changes and the user | COMMIT",
    );

    let conversation = store
        .create_conversation(NewConversation::new(ann.id, "openai"))
        .await
        .expect("conversation");
    let message = |text: &str| NewMessage {
        role: "user".into(),
        content: text.into(),
        tokens_used: None,
    };
    store
        .append_message(ann.id, conversation.id, message("one"))
        .await
        .expect("append");
    let (n, r) = counted(
        &proxy,
        store.append_message(ann.id, conversation.id, message("two")),
    )
    .await;
    r.expect("append");
    tally.record("append_message", n, 1, "one statement");

    // Reads behind an ownership check: the check and the read are
    // pipelined, and a stranger still gets the conversation's NotFound.
    use pronghorn_db::models::MessageOrder;
    use pronghorn_db::PageRequest;
    for run in 0..2 {
        let (n, r) = counted(
            &proxy,
            store.list_messages(
                ann.id,
                conversation.id,
                MessageOrder::NewestFirst,
                &PageRequest::first(10),
            ),
        )
        .await;
        let page = r.expect("page");
        assert_eq!(page.items.len(), 2);
        if run == 1 {
            tally.record("list_messages", n, 1, "ownership check + page");
        }
    }
    let newest = page_head(&store, ann.id, conversation.id).await;
    for run in 0..2 {
        let (n, r) = counted(
            &proxy,
            store.message_cursor(ann.id, conversation.id, newest, MessageOrder::OldestFirst),
        )
        .await;
        r.expect("cursor");
        if run == 1 {
            tally.record("message_cursor", n, 1, "ownership check + message");
        }
    }
    let stranger = user(&store, "stranger@example.com", Role::User).await;
    let (n, r) = counted(
        &proxy,
        store.list_messages(
            stranger.id,
            conversation.id,
            MessageOrder::NewestFirst,
            &PageRequest::first(10),
        ),
    )
    .await;
    not_the_owners(&r);
    tally.record(
        "list_messages, not the owner",
        n,
        1,
        "ownership check + page, dropped",
    );
    // Both statements fail here: the check's error is the one returned.
    let r = store
        .message_cursor(
            stranger.id,
            conversation.id,
            uuid::Uuid::new_v4(),
            MessageOrder::OldestFirst,
        )
        .await;
    not_the_owners(&r);

    for email in ["gone1@example.com", "gone2@example.com"] {
        let doomed = user(&store, email, Role::User).await;
        let (n, r) = counted(&proxy, store.delete_user(admin.id, doomed.id, &meta())).await;
        r.expect("delete");
        if email == "gone2@example.com" {
            tally.record(
                "delete_user",
                n,
                4,
                "BEGIN | lock both | audit + delete sessions + end links it generated + forget blocks + delete | COMMIT",
            );
        }
    }
    for email in ["self1@example.com", "self2@example.com"] {
        let me = user(&store, email, Role::User).await;
        let (n, r) = counted(&proxy, store.delete_own_account(me.id, &meta())).await;
        r.expect("delete own");
        if email == "self2@example.com" {
            tally.record(
                "delete_own_account",
                n,
                4,
                "BEGIN | lock user | audit + delete sessions + end links it generated + forget blocks + delete | COMMIT",
            );
        }
    }

    tally.check();
}

/// A stranger's read of a conversation: the conversation's `NotFound`.
fn not_the_owners<T: std::fmt::Debug>(r: &Result<T, Error>) {
    assert!(
        matches!(
            r,
            Err(Error::NotFound {
                entity: "conversation"
            })
        ),
        "{r:?}"
    );
}

/// The id of the newest message of a conversation.
async fn page_head(store: &PgStore, owner: UserId, conversation: uuid::Uuid) -> uuid::Uuid {
    use pronghorn_db::models::MessageOrder;
    store
        .list_messages(
            owner,
            conversation,
            MessageOrder::NewestFirst,
            &pronghorn_db::PageRequest::first(1),
        )
        .await
        .expect("newest message")
        .items[0]
        .id
}

/// The error of a call a test trigger refused: the trigger's own error,
/// not the "current transaction is aborted" of a statement pipelined after
/// it.
fn assert_refused<T: std::fmt::Debug>(result: &Result<T, Error>) {
    match result {
        Err(e @ Error::Database(_)) => assert!(
            e.to_string().contains("refused by the test"),
            "the cause, not a later statement's error: {e}"
        ),
        other => panic!("expected the trigger's database error, got {other:?}"),
    }
}

/// A statement that fails in a pipelined group rolls the whole transaction
/// back: the statements sent after it are not applied, and the connection
/// is clean for the next call.
#[tokio::test]
async fn a_failure_inside_a_pipelined_group_undoes_the_whole_group() {
    let db = TestDb::migrated().await;
    let store = db.one_connection_store().await;
    let admin = user(&store, "boss@example.com", Role::Superadmin).await;
    let ann = user(&store, "ann@example.com", Role::User).await;
    let client = db.client().await;
    let audits = || async {
        client
            .query_one("SELECT count(*) FROM user_audit_log", &[])
            .await
            .expect("audit count")
            .get::<_, i64>(0)
    };
    let before = audits().await;

    // A failure at the start of a group: a trigger refuses the profile
    // update, and the audit entry pipelined after it must not stay.
    client
        .batch_execute(
            "CREATE FUNCTION refuse_name() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.display_name LIKE 'refused%' THEN \
             RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse_name BEFORE UPDATE ON users \
             FOR EACH ROW EXECUTE FUNCTION refuse_name()",
        )
        .await
        .expect("trigger");
    let update = ProfileUpdate {
        display_name: Some("refused name".into()),
        ..ProfileUpdate::default()
    };
    let refused = store
        .update_user_by_admin(admin.id, ann.id, &update, &meta())
        .await;
    assert_refused(&refused);
    assert_eq!(
        audits().await,
        before,
        "the pipelined audit entry was undone"
    );
    let name: String = client
        .query_one(
            "SELECT display_name FROM users WHERE id::text = $1",
            &[&ann.id.0.to_string()],
        )
        .await
        .expect("name")
        .get(0);
    assert_eq!(name, ann.display_name);

    // A failure at the end of a group: the block, the revocation and the
    // session delete ran before the audit insert failed, and none stays.
    let token = store
        .issue_refresh_token(ann.id, chrono::Duration::days(1))
        .await
        .expect("token");
    client
        .batch_execute(
            "CREATE FUNCTION refuse_block_entry() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN IF NEW.action = 'user_blocked' THEN \
             RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse_block_entry BEFORE INSERT ON user_audit_log \
             FOR EACH ROW EXECUTE FUNCTION refuse_block_entry()",
        )
        .await
        .expect("audit trigger");
    let refused = store.block_user(admin.id, ann.id, "spam", &meta()).await;
    assert_refused(&refused);
    let still = store.user_by_id(ann.id).await.expect("ann");
    assert!(!still.blocked(), "the block was rolled back");
    store
        .verify_refresh_token(token.token.expose())
        .await
        .expect("the revocation was rolled back");
    assert_eq!(audits().await, before);

    // A failure in the middle: the token revocation fails, and the error
    // returned is its own, not that of the session delete after it.
    client
        .batch_execute(
            "DROP TRIGGER refuse_block_entry ON user_audit_log; \
             CREATE FUNCTION refuse_revoke() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'refused by the test'; END $$; \
             CREATE TRIGGER refuse_revoke BEFORE UPDATE ON refresh_tokens \
             FOR EACH ROW EXECUTE FUNCTION refuse_revoke()",
        )
        .await
        .expect("revoke trigger");
    let refused = store.end_all_sessions(ann.id).await;
    assert_refused(&refused);
    let refused = store.block_user(admin.id, ann.id, "spam", &meta()).await;
    assert_refused(&refused);
    assert!(!store.user_by_id(ann.id).await.expect("ann").blocked());

    // The same connection serves the next call, outside any transaction.
    client
        .batch_execute("DROP TRIGGER refuse_revoke ON refresh_tokens")
        .await
        .expect("drop trigger");
    let blocked = store
        .block_user(admin.id, ann.id, "spam", &meta())
        .await
        .expect("block after the failures");
    assert!(blocked.blocked());
    assert_eq!(audits().await, before + 1);
    let refused = store.verify_refresh_token(token.token.expose()).await;
    assert!(refused.is_err(), "the block revoked the token: {refused:?}");
    let _: UserId = blocked.id;
}

/// Statements joined on a connection that has prepared none of them yet
/// (each must be prepared before it runs) still run in the order joined:
/// the first call of a fresh store deletes a user, whose audit entry,
/// joined before the delete, references the user's row (a foreign key) and
/// would fail if the delete overtook it.
#[tokio::test]
async fn statements_still_to_be_prepared_keep_their_order() {
    let db = TestDb::migrated().await;
    let setup = db.store().await;
    let admin = user(&setup, "boss@example.com", Role::Superadmin).await;
    let doomed = user(&setup, "doomed@example.com", Role::User).await;
    drop(setup);

    let fresh = db.one_connection_store().await;
    fresh
        .delete_user(admin.id, doomed.id, &meta())
        .await
        .expect("delete on a cold connection");
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT user_id IS NULL, details ->> 'email' FROM user_audit_log \
             WHERE action = 'user_deleted'",
            &[],
        )
        .await
        .expect("the audit entry");
    assert!(
        row.get::<_, bool>(0),
        "the entry lost its user with the row"
    );
    assert_eq!(row.get::<_, String>(1), "doomed@example.com");
    let left: i64 = client
        .query_one("SELECT count(*) FROM users", &[])
        .await
        .expect("users")
        .get(0);
    assert_eq!(left, 1, "only the admin is left");
}
