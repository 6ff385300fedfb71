//! Built-in SQL functions the repository queries call, declared once so
//! that diesel type-checks them. (The schema's own functions, such as
//! `log_user_action`, are in [`crate::functions`].)

use diesel::sql_types::{Jsonb, Nullable, Timestamptz, Varchar};

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
    /// SQL `clock_timestamp()`: the wall-clock time when it is evaluated
    /// (unlike `now()`, which is fixed at the start of the transaction).
    fn clock_timestamp() -> Timestamptz;
}
