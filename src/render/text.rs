//! Plain-text pieces for terminals: aligned tables and indentation.

/// A table with columns padded to their widest cell (in characters), two spaces apart.
///
/// Trailing spaces are trimmed so that output compares cleanly in golden files.
pub fn table<S: AsRef<str>>(headers: &[&str], rows: &[Vec<S>]) -> String {
    let cols = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, c) in row.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(c.as_ref().chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, w) in widths.iter().enumerate() {
            let c = cells.get(i).copied().unwrap_or("");
            l.push_str(c);
            if i + 1 < cols {
                l.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(|c| c.as_ref()).collect());
    }
    out
}

/// Every line of `s` prefixed with `prefix` (empty lines stay empty).
pub fn indent(s: &str, prefix: &str) -> String {
    s.lines()
        .map(|l| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{prefix}{l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + if s.ends_with('\n') { "\n" } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let t = table(
            &["NAME", "ROLE"],
            &[vec!["alan", "Analyst"], vec!["ada-lovelace", "Admin"]],
        );
        assert_eq!(
            t,
            "NAME          ROLE\nalan          Analyst\nada-lovelace  Admin\n"
        );
    }

    #[test]
    fn indent_keeps_blank_lines_blank() {
        assert_eq!(indent("a\n\nb\n", "  "), "  a\n\n  b\n");
    }
}
