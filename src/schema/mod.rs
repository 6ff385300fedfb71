//! The crate's tables and views in Diesel's `table!` form: the tables as
//! `diesel migration run` generates them (`tables.rs`, never edited by
//! hand), and the three views, which `print-schema` does not emit, written
//! by hand beside them (`views.rs`). Every one is reachable here, as
//! `schema::users`, `schema::pending_password_resets`, and so on.

mod tables;
mod views;

pub use tables::*;
pub use views::*;
