//! The database's clock in queries: `now()` typed as `timestamptz`, and
//! `timestamptz ± interval`, which Diesel offers for columns but not for
//! function calls. Expiries are written and checked on this one clock, so
//! that app servers with skewed clocks still agree.

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
