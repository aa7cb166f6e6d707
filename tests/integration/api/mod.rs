//! The identity HTTP API, served in-process on an ephemeral port.

pub mod client;
pub mod harness;
pub mod logs;

mod endpoints;
mod errors;
mod examples;
mod openapi;
mod policy;
mod sessions;
mod throttle;
mod tokens;
