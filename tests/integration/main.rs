//! The one integration-test binary: each module drives the real `stagegate` binary or library.

mod api;
mod foundation;
mod helm;
mod store;
mod support;
