//! Scoped rounds, shared by both front ends (directory mode in `sources::watch`,
//! the controller in `sources::kube`): what a round keeps to validate
//! ([`Kept`]) and plan ([`Memo`]) a small change from the objects it touches
//! instead of the whole organization.

mod kept;
mod memo;

pub use kept::{Kept, Outside};
pub use memo::{adds_no_expiry, by_file, outcomes_as_planned, Label, Memo, Part, Scope};
