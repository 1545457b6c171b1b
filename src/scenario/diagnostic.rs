//! Scenario errors that read like a compiler's: `FILE:LINE:COL: message`, the offending line
//! with a caret under the spot, and a hint. Collected, sorted and printed all at once.

use std::fmt;

/// One problem found in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file, as given on the command line.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong and what was expected.
    pub message: String,
    /// An extra hint ("did you mean `duration`?").
    pub hint: Option<String>,
    /// The source line, for the caret display.
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at a location of `source`.
    pub fn new(
        file: &str,
        source: &str,
        line: usize,
        col: usize,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.into(),
            line: line.max(1),
            col: col.max(1),
            message: message.into(),
            hint: None,
            source_line: source
                .lines()
                .nth(line.saturating_sub(1))
                .map(str::to_string),
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )?;
        if let Some(src) = &self.source_line {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            let caret_pad: String = src
                .chars()
                .take(self.col - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n{pad} |\n{num} | {src}\n{pad} | {caret_pad}^")?;
        }
        if let Some(h) = &self.hint {
            write!(
                f,
                "\n{} = help: {h}",
                " ".repeat(self.line.to_string().len())
            )?;
        }
        Ok(())
    }
}

/// The nearest of `candidates` to `word`, if near enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// All the problems of one or more files.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sorts by file and position, dropping exact duplicates.
    pub fn sorted(mut self) -> Self {
        self.0.sort_by(|a, b| {
            (&a.file, a.line, a.col, &a.message).cmp(&(&b.file, b.line, b.col, &b.message))
        });
        self.0.dedup();
        self
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "error: {d}")?;
        }
        write!(
            f,
            "{} error{} found",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_location_caret_and_hint() {
        let src = "a: 1\n  durtion: 5s\n";
        let d = Diagnostic::new("s.yaml", src, 2, 3, "unknown field `durtion`")
            .with_hint("did you mean `duration`?");
        let text = d.to_string();
        assert!(
            text.starts_with("s.yaml:2:3: unknown field `durtion`"),
            "{text}"
        );
        assert!(text.contains("2 |   durtion: 5s\n  |   ^"), "{text}");
        assert!(text.contains("help: did you mean `duration`?"), "{text}");
    }

    #[test]
    fn suggests_near_misses_only() {
        assert_eq!(
            did_you_mean("durtion", ["duration", "at", "every"]),
            Some("duration")
        );
        assert_eq!(did_you_mean("zzz", ["duration", "at"]), None);
    }
}
