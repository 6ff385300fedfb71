//! `define_sql_function!` declarations for the SQL functions the
//! migrations create, so that queries calling them are type-checked.
//!
//! Call them inside a query, e.g.
//! `diesel::select(get_role_level("admin")).get_result::<i32>(conn)`.
//! A failure inside the function reaches the caller as the query's error
//! (a `diesel::result::Error`, mapped to [`crate::Error`] by the store).

use diesel::sql_types::{Inet, Integer, Jsonb, Nullable, Text, Uuid, Varchar};

diesel::define_sql_function! {
    /// `log_user_action(p_user_id, p_actor_id, p_action, p_details,
    /// p_ip_address, p_user_agent)`: appends one row to `user_audit_log`
    /// and returns its id.
    ///
    /// The SQL defaults (`p_details '{}'`, the last two NULL) are not
    /// available through this declaration: pass every argument. Fails with
    /// a foreign-key violation when a non-NULL user or actor id does not
    /// exist.
    fn log_user_action(
        p_user_id: Nullable<Uuid>,
        p_actor_id: Nullable<Uuid>,
        p_action: Varchar,
        p_details: Jsonb,
        p_ip_address: Nullable<Inet>,
        p_user_agent: Nullable<Text>,
    ) -> Uuid;
}

diesel::define_sql_function! {
    /// `cleanup_old_websocket_connections(days_to_keep)`: deletes the
    /// connections that ended more than `days_to_keep` days ago (open ones
    /// are kept whatever their age) and returns how many it deleted.
    fn cleanup_old_websocket_connections(days_to_keep: Integer) -> Integer;
}

diesel::define_sql_function! {
    /// `can_modify_user_role(actor_role, target_current_role,
    /// target_new_role)`: true when the actor's role level is strictly above
    /// the target's current level and, when `target_new_role` is not NULL,
    /// strictly above the new role's level too. Unknown role names have
    /// level 0, so an unknown actor can modify nobody.
    fn can_modify_user_role(
        actor_role: Varchar,
        target_current_role: Varchar,
        target_new_role: Nullable<Varchar>,
    ) -> Bool;
}

diesel::define_sql_function! {
    /// `get_role_level(role)`: 100 for `superadmin`, 50 for `admin`, 10 for
    /// `user`, 0 for any other name (the same levels as
    /// [`crate::models::Role::level`]).
    fn get_role_level(role: Varchar) -> Integer;
}

diesel::define_sql_function! {
    /// `is_valid_role(role)`: true only for `superadmin`, `admin` and
    /// `user` (exact, case-sensitive).
    fn is_valid_role(role: Varchar) -> Bool;
}
