//! End-to-end tests of the walking system, in one binary (one link of every
//! crate and the AWS SDKs instead of seven): the real API and worker against
//! real PostgreSQL and Redis, the AWS emulator and a real model server.

mod api;
mod console;
mod console_pages;
mod errors;
mod faults;
mod inference;
mod operations_metrics;
mod partitions;
mod records;
mod reports;
mod retention;
mod schedules;
mod syncs;
