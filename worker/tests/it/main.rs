//! hangar-worker's integration tests, in one binary: syncs against the AWS
//! emulator, the inference cap, and worker processes.

mod inference_cap;
mod process;
mod sync;
