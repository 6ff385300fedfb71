//! `pronghorn-bench`: the store of `pronghorn-db` against the same work
//! hand-written on tokio-postgres (the ceiling of a hand-written layer) and
//! done with sqlx, on one scratch database, in one run; with pgbench's
//! select-only rate as the physical ceiling. See `BENCHMARKS.md` at the
//! repository root for the figures and how to read them.
//!
//! The run: [`scratch`] recreates and seeds the database; [`verify`] proves
//! through the [`wire`] proxy that every contender sends the same
//! statements; [`rounds`] times the [`workload`]s, interleaving the
//! contenders; [`report`] prints the table.

pub mod contender;
pub mod measure;
pub mod pgbench;
pub mod report;
pub mod rounds;
pub mod rows;
pub mod scratch;
pub mod settings;
pub mod sql;
pub mod target;
pub mod verify;
pub mod wire;
pub mod workload;
