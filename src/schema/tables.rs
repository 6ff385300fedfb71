// @generated automatically by Diesel CLI.

diesel::table! {
    conversations (id) {
        id -> Uuid,
        user_id -> Uuid,
        #[max_length = 255]
        title -> Nullable<Varchar>,
        #[max_length = 50]
        provider -> Varchar,
        #[max_length = 100]
        model -> Nullable<Varchar>,
        created_at -> Nullable<Timestamptz>,
        updated_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    login_failures (email_digest) {
        #[max_length = 64]
        email_digest -> Varchar,
        failures -> Int4,
        window_started_at -> Timestamptz,
        last_failed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    messages (id) {
        id -> Uuid,
        conversation_id -> Uuid,
        #[max_length = 50]
        role -> Varchar,
        content -> Text,
        tokens_used -> Nullable<Int4>,
        created_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    migrations (id) {
        id -> Int4,
        #[max_length = 255]
        name -> Varchar,
        executed_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    password_reset_requests (id) {
        id -> Uuid,
        user_id -> Uuid,
        #[max_length = 255]
        reset_token_hash -> Varchar,
        requested_at -> Timestamptz,
        expires_at -> Timestamptz,
        used_at -> Nullable<Timestamptz>,
        ip_address -> Nullable<Inet>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        #[max_length = 255]
        token_hash -> Varchar,
        expires_at -> Timestamptz,
        created_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    session (sid) {
        sid -> Varchar,
        sess -> Json,
        expire -> Timestamp,
    }
}

diesel::table! {
    user_audit_log (id) {
        id -> Uuid,
        user_id -> Nullable<Uuid>,
        actor_id -> Nullable<Uuid>,
        #[max_length = 100]
        action -> Varchar,
        details -> Nullable<Jsonb>,
        ip_address -> Nullable<Inet>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    users (id) {
        id -> Uuid,
        #[max_length = 255]
        email -> Varchar,
        #[max_length = 255]
        password_hash -> Nullable<Varchar>,
        #[max_length = 100]
        display_name -> Varchar,
        #[max_length = 10]
        language_preference -> Nullable<Varchar>,
        #[max_length = 50]
        oauth_provider -> Nullable<Varchar>,
        #[max_length = 255]
        oauth_id -> Nullable<Varchar>,
        email_verified -> Nullable<Bool>,
        #[max_length = 50]
        role -> Nullable<Varchar>,
        created_at -> Nullable<Timestamptz>,
        updated_at -> Nullable<Timestamptz>,
        last_login -> Nullable<Timestamptz>,
        #[max_length = 500]
        avatar_url -> Nullable<Varchar>,
        additional_roles -> Nullable<Jsonb>,
        is_blocked -> Nullable<Bool>,
        blocked_at -> Nullable<Timestamptz>,
        blocked_by -> Nullable<Uuid>,
        blocked_reason -> Nullable<Text>,
        #[max_length = 255]
        reset_token -> Nullable<Varchar>,
        reset_token_expires -> Nullable<Timestamptz>,
        reset_token_used -> Nullable<Bool>,
        reset_attempts -> Nullable<Int4>,
        reset_attempts_reset_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    websocket_connections (id) {
        id -> Uuid,
        #[max_length = 64]
        connection_id -> Varchar,
        user_id -> Nullable<Uuid>,
        ip_address -> Nullable<Inet>,
        user_agent -> Nullable<Text>,
        connected_at -> Timestamptz,
        disconnected_at -> Nullable<Timestamptz>,
        last_activity_at -> Nullable<Timestamptz>,
        message_count -> Int4,
        is_authenticated -> Bool,
        is_blocked -> Bool,
        blocked_reason -> Nullable<Text>,
        blocked_at -> Nullable<Timestamptz>,
        blocked_by -> Nullable<Uuid>,
        metadata -> Nullable<Jsonb>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(conversations -> users (user_id));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(password_reset_requests -> users (user_id));
diesel::joinable!(refresh_tokens -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    conversations,
    login_failures,
    messages,
    migrations,
    password_reset_requests,
    refresh_tokens,
    session,
    user_audit_log,
    users,
    websocket_connections,
);
