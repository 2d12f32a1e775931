//! Typed response bodies: what handlers return (`Json<View>`), deriving
//! both `Serialize` and `ToSchema`, so the document and the answer are one
//! type. One module per resource family.

pub mod admin;
pub mod health;
pub mod inference;
pub mod inventory;
pub mod jobs;
pub mod queues;
pub mod reports;
pub mod schedules;
