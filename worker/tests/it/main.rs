//! hangar-worker's integration tests, in one binary: syncs against the AWS
//! emulator, the inference cap, worker processes, and a report job killed
//! mid-write.

mod backup;
mod console;
mod errors;
mod explain;
mod inference_cap;
mod monitoring;
mod process;
mod reports;
mod sync;
mod traces;
