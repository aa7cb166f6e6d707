//! Line bookkeeping for multi-document YAML: where each document and field starts.

/// One YAML document of a file and the 1-based line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// 1-based line of the document's first line of content (after any `---`).
    pub first_line: usize,
    /// The document's text.
    pub text: String,
}

/// Splits a file into documents at `---` markers, keeping line numbers.
pub fn split_documents(text: &str) -> Vec<Document> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut first_line = 1;
    for (i, line) in text.lines().enumerate() {
        let is_marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_marker {
            docs.push(Document {
                first_line,
                text: std::mem::take(&mut current),
            });
            first_line = i + 2;
            // Content after `--- ` on the same line belongs to the new document.
            let rest = line[3..].trim();
            if !rest.is_empty() && !rest.starts_with('#') {
                current.push_str(rest);
                current.push('\n');
                first_line = i + 1;
            }
            continue;
        }
        if line == "..." {
            // An end marker: kept as a blank line so the lines after it keep their numbers.
            current.push('\n');
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push(Document {
        first_line,
        text: current,
    });
    docs.retain(|d| {
        d.text
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    // The object "starts" at its first non-blank, non-comment line.
    for d in &mut docs {
        if let Some(skip) = d
            .text
            .lines()
            .position(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        {
            d.first_line += skip;
            d.text = d.text.lines().skip(skip).flat_map(|l| [l, "\n"]).collect();
        }
    }
    docs
}

/// Finds the 1-based line (within the document) of a dotted field path such as
/// `spec.scope.project`, following block-style indentation; falls back to the
/// deepest ancestor found. Array indices (`items.0.name`) are skipped over.
pub fn locate_field(doc: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut start = 0;
    let mut end = lines.len();
    let mut parent_indent: Option<usize> = None;
    let mut found = None;
    for seg in path
        .split('.')
        .filter(|s| !s.is_empty() && s.parse::<usize>().is_err())
    {
        let mut hit = None;
        for (i, raw) in lines.iter().enumerate().take(end).skip(start) {
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = raw.len() - trimmed.len();
            if parent_indent.is_some_and(|p| indent <= p) && i > start {
                // Left the parent's block (unless we are on a list item line of it).
                if !trimmed.starts_with("- ") || parent_indent.is_some_and(|p| indent < p) {
                    end = i;
                    break;
                }
            }
            let key_part = trimmed.trim_start_matches("- ");
            let key_indent = indent + (trimmed.len() - key_part.len());
            let key = key_part
                .split(':')
                .next()
                .unwrap_or_default()
                .trim()
                .trim_matches('"')
                .trim_matches('\'');
            if key == seg && key_part.contains(':') && parent_indent.is_none_or(|p| key_indent > p)
            {
                hit = Some((i, key_indent));
                break;
            }
        }
        match hit {
            Some((i, ind)) => {
                found = Some(i + 1);
                start = i + 1;
                parent_indent = Some(ind);
            }
            None => break,
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_with_lines() {
        let text = "# head\napiVersion: v1\nkind: A\n---\n\nkind: B\n--- \nkind: C\n";
        let docs = split_documents(text);
        assert_eq!(
            docs.iter().map(|d| d.first_line).collect::<Vec<_>>(),
            vec![2, 6, 8]
        );
    }

    #[test]
    fn locates_nested_fields() {
        let doc = "kind: User\nmetadata:\n  name: a\nspec:\n  username: bob\n  passwordSecretRef:\n    name: s\n    key: \"\"\n";
        assert_eq!(locate_field(doc, "spec.passwordSecretRef.key"), Some(8));
        assert_eq!(locate_field(doc, "metadata.name"), Some(3));
        assert_eq!(locate_field(doc, "spec.missing"), Some(4));
        assert_eq!(locate_field(doc, "spec.username"), Some(5));
    }
}
