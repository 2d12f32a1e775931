//! Typed response bodies: what handlers return (`Json<View>`), deriving
//! both `Serialize` and `ToSchema`, so the document and the answer are one
//! type. Resources not yet moved here are still described by
//! [`crate::schema`].

pub mod inventory;
pub mod jobs;
