//! Finds the line of a check or a field in the YAML text, for error messages.
//!
//! The `config` crate merges the file with environment overrides and loses positions on the way,
//! so problems found after parsing are placed by scanning the text. The scan knows the block layout
//! that checklists use (`checks:` at the top level, one `- id:` item per check, nested maps) and
//! gives up rather than guess when the layout is unusual: the line is then left out.

/// Line numbers (1-based) of the items of the top-level `checks` list.
pub struct LineIndex<'a> {
    lines: Vec<&'a str>,
    item_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Indexes a YAML document.
    pub fn new(text: &'a str) -> Self {
        let lines: Vec<&str> = text.lines().collect();
        let mut item_starts = Vec::new();
        let mut in_checks = false;
        let mut item_indent: Option<usize> = None;
        for (number, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if indent == 0 && !trimmed.starts_with('-') {
                in_checks = trimmed.starts_with("checks:");
                item_indent = None;
                continue;
            }
            if !in_checks || !trimmed.starts_with("- ") && trimmed != "-" {
                continue;
            }
            match item_indent {
                None => {
                    item_indent = Some(indent);
                    item_starts.push(number);
                }
                Some(expected) if expected == indent => item_starts.push(number),
                Some(_) => {}
            }
        }
        LineIndex { lines, item_starts }
    }

    /// The line where the check at `index` starts.
    pub fn check_line(&self, index: usize) -> Option<usize> {
        self.item_starts.get(index).map(|line| line + 1)
    }

    /// The line of a dotted field path (`http.url`) inside the check at `index`. When part of the
    /// path is not written on a line of its own (a default, or a key inside a `{ ... }` map), the
    /// line of the deepest key that is, or the check's own line.
    pub fn field_line(&self, index: usize, field: &str) -> Option<usize> {
        let start = *self.item_starts.get(index)?;
        let end = self
            .item_starts
            .get(index + 1)
            .copied()
            .unwrap_or_else(|| self.end_of_checks(start));
        let mut from = start;
        for component in field.split('.') {
            let key = component.split('[').next().unwrap_or(component);
            match (from..end).find(|&n| is_key_line(self.lines[n], key)) {
                Some(found) => from = found,
                None => break,
            }
        }
        Some(from + 1)
    }

    /// The line of a top-level key inside the `global` block.
    pub fn global_line(&self, field: &str) -> Option<usize> {
        self.block_line("global", field)
    }

    /// The line of a dotted field path (`auth.token`) inside the top-level block `block`
    /// (`vault`). When part of the path is not written in the file, the line of the deepest key
    /// that is, or the block's own line.
    pub fn block_line(&self, block: &str, field: &str) -> Option<usize> {
        let header = format!("{block}:");
        let start = self.lines.iter().position(|l| l.starts_with(&header))?;
        let end = (start + 1..self.lines.len())
            .find(|&n| {
                let line = self.lines[n];
                !line.is_empty() && !line.starts_with(' ') && !line.starts_with('#')
            })
            .unwrap_or(self.lines.len());
        let mut found = start;
        for component in field.split('.').filter(|component| !component.is_empty()) {
            let key = component.split('[').next().unwrap_or(component);
            match (found + 1..end).find(|&n| is_key_line(self.lines[n], key)) {
                Some(line) => found = line,
                None => break,
            }
        }
        Some(found + 1)
    }

    /// The line of a top-level key.
    pub fn top_line(&self, key: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|line| !line.starts_with([' ', '-', '#']) && is_key_line(line, key))
            .map(|n| n + 1)
    }

    fn end_of_checks(&self, start: usize) -> usize {
        (start + 1..self.lines.len())
            .find(|&n| {
                let line = self.lines[n];
                !line.is_empty()
                    && !line.starts_with(' ')
                    && !line.starts_with('#')
                    && !line.starts_with('-')
            })
            .unwrap_or(self.lines.len())
    }
}

fn is_key_line(line: &str, key: &str) -> bool {
    let trimmed = line.trim_start().trim_start_matches("- ").trim_start();
    let unquoted = trimmed.trim_start_matches(['"', '\'']);
    unquoted
        .strip_prefix(key)
        .map(|rest| rest.trim_start_matches(['"', '\'']).starts_with(':'))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
global:
  interval: 30s
checks:
  - id: one
    title: One
    http:
      url: http://a
  # a comment
  - id: two
    http:
      url: bad
      headers:
        X-A: b
";

    #[test]
    fn finds_check_starts() {
        let index = LineIndex::new(TEXT);
        assert_eq!(index.check_line(0), Some(4));
        assert_eq!(index.check_line(1), Some(9));
        assert_eq!(index.check_line(2), None);
    }

    #[test]
    fn finds_nested_field() {
        let index = LineIndex::new(TEXT);
        assert_eq!(index.field_line(1, "http.url"), Some(11));
        assert_eq!(index.field_line(0, "http.url"), Some(7));
        assert_eq!(index.field_line(1, "http.headers.X-A"), Some(13));
    }

    #[test]
    fn missing_field_falls_back_to_check() {
        let index = LineIndex::new(TEXT);
        assert_eq!(index.field_line(0, "timeout"), Some(4));
    }

    #[test]
    fn finds_global_field() {
        let index = LineIndex::new(TEXT);
        assert_eq!(index.global_line("interval"), Some(2));
    }

    #[test]
    fn finds_nested_block_field() {
        let text = "vault:\n  address: x\n  auth:\n    token: y\nchecks: []\n";
        let index = LineIndex::new(text);
        assert_eq!(index.block_line("vault", "auth.token"), Some(4));
        assert_eq!(index.block_line("vault", "auth.role_id"), Some(3));
        assert_eq!(index.block_line("vault", ""), Some(1));
        assert_eq!(index.block_line("kubernetes", "context"), None);
    }
}
