//! The one-line summary at the top of a report: `+2 users, 1 escalation, 3 tokens issued`.

/// `1 user`, `2 users`: a count with the right noun.
pub fn plural(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// Builds a comma-separated summary, leaving out zero counts.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    parts: Vec<String>,
}

impl Summary {
    /// An empty summary.
    pub fn new() -> Self {
        Summary::default()
    }

    /// Adds `N noun` when `n > 0` (`1 escalation`, `3 tokens issued`).
    pub fn count(mut self, n: usize, singular: &str, plural_form: &str) -> Self {
        if n > 0 {
            self.parts.push(plural(n, singular, plural_form));
        }
        self
    }

    /// Adds `+N noun` when `n > 0` (`+2 users`).
    pub fn added(mut self, n: usize, singular: &str, plural_form: &str) -> Self {
        if n > 0 {
            self.parts
                .push(format!("+{}", plural(n, singular, plural_form)));
        }
        self
    }

    /// Adds `-N noun` when `n > 0` (`-1 user`).
    pub fn removed(mut self, n: usize, singular: &str, plural_form: &str) -> Self {
        if n > 0 {
            self.parts
                .push(format!("-{}", plural(n, singular, plural_form)));
        }
        self
    }

    /// Adds a free-form part.
    pub fn part(mut self, text: impl Into<String>) -> Self {
        self.parts.push(text.into());
        self
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The line, or `empty` when nothing was counted.
    pub fn finish(self, empty: &str) -> String {
        if self.parts.is_empty() {
            empty.to_string()
        } else {
            self.parts.join(", ")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_counts_are_left_out() {
        let s = Summary::new()
            .added(2, "user", "users")
            .removed(0, "user", "users")
            .count(1, "escalation", "escalations")
            .count(3, "token issued", "tokens issued")
            .finish("no changes");
        assert_eq!(s, "+2 users, 1 escalation, 3 tokens issued");
        assert_eq!(Summary::new().finish("no changes"), "no changes");
    }
}
