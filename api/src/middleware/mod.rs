//! The layers every request passes through, outermost first: request id
//! and metrics ([`request_id`]), security headers and JSON-only bodies
//! ([`hardening`]), then authentication, authorization, rate limiting and
//! auditing ([`access`]). They read the application state; the pieces they
//! use (the access policy, the request id, the error envelope) do not, so
//! nothing below the state depends on it.

pub mod access;
pub mod hardening;
pub mod request_id;
