//! Bad input through every public store method that takes text, ids,
//! cursors or page sizes: each gets a precise error (never a panic, never a
//! database or internal error), and text that is merely unusual is stored
//! and read back verbatim.

mod common;

use common::TestDb;
use pronghorn_db::models::AuditQuery;
use pronghorn_db::models::{
    MessageOrder, NewConversation, NewLocalUser, NewMessage, NewOAuthUser, NewWebsocketConnection,
    ProfileUpdate, RequestMeta, UserFilter, UserId,
};
use pronghorn_db::{
    AuditStore, ConversationStore, Error, PageRequest, PasswordResetStore, PgStore,
    RefreshTokenStore, ResetPolicy, SessionCookie, SessionData, SessionStore, UserStore,
    WebsocketStore,
};
use uuid::Uuid;

/// The kinds of bad text every text parameter is fed. The over-long text
/// is longer than any text column's limit.
fn bad_texts() -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("whitespace only", " \t\n ".to_owned()),
        ("over-long", "x".repeat(100_000)),
        ("with a NUL byte", "a\0b".to_owned()),
    ]
}

/// Text that is valid but awkward: quotes, SQL, backslashes, LIKE
/// wildcards, unicode (combining marks, right-to-left, emoji).
const AWKWARD: &[&str] = &[
    "O'Reilly \"quoted\"",
    "'; DROP TABLE users; --",
    "back\\slash % and _",
    "e\u{301}te\u{301} \u{5e9}\u{5dc}\u{5d5}\u{5dd} \u{1f980}",
    "$1 $$ dollar-quoted $$",
];

/// A precise, caller-side error: what bad input may produce.
fn precise(what: &str, e: &Error) {
    assert!(
        matches!(
            e,
            Error::Validation { .. }
                | Error::NotFound { .. }
                | Error::Forbidden { .. }
                | Error::InvalidCredentials
                | Error::TokenRejected { .. }
        ),
        "{what}: expected a precise error, got {e:?}"
    );
}

fn field(what: &str, r: Result<impl std::fmt::Debug, Error>, expected: &str) {
    match r {
        Err(Error::Validation { field, .. }) => assert_eq!(field, expected, "{what}"),
        other => panic!("{what}: expected Validation on {expected}, got {other:?}"),
    }
}

struct World {
    _db: TestDb,
    store: PgStore,
    owner: UserId,
    conv: Uuid,
}

async fn world() -> World {
    let db = TestDb::migrated().await;
    let store = db.store().await;
    let owner = store
        .create_user(NewLocalUser::new("owner@x.io", "owner password", "Owner"))
        .await
        .expect("owner")
        .id;
    let conv = store
        .create_conversation(NewConversation::new(owner, "openai"))
        .await
        .expect("conversation")
        .id;
    World {
        _db: db,
        store,
        owner,
        conv,
    }
}

#[tokio::test]
async fn bad_text_is_refused_naming_the_field() {
    let w = world().await;
    let (s, owner, conv) = (&w.store, w.owner, w.conv);
    let meta = RequestMeta::default();
    for (kind, bad) in bad_texts() {
        let what = |m: &str| format!("{m} with {kind} text");
        let u = |email: &str, pw: &str, name: &str| NewLocalUser::new(email, pw, name);
        field(
            &what("create_user email"),
            s.create_user(u(&bad, "long password", "N")).await,
            "email",
        );
        field(
            &what("create_user display_name"),
            s.create_user(u("a@x.io", "long password", &bad)).await,
            "display_name",
        );
        field(&what("user_by_email"), s.user_by_email(&bad).await, "email");
        field(
            &what("authenticate"),
            s.authenticate(&bad, "pw").await,
            "email",
        );
        field(
            &what("request_password_reset"),
            s.request_password_reset(&bad, &ResetPolicy::default(), &meta)
                .await,
            "email",
        );
        let oauth = |provider: &str, id: &str| NewOAuthUser {
            provider: provider.into(),
            oauth_id: id.into(),
            email: "o@x.io".into(),
            display_name: "O".into(),
            avatar_url: None,
            email_verified: false,
        };
        field(
            &what("oauth provider"),
            s.find_or_create_oauth_user(oauth(&bad, "1")).await,
            "oauth_provider",
        );
        field(
            &what("oauth id"),
            s.find_or_create_oauth_user(oauth("google", &bad)).await,
            "oauth_id",
        );
        let profile = ProfileUpdate {
            display_name: Some(bad.clone()),
            ..Default::default()
        };
        field(
            &what("update_profile"),
            s.update_profile(owner, &profile, &meta).await,
            "display_name",
        );
        field(
            &what("add_additional_role"),
            s.add_additional_role(owner, &bad).await,
            "additional_roles",
        );
        field(
            &what("block_user reason"),
            s.block_user(owner, owner, &bad, &meta).await,
            "reason",
        );
        field(
            &what("create_conversation provider"),
            s.create_conversation(NewConversation::new(owner, bad.clone()))
                .await,
            "provider",
        );
        field(
            &what("append_message role"),
            s.append_message(owner, conv, NewMessage::new(bad.clone(), "hi"))
                .await,
            "role",
        );
        field(
            &what("websocket_connected"),
            s.websocket_connected(NewWebsocketConnection::new(bad.clone()))
                .await,
            "connection_id",
        );
        field(
            &what("record_websocket_activity"),
            s.record_websocket_activity(&bad).await,
            "connection_id",
        );
        field(
            &what("block_websocket_connection"),
            s.block_websocket_connection("c1", &bad, owner).await,
            "reason",
        );
        field(
            &what("audit_log action"),
            s.audit_log(&AuditQuery::Action(bad.clone()), &PageRequest::default())
                .await,
            "action",
        );
        // Session ids and tokens that cannot exist: no session, a rejected token.
        let sid = s.get_session(&bad).await;
        match sid {
            Ok(None) => {}
            Err(e) => precise(&what("get_session"), &e),
            Ok(Some(_)) => panic!("a session for {kind} text"),
        }
        for r in [
            s.verify_refresh_token(&bad).await.map(drop),
            s.rotate_refresh_token(&bad, chrono::Duration::hours(1))
                .await
                .map(drop),
            s.reset_password(&bad, "long enough pw", &meta)
                .await
                .map(drop),
        ] {
            precise(&what("token"), &r.expect_err("refused"));
        }
    }
    // Text over a column's own limit.
    let title = "t".repeat(256);
    field(
        "title",
        s.create_conversation(NewConversation::new(owner, "p").title(title))
            .await,
        "title",
    );
    field(
        "model",
        s.create_conversation(NewConversation::new(owner, "p").model("m".repeat(101)))
            .await,
        "model",
    );
    field(
        "content",
        s.append_message(owner, conv, NewMessage::new("user", ""))
            .await,
        "content",
    );
    field(
        "NUL content",
        s.append_message(owner, conv, NewMessage::new("user", "a\0"))
            .await,
        "content",
    );
    field(
        "tokens",
        s.append_message(owner, conv, NewMessage::new("user", "x").tokens(-1))
            .await,
        "tokens_used",
    );
    let avatar = ProfileUpdate {
        avatar_url: Some(Some("u".repeat(501))),
        ..Default::default()
    };
    field(
        "avatar",
        s.update_profile(owner, &avatar, &meta).await,
        "avatar_url",
    );
    let lang = ProfileUpdate {
        language_preference: Some("l".repeat(11)),
        ..Default::default()
    };
    field(
        "language",
        s.update_profile(owner, &lang, &meta).await,
        "language_preference",
    );
    field(
        "new password",
        s.change_password(owner, "owner password", "short", &meta)
            .await,
        "password",
    );
    let mut data = SessionData::new(SessionCookie::with_max_age(chrono::Duration::hours(1)));
    field("sid", s.set_session("", &data).await, "sid");
    data.fields.insert("cookie".into(), serde_json::json!(1));
    assert!(
        s.set_session("sid-1", &data).await.is_err(),
        "a field named cookie is refused"
    );
}

#[tokio::test]
async fn unknown_ids_are_not_found_and_bad_cursors_are_validation_errors() {
    let w = world().await;
    let (s, owner, conv) = (&w.store, w.owner, w.conv);
    let ghost = UserId(Uuid::new_v4());
    let nowhere = Uuid::new_v4();
    let meta = RequestMeta::default();
    let results: Vec<(&str, Result<(), Error>)> = vec![
        ("user_by_id", s.user_by_id(ghost).await.map(drop)),
        (
            "update_profile",
            s.update_profile(
                ghost,
                &ProfileUpdate {
                    display_name: Some("X".into()),
                    ..Default::default()
                },
                &meta,
            )
            .await
            .map(drop),
        ),
        ("verify_email", s.verify_email(ghost).await.map(drop)),
        ("record_login", s.record_login(ghost).await.map(drop)),
        (
            "delete_own_account",
            s.delete_own_account(ghost, &meta).await,
        ),
        (
            "conversation",
            s.conversation(owner, nowhere).await.map(drop),
        ),
        (
            "conversation of another owner",
            s.conversation(ghost, conv).await.map(drop),
        ),
        (
            "rename_conversation",
            s.rename_conversation(owner, nowhere, Some("t"))
                .await
                .map(drop),
        ),
        (
            "delete_conversation",
            s.delete_conversation(owner, nowhere).await,
        ),
        (
            "append_message",
            s.append_message(owner, nowhere, NewMessage::new("user", "x"))
                .await
                .map(drop),
        ),
        (
            "list_messages",
            s.list_messages(
                owner,
                nowhere,
                MessageOrder::NewestFirst,
                &PageRequest::default(),
            )
            .await
            .map(drop),
        ),
        (
            "create_conversation for no user",
            s.create_conversation(NewConversation::new(ghost, "p"))
                .await
                .map(drop),
        ),
        (
            "issue_refresh_token",
            s.issue_refresh_token(ghost, chrono::Duration::hours(1))
                .await
                .map(drop),
        ),
        (
            "websocket_connection",
            s.websocket_connection("never-connected").await.map(drop),
        ),
    ];
    for (what, r) in results {
        match r {
            Err(Error::NotFound { .. }) => {}
            other => panic!("{what}: expected NotFound, got {other:?}"),
        }
    }

    // Tampered cursors, and cursors from another listing.
    let tampered = [
        "garbage",
        "' OR 1=1 --",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "\0",
    ];
    let other_listing = s
        .list_users(&UserFilter::default(), &PageRequest::first(1))
        .await
        .expect("users");
    assert!(other_listing.next_cursor.is_none(), "one user only");
    for bad in tampered {
        let page = PageRequest::after(10, bad);
        field(
            "list_users",
            s.list_users(&UserFilter::default(), &page).await,
            "cursor",
        );
        field(
            "list_conversations",
            s.list_conversations(owner, &page).await,
            "cursor",
        );
        field(
            "list_messages",
            s.list_messages(owner, conv, MessageOrder::OldestFirst, &page)
                .await,
            "cursor",
        );
        field(
            "audit_log",
            s.audit_log(&AuditQuery::User(owner), &page).await,
            "cursor",
        );
        field(
            "pending_password_resets",
            s.pending_password_resets(&page).await,
            "cursor",
        );
        field(
            "active_websocket_connections",
            s.active_websocket_connections(&page).await,
            "cursor",
        );
    }
    // A real cursor of one listing, used on another.
    for i in 0..3 {
        s.create_conversation(NewConversation::new(owner, format!("p{i}")))
            .await
            .expect("more");
    }
    let cursor = s
        .list_conversations(owner, &PageRequest::first(1))
        .await
        .expect("page")
        .next_cursor
        .expect("more");
    let page = PageRequest::after(1, cursor);
    field(
        "conversation cursor on messages",
        s.list_messages(owner, conv, MessageOrder::NewestFirst, &page)
            .await,
        "cursor",
    );
    field(
        "conversation cursor on users",
        s.list_users(&UserFilter::default(), &page).await,
        "cursor",
    );
}

#[tokio::test]
async fn page_sizes_are_clamped_everywhere() {
    let w = world().await;
    let (s, owner, conv) = (&w.store, w.owner, w.conv);
    let batch: Vec<NewMessage> = (0..150)
        .map(|i| NewMessage::new("user", format!("m{i}")))
        .collect();
    s.append_messages(owner, conv, batch).await.expect("batch");
    for i in 0..120 {
        s.create_conversation(NewConversation::new(owner, format!("p{i}")))
            .await
            .expect("conversation");
    }
    for (limit, expected) in [(0, 1), (-1, 1), (i64::MIN, 1), (7, 7), (i64::MAX, 100)] {
        let page = PageRequest::first(limit);
        let m = s
            .list_messages(owner, conv, MessageOrder::NewestFirst, &page)
            .await
            .expect("messages");
        assert_eq!(m.items.len(), expected, "messages, limit {limit}");
        let c = s
            .list_conversations(owner, &page)
            .await
            .expect("conversations");
        assert_eq!(c.items.len(), expected, "conversations, limit {limit}");
    }
    let u = s
        .list_users(&UserFilter::default(), &PageRequest::first(-10))
        .await
        .expect("users");
    assert_eq!(u.items.len(), 1);
}

#[tokio::test]
async fn awkward_text_is_stored_and_read_back_verbatim() {
    let w = world().await;
    let (s, owner, conv) = (&w.store, w.owner, w.conv);
    let meta = RequestMeta {
        ip: None,
        user_agent: Some(AWKWARD[1].to_owned()),
    };
    for (i, text) in AWKWARD.iter().enumerate() {
        let text = text.to_string();
        // Users: names, roles, reasons; mixed-case and unicode emails.
        let email = format!("MiXeD.{i}.Ünï@Exämple.ORG");
        let mut new = NewLocalUser::new(&email, "long password", &text);
        new.additional_roles = vec![text.chars().take(50).collect()];
        let u = s.create_user(new).await.expect("create");
        assert_eq!(u.display_name, text);
        assert_eq!(u.email, email.to_lowercase());
        assert_eq!(
            s.user_by_email(&email.to_uppercase())
                .await
                .expect("by email")
                .id,
            u.id
        );
        let found = s
            .list_users(
                &UserFilter {
                    search: Some(text.clone()),
                    ..Default::default()
                },
                &PageRequest::default(),
            )
            .await
            .expect("search");
        assert_eq!(
            found.items.iter().map(|x| x.id).collect::<Vec<_>>(),
            vec![u.id],
            "search for {text:?}"
        );
        let avatar = ProfileUpdate {
            avatar_url: Some(Some(text.clone())),
            ..Default::default()
        };
        assert_eq!(
            s.update_profile(u.id, &avatar, &meta)
                .await
                .expect("avatar")
                .avatar_url,
            Some(text.clone())
        );
        // Conversations and messages.
        let c = s
            .create_conversation(
                NewConversation::new(owner, "p")
                    .title(text.clone())
                    .model(text.clone()),
            )
            .await
            .expect("conversation");
        assert_eq!(c.title.as_deref(), Some(text.as_str()));
        assert_eq!(
            s.conversation(owner, c.id).await.expect("read").model,
            Some(text.clone())
        );
        let m = s
            .append_message(owner, conv, NewMessage::new("user", text.clone()))
            .await
            .expect("message");
        let page = s
            .list_messages(
                owner,
                conv,
                MessageOrder::NewestFirst,
                &PageRequest::first(1),
            )
            .await
            .expect("list");
        assert_eq!(page.items[0].id, m.id);
        assert_eq!(page.items[0].content, text);
        // Websocket rows.
        let mut ws = NewWebsocketConnection::new(format!("conn-{i}"));
        ws.user_agent = Some(text.clone());
        ws.metadata = Some(serde_json::json!({ "note": text }));
        let row = s.websocket_connected(ws).await.expect("connect");
        assert_eq!(row.user_agent.as_deref(), Some(text.as_str()));
        let blocked = s
            .block_websocket_connection(&format!("conn-{i}"), &text, owner)
            .await
            .expect("block");
        assert_eq!(blocked.blocked_reason.as_deref(), Some(text.as_str()));
        assert_eq!(blocked.metadata, Some(serde_json::json!({ "note": text })));
    }
    // The audit log kept the awkward user agent as given.
    let log = s
        .audit_log(
            &AuditQuery::Action("profile_updated".into()),
            &PageRequest::first(1),
        )
        .await
        .expect("audit");
    assert_eq!(log.items[0].user_agent.as_deref(), Some(AWKWARD[1]));
}

/// A cursor in this crate's format, forged for `scope_parts` (the parts the
/// store fingerprints a listing by): what a client that read the format
/// could build without ever getting it from the store.
fn forged_cursor(micros: i64, scope_parts: &[&str]) -> String {
    use base64::Engine;
    let mut scope: u64 = 0xcbf2_9ce4_8422_2325;
    for part in scope_parts {
        for byte in part.as_bytes().iter().chain(std::iter::once(&0xff)) {
            scope ^= u64::from(*byte);
            scope = scope.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    let mut bytes = vec![1u8];
    bytes.extend_from_slice(&micros.to_be_bytes());
    bytes.extend_from_slice(&[0u8; 16]);
    bytes.extend_from_slice(&scope.to_be_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A cursor that passes its listing's scope check but holds a time before
/// PostgreSQL's first instant (4714 BC) is a `Validation` error on
/// `cursor`, not a database error; the first instant itself is a cursor
/// like any other (an empty page follows it).
#[tokio::test]
async fn a_forged_cursor_with_a_time_postgres_cannot_hold_is_refused_as_input() {
    let w = world().await;
    let (owner, conv) = (w.owner.to_string(), w.conv.to_string());
    let conversations = |micros| forged_cursor(micros, &["conversations", &owner]);
    let messages = |micros| forged_cursor(micros, &["messages", &owner, &conv, "newest"]);
    let earliest = -210_866_803_200_000_000i64;
    for micros in [earliest - 1, -300_000_000_000_000_000, i64::MIN] {
        field(
            "list_conversations, forged time",
            w.store
                .list_conversations(w.owner, &PageRequest::after(5, conversations(micros)))
                .await,
            "cursor",
        );
        field(
            "list_messages, forged time",
            w.store
                .list_messages(
                    w.owner,
                    w.conv,
                    MessageOrder::NewestFirst,
                    &PageRequest::after(5, messages(micros)),
                )
                .await,
            "cursor",
        );
    }
    let page = w
        .store
        .list_conversations(w.owner, &PageRequest::after(5, conversations(earliest)))
        .await
        .expect("the earliest instant is a usable cursor");
    assert!(page.items.is_empty());
    let page = w
        .store
        .list_messages(
            w.owner,
            w.conv,
            MessageOrder::NewestFirst,
            &PageRequest::after(5, messages(earliest)),
        )
        .await
        .expect("the earliest instant is a usable cursor");
    assert!(page.items.is_empty());
}
