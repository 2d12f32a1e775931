//! hangar-scheduler's integration tests, in one binary: the beat against
//! real Redis and PostgreSQL, the binary's commands, and scheduler processes.

mod beat;
mod binary;
mod organization;
mod process;
