//! The queue engine's integration tests, in one binary, against real Redis
//! (private `redis-server`s for the ones that stop or flush it).

#[macro_use]
mod common;
mod client;
mod cluster;
mod coordination;
mod faults;
mod lifecycle;
mod tls;
mod worker;
