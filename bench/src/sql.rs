//! The statements the hand-written contenders send: character for character
//! the SQL that Diesel generates for the store's repository functions (named
//! on each constant). [`crate::verify`] proves it on every run by watching
//! the wire: the run stops when any contender sends a different statement.

/// The columns of `User::as_select()`, in the struct's order.
macro_rules! user_columns {
    () => {
        concat!(
            r#""users"."id", "users"."email", "users"."password_hash", "users"."display_name", "#,
            r#""users"."language_preference", "users"."oauth_provider", "users"."oauth_id", "#,
            r#""users"."email_verified", "users"."role", "users"."created_at", "#,
            r#""users"."updated_at", "users"."last_login", "users"."avatar_url", "#,
            r#""users"."additional_roles", "users"."is_blocked", "users"."blocked_at", "#,
            r#""users"."blocked_by", "users"."blocked_reason", "users"."reset_token", "#,
            r#""users"."reset_token_expires", "users"."reset_token_used", "#,
            r#""users"."reset_attempts", "users"."reset_attempts_reset_at""#
        )
    };
}

/// The columns of `Message::as_select()` / `as_returning()`.
macro_rules! message_columns {
    () => {
        concat!(
            r#""messages"."id", "messages"."conversation_id", "messages"."role", "#,
            r#""messages"."content", "messages"."tokens_used", "messages"."created_at""#
        )
    };
}

/// The columns of `Conversation::as_select()` / `as_returning()`.
macro_rules! conversation_columns {
    () => {
        concat!(
            r#""conversations"."id", "conversations"."user_id", "conversations"."title", "#,
            r#""conversations"."provider", "conversations"."model", "#,
            r#""conversations"."created_at", "conversations"."updated_at""#
        )
    };
}

/// The `WHERE` clause of every query on one conversation of one owner.
macro_rules! owned_conversation {
    () => {
        r#"WHERE (("conversations"."id" = $1) AND ("conversations"."user_id" = $2))"#
    };
}

/// `repo::users::find_by_id`: `$1` the id, `$2` the limit (1).
pub const USER_BY_ID: &str = concat!(
    "SELECT ",
    user_columns!(),
    r#" FROM "users" WHERE ("users"."id" = $1) LIMIT $2"#
);

/// `repo::users::find_by_email`: `$1` and `$2` the normalised email, `$3` the
/// limit (1).
pub const USER_BY_EMAIL: &str = concat!(
    "SELECT ",
    user_columns!(),
    r#" FROM "users" WHERE (lower("users"."email") = $1)"#,
    r#" ORDER BY ("users"."email" = $2) DESC, "users"."created_at" ASC LIMIT $3"#
);

/// `repo::conversations::check_owned`: `$1` the conversation, `$2` its owner.
pub const CONVERSATION_IS_OWNED: &str = concat!(
    "SELECT EXISTS (SELECT ",
    conversation_columns!(),
    r#" FROM "conversations" "#,
    owned_conversation!(),
    ")"
);

/// `repo::conversations::insert`: `$1` owner, `$2` title, `$3` provider,
/// `$4` model.
pub const INSERT_CONVERSATION: &str = concat!(
    r#"INSERT INTO "conversations" ("user_id", "title", "provider", "model")"#,
    " VALUES ($1, $2, $3, $4) RETURNING ",
    conversation_columns!()
);

/// `repo::messages::list` newest first without a cursor: `$1` the
/// conversation, `$2` the epoch (for rows without `created_at`), `$3` the
/// limit (the page size plus one).
pub const NEWEST_MESSAGES: &str = concat!(
    "SELECT ",
    message_columns!(),
    r#" FROM "messages" WHERE ("messages"."conversation_id" = $1)"#,
    r#" ORDER BY coalesce("messages"."created_at", $2) DESC, "messages"."id" DESC LIMIT $3"#
);

/// `repo::messages::insert`: one row, `$1`..`$6` in the column order above.
pub const INSERT_MESSAGE: &str = concat!(
    r#"INSERT INTO "messages" ("id", "conversation_id", "role", "content", "tokens_used", "created_at")"#,
    " VALUES ($1, $2, $3, $4, $5, $6) RETURNING ",
    message_columns!()
);

/// `repo::messages::append`: the conversation's touch (owner check, lock,
/// new `updated_at`) and the insert of the drafts, in one statement: `$1`
/// the conversation, `$2` its owner, then the drafts as four arrays: `$3`
/// ids, `$4` roles, `$5` contents, `$6` tokens used. The same statement for
/// one message (W4) and a batch (W5).
pub const APPEND_MESSAGES: &str = concat!(
    r#"WITH "touched" AS (UPDATE "conversations" SET "updated_at" = clock_timestamp() "#,
    owned_conversation!(),
    r#" RETURNING "conversations"."id", "conversations"."updated_at")"#,
    r#" INSERT INTO "messages" ("id", "conversation_id", "role", "content", "tokens_used", "created_at")"#,
    r#" SELECT "drafts"."id", "touched"."id", "drafts"."role", "drafts"."content", "drafts"."tokens_used", "touched"."updated_at""#,
    r#" FROM "touched", unnest($3::uuid[], $4::text[], $5::text[], $6::int4[]) AS "drafts" ("id", "role", "content", "tokens_used")"#,
    " RETURNING ",
    message_columns!()
);
