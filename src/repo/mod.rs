//! Repository functions: the only place that writes queries. Each takes
//! `&mut AsyncPgConnection`, so any set of them composes inside one
//! transaction; the store checks connections out and calls them.

pub mod audit;
pub mod users;
