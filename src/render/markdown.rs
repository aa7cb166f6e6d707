//! Markdown pieces for pull-request comments (GitHub-flavoured Markdown).

/// Escapes text for a table cell: pipes, newlines and characters Markdown would interpret.
pub fn escape_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for line in s.split('\n').enumerate() {
        if line.0 > 0 {
            out.push_str("<br>");
        }
        out.push_str(&escape_inline(line.1.trim_end_matches('\r')));
    }
    out
}

/// Escapes inline text so that it renders literally (no emphasis, links, HTML or tables).
pub fn escape_inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A Markdown table; cells are escaped here, so pass plain text.
///
/// Rows shorter than the header are padded with empty cells. An empty
/// `rows` still yields the header, which renders as an empty table.
pub fn table<S: AsRef<str>>(headers: &[&str], rows: &[Vec<S>]) -> String {
    let mut out = String::new();
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    out.push_str(&line(headers.iter().map(|h| escape_cell(h)).collect()));
    out.push_str(&line(headers.iter().map(|_| "---".to_string()).collect()));
    for row in rows {
        let mut cells: Vec<String> = row.iter().map(|c| escape_cell(c.as_ref())).collect();
        cells.resize(headers.len(), String::new());
        out.push_str(&line(cells));
    }
    out
}

/// A collapsible section: `summary` is plain text (escaped), `body` is Markdown.
///
/// Blank lines around the body make GitHub render the Markdown inside the HTML block.
pub fn details(summary: &str, body: &str) -> String {
    format!(
        "<details>\n<summary>{}</summary>\n\n{}\n\n</details>\n",
        html_escape(summary),
        body.trim_end()
    )
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_escape_pipes_newlines_and_html() {
        assert_eq!(escape_cell("a|b"), "a\\|b");
        assert_eq!(escape_cell("x\ny"), "x<br>y");
        assert_eq!(escape_cell("<script>"), "&lt;script&gt;");
        assert_eq!(escape_cell("*not bold*"), "\\*not bold\\*");
    }

    #[test]
    fn table_pads_short_rows() {
        let t = table(&["a", "b"], &[vec!["1"]]);
        assert_eq!(t, "| a | b |\n| --- | --- |\n| 1 |  |\n");
    }

    #[test]
    fn details_escapes_summary_and_keeps_markdown_body() {
        let d = details("3 <items>", "- one\n");
        assert!(
            d.starts_with("<details>\n<summary>3 &lt;items&gt;</summary>\n\n- one\n\n</details>")
        );
    }
}
