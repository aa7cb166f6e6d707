//! What a YAML file must pass before the YAML parser sees it: UTF-8 text
//! (a leading byte-order mark dropped) and a bounded nesting depth.
//!
//! Why a pre-scan: the YAML parser's cost grows with the square of the
//! nesting depth (100,000 `[` took 41 s), and manifests never nest more than
//! a handful of levels. One linear pass estimates the depth from above and
//! refuses a document before the parser runs, so every input is either
//! rejected or parsed in time linear in its size.

/// Deepest nesting (block and flow levels together) a manifest may have; stagegate's kinds need 5.
pub const MAX_NESTING: usize = 64;

/// The UTF-8 byte-order mark.
const BOM: char = '\u{FEFF}';

/// A file's text without a leading byte-order mark.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix(BOM).unwrap_or(text)
}

/// Bytes that are not a YAML file: where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextProblem {
    /// 1-based line of the problem.
    pub line: usize,
    /// What is wrong, never quoting the content (a Secret file holds secrets).
    pub message: String,
}

/// Decodes a file's bytes: UTF-8, a leading byte-order mark dropped; otherwise the line of the first bad byte.
pub fn decode_text(bytes: Vec<u8>) -> Result<String, TextProblem> {
    match String::from_utf8(bytes) {
        Ok(mut text) => {
            if text.starts_with(BOM) {
                text.drain(..BOM.len_utf8());
            }
            Ok(text)
        }
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let line = 1 + bytes[..at].iter().filter(|b| **b == b'\n').count();
            Err(TextProblem {
                line,
                message: format!(
                    "the file is not UTF-8 text (invalid byte at offset {at}); save it as UTF-8"
                ),
            })
        }
    }
}

/// Scanner state between characters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Single,
    Double,
}

/// Refuses text nested deeper than `max` levels, before any YAML parser runs.
///
/// The estimate never falls below the depth the parser would reach: every
/// `[`/`{` that can open a flow collection counts (those inside quoted
/// scalars, comments, block scalars and plain scalars of block context do
/// not), and block depth counts indentation levels plus compact `- `/`? `
/// indicators on a line. It may count a bracket inside an unusual scalar of
/// flow context, so valid but strange text can be refused, never the reverse.
pub fn check_nesting(text: &str, max: usize) -> Result<(), TextProblem> {
    let mut flow = 0usize;
    let mut quote = Quote::None;
    // Indentation of the enclosing block levels; and of a block scalar's parent while inside one.
    let mut indents: Vec<usize> = Vec::new();
    let mut block_scalar: Option<usize> = None;
    let too_deep = |line: usize| TextProblem {
        line,
        message: format!(
            "nesting deeper than {max} levels: refused before parsing (a manifest needs a few)"
        ),
    };
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let content = line.trim_start_matches([' ', '\t']);
        let indent = line.len() - content.len();
        if let Some(parent) = block_scalar {
            if content.is_empty() || indent > parent {
                continue;
            }
            block_scalar = None;
        }
        let continuing = quote != Quote::None || flow > 0;
        let mut compact = 0usize;
        if !continuing && !content.is_empty() && !content.starts_with('#') {
            while indents.last().is_some_and(|top| *top > indent) {
                indents.pop();
            }
            if indents.last() != Some(&indent) {
                indents.push(indent);
            }
        }
        // In block context a node may start here; in flow context after `[ { , :` and indicators.
        let mut node_start = !continuing || flow > 0;
        let mut prev_space = true;
        let mut chars = content.char_indices().peekable();
        while let Some((_, c)) = chars.next() {
            let next_space = chars.peek().is_none_or(|(_, n)| *n == ' ' || *n == '\t');
            match quote {
                Quote::Double => {
                    if c == '\\' {
                        chars.next();
                    } else if c == '"' {
                        quote = Quote::None;
                        node_start = false;
                    }
                    prev_space = false;
                    continue;
                }
                Quote::Single => {
                    if c == '\'' {
                        quote = Quote::None;
                        node_start = false;
                    }
                    prev_space = false;
                    continue;
                }
                Quote::None => {}
            }
            match c {
                '#' if prev_space => break,
                ' ' | '\t' => {
                    prev_space = true;
                    continue;
                }
                '"' if node_start => quote = Quote::Double,
                '\'' if node_start => quote = Quote::Single,
                '[' | '{' if node_start || flow > 0 => {
                    flow += 1;
                    node_start = true;
                }
                ']' | '}' if flow > 0 => {
                    flow -= 1;
                    node_start = false;
                }
                ',' if flow > 0 => node_start = true,
                '-' | '?' | ':' if next_space => {
                    if flow == 0 && c != ':' && node_start {
                        compact += 1;
                    }
                    node_start = true;
                }
                '|' | '>' if node_start && flow == 0 => {
                    block_scalar = Some(indent);
                    break;
                }
                '&' | '!' if node_start => {
                    // An anchor or tag: the node itself starts after it.
                    while chars.peek().is_some_and(|(_, n)| *n != ' ' && *n != '\t') {
                        chars.next();
                    }
                }
                _ => node_start = false,
            }
            prev_space = false;
            if indents.len() + compact + flow > max {
                return Err(too_deep(line_no));
            }
        }
        if indents.len() + compact + flow > max {
            return Err(too_deep(line_no));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_bom_and_reports_bad_bytes_at_their_line() {
        assert_eq!(
            decode_text(b"\xEF\xBB\xBFa: 1\n".to_vec()).unwrap(),
            "a: 1\n"
        );
        let e = decode_text(b"a: 1\nb: caf\xE9\n".to_vec()).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(!e.message.contains("caf"));
    }

    #[test]
    fn deep_flow_and_block_nesting_is_refused_fast() {
        let flow = "[".repeat(100_000);
        let start = std::time::Instant::now();
        assert_eq!(check_nesting(&flow, MAX_NESTING).unwrap_err().line, 1);
        let seq = format!("a:\n  b: {}x\n", "- ".repeat(100_000));
        assert_eq!(check_nesting(&seq, MAX_NESTING).unwrap_err().line, 2);
        let mut indented = String::new();
        for i in 0..100 {
            indented.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
        }
        assert_eq!(check_nesting(&indented, MAX_NESTING).unwrap_err().line, 65);
        let mixed = format!("spec:\n  scope: {}\n", "{a: ".repeat(70));
        assert!(check_nesting(&mixed, MAX_NESTING).is_err());
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn brackets_in_scalars_comments_and_block_text_do_not_count() {
        let text = format!(
            "metadata:\n  name: a # {}\nspec:\n  reason: fix {} now\n  quoted: \"{}\"\n  single: '{}'\n  text: |\n{}  flow: [a, {{b: [c]}}]\n",
            "[".repeat(100),
            "[".repeat(100),
            "[".repeat(100),
            "{".repeat(100),
            "    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n".repeat(5),
        );
        assert_eq!(check_nesting(&text, MAX_NESTING), Ok(()));
    }
}
