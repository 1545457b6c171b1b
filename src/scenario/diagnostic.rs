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

/// The widest source excerpt shown under a diagnostic, in characters. A hostile file can
/// have a single line of megabytes; the excerpt is cut around the column instead.
pub const EXCERPT_CHARS: usize = 120;

/// Whether a character could rewrite what a terminal shows (escape sequences, carriage
/// returns, bidirectional overrides): such characters are printed escaped.
fn unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\t') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// The longest message shown, in characters: messages quote scenario values, and a hostile
/// value can be megabytes long.
pub const MESSAGE_CHARS: usize = 400;

/// `s` cut to [`MESSAGE_CHARS`] characters, marked with `…` when cut.
fn bounded(s: &str) -> std::borrow::Cow<'_, str> {
    match s.char_indices().nth(MESSAGE_CHARS) {
        None => s.into(),
        Some((i, _)) => format!("{}…", &s[..i]).into(),
    }
}

/// `s` with every [`unsafe_char`] escaped (`\u{1b}`), so scenario text echoed in a message
/// cannot drive the terminal.
pub fn printable(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(unsafe_char) {
        return s.into();
    }
    s.chars()
        .map(|c| {
            if unsafe_char(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            printable(&self.file),
            self.line,
            self.col,
            printable(&bounded(&self.message))
        )?;
        if let Some(src) = &self.source_line {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            let chars: Vec<char> = src.chars().collect();
            let col = (self.col - 1).min(chars.len());
            let (from, to) = if chars.len() <= EXCERPT_CHARS {
                (0, chars.len())
            } else {
                let from = col.saturating_sub(EXCERPT_CHARS / 2);
                (from, (from + EXCERPT_CHARS).min(chars.len()))
            };
            let mut shown = String::new();
            let mut caret_pad = String::new();
            if from > 0 {
                shown.push('…');
                caret_pad.push(' ');
            }
            for (i, c) in chars[from..to].iter().enumerate() {
                // Unsafe characters are shown as one replacement character, so the caret
                // stays aligned.
                let c = if unsafe_char(*c) { '\u{fffd}' } else { *c };
                shown.push(c);
                if from + i < col {
                    caret_pad.push(if c == '\t' { '\t' } else { ' ' });
                }
            }
            if to < chars.len() {
                shown.push('…');
            }
            write!(f, "\n{pad} |\n{num} | {shown}\n{pad} | {caret_pad}^")?;
        }
        if let Some(h) = &self.hint {
            write!(
                f,
                "\n{} = help: {}",
                " ".repeat(self.line.to_string().len()),
                printable(&bounded(h))
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
    fn long_lines_are_cut_around_the_column_and_control_characters_escaped() {
        let src = format!("{}BAD{}\n", "x".repeat(5000), "y".repeat(5000));
        let d = Diagnostic::new("s.yaml", &src, 1, 5001, "bad \u{1b}[2J value");
        let text = d.to_string();
        assert!(text.len() < 1000, "{} bytes", text.len());
        assert!(text.contains("bad \\u{1b}[2J value"), "{text}");
        assert!(!text.contains('\u{1b}'));
        let lines: Vec<&str> = text.lines().collect();
        let at = lines[2].chars().position(|c| c == 'B').unwrap();
        assert_eq!(
            lines[3].chars().position(|c| c == '^').unwrap(),
            at,
            "{text}"
        );
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
