//! The one integration-test binary: each module drives the real `stagegate` binary or library.

mod api;
mod api_abuse;
mod closed_loader;
mod closed_loader_props;
mod console;
mod controller;
mod daemon;
mod diff;
mod domains;
mod firstrun;
mod foundation;
mod helm;
mod kube_api;
mod layers;
mod messages;
mod operator;
mod refused;
mod shared_store;
mod store;
mod stores;
mod support;
