//! Rendering building blocks shared by `stagegate plan` and `stagegate diff`.
//!
//! Nothing here knows about plans or diffs: Markdown tables with escaped
//! cells, collapsible `<details>` sections, a one-line summary builder,
//! stable ordering helpers and aligned text tables. Each report module
//! composes them so that every command's output looks the same.

pub mod markdown;
pub mod order;
pub mod summary;
pub mod text;

pub use markdown::{details, escape_cell, escape_inline, table as markdown_table};
pub use order::{join_or, sorted, sorted_by_key};
pub use summary::{plural, Summary};
pub use text::{indent, table as text_table};
