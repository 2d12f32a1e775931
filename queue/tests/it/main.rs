//! The queue engine's integration tests, in one binary, against real Redis
//! (private `redis-server`s for the ones that stop or flush it).

#[macro_use]
mod common;
mod client;
mod coordination;
mod faults;
mod lifecycle;
mod worker;
