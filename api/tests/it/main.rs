//! hangar-api's integration tests, in one binary (one link of the API and
//! its dependencies instead of one per file): the real API in process and
//! as `hangar-api` processes, against real Redis and PostgreSQL.

mod adversarial;
mod binaries;
mod security;
