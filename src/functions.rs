//! Every SQL function the crate's queries call, declared once with
//! `define_sql_function!` so that queries calling them are type-checked:
//! first the functions the migrations create, then the built-ins the
//! repositories use, then `clock`, the database's clock in queries.
//!
//! Call them inside a query, e.g.
//! `diesel::select(get_role_level("admin")).get_result::<i32>(conn)`.
//! A failure inside the function reaches the caller as the query's error
//! (a `diesel::result::Error`, mapped to [`crate::Error`] by the store).

use diesel::sql_types::{
    Inet, Integer, Jsonb, Nullable, Text, Timestamp, Timestamptz, Uuid, Varchar,
};

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

// ---- built-in functions the repositories call ----------------------

diesel::define_sql_function! {
    /// SQL `float8(numeric)`: the nearest double to a `numeric` value.
    fn float8(value: diesel::sql_types::Numeric) -> diesel::sql_types::Double;
}

diesel::define_sql_function! {
    /// SQL `lower(text)`.
    fn lower(x: Varchar) -> Varchar;
}

diesel::define_sql_function! {
    /// SQL `coalesce(timestamptz, timestamptz)`.
    #[sql_name = "coalesce"]
    fn coalesce_ts(x: Nullable<Timestamptz>, y: Timestamptz) -> Timestamptz;
}

diesel::define_sql_function! {
    /// SQL `coalesce(jsonb, jsonb)`.
    #[sql_name = "coalesce"]
    fn coalesce_jsonb(x: Nullable<Jsonb>, y: Jsonb) -> Jsonb;
}

diesel::define_sql_function! {
    /// SQL `coalesce(varchar, varchar)` onto a `NOT NULL` column: the first
    /// value unless it is NULL.
    #[sql_name = "coalesce"]
    fn coalesce_varchar(x: Nullable<Varchar>, y: Varchar) -> Varchar;
}

diesel::define_sql_function! {
    /// SQL `coalesce(varchar, varchar)` onto a nullable column.
    #[sql_name = "coalesce"]
    fn coalesce_nullable_varchar(x: Nullable<Varchar>, y: Nullable<Varchar>) -> Nullable<Varchar>;
}

diesel::define_sql_function! {
    /// SQL `jsonb_typeof(jsonb)`: `array`, `object`, `string`, `number`,
    /// `boolean` or `null` (NULL for SQL NULL).
    fn jsonb_typeof(x: Nullable<Jsonb>) -> Nullable<Text>;
}

diesel::define_sql_function! {
    /// SQL `clock_timestamp()`: the wall-clock time when it is evaluated
    /// (unlike `now()`, which is fixed at the start of the transaction).
    fn clock_timestamp() -> Timestamptz;
}

diesel::define_sql_function! {
    /// SQL `current_setting(name)`.
    fn current_setting(name: Text) -> Text;
}

diesel::define_sql_function! {
    /// SQL `timezone(zone, timestamptz)` (`AT TIME ZONE`): the wall-clock
    /// time of an instant in `zone`.
    #[sql_name = "timezone"]
    fn wall_clock(zone: Text, at: Timestamptz) -> Timestamp;
}

diesel::define_sql_function! {
    /// SQL `timezone(zone, timestamp)` (`AT TIME ZONE`): the instant a
    /// wall-clock time in `zone` stands for.
    #[sql_name = "timezone"]
    fn instant(zone: Text, at: Timestamp) -> Timestamptz;
}

/// The database's clock in queries: `now()` typed as `timestamptz`, and
/// `timestamptz ± interval`, which Diesel offers for columns but not for
/// function calls. Expiries are written and checked on this one clock, so
/// that app servers with skewed clocks still agree.
pub(crate) mod clock {
    use diesel::pg::data_types::PgInterval;
    use diesel::pg::Pg;
    use diesel::sql_types::{Interval, Timestamptz};
    use diesel::IntoSql;

    diesel::define_sql_function! {
        /// SQL `now()`: the transaction's start time.
        #[sql_name = "now"]
        fn db_now() -> Timestamptz;
    }

    diesel::infix_operator!(Later, " + ", Timestamptz, backend: Pg);
    diesel::infix_operator!(Earlier, " - ", Timestamptz, backend: Pg);

    /// The bound interval type of [`from_now`] and [`ago`].
    type BoundInterval = diesel::dsl::AsExprOf<PgInterval, Interval>;

    /// `now() + span`.
    pub(crate) fn from_now(span: PgInterval) -> Later<db_now, BoundInterval> {
        Later::new(db_now(), span.into_sql::<Interval>())
    }

    /// `now() - span`.
    pub(crate) fn ago(span: PgInterval) -> Earlier<db_now, BoundInterval> {
        Earlier::new(db_now(), span.into_sql::<Interval>())
    }

    /// `now()`, typed as `timestamptz`.
    pub(crate) fn current() -> db_now {
        db_now()
    }

    diesel::define_sql_function! {
        /// SQL `clock_timestamp()`: the time the statement reads it.
        #[sql_name = "clock_timestamp"]
        fn db_clock_timestamp() -> Timestamptz;
    }

    /// `clock_timestamp()`: the time as the statement runs, not when its
    /// transaction began. For a check that must see an expiry another
    /// transaction wrote (as `now()`) after this one began.
    pub(crate) fn as_it_runs() -> db_clock_timestamp {
        db_clock_timestamp()
    }
}
