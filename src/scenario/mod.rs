//! Scenarios: the YAML a person writes, read into a checked [`model::Scenario`].
//!
//! Reading goes in three passes, so that a file with several mistakes gets all of them
//! reported at once, each at its line and column ([`diagnostic`]):
//! 1. [`yaml`] builds a position-aware tree (syntax errors stop here);
//! 2. [`structure`] checks the tree against the JSON Schema of the model (unknown keys,
//!    types, enums, durations, missing fields);
//! 3. `serde-saphyr` builds the typed model, and [`validate`] checks meaning (overlaps,
//!    targets, ranges, faults that outlast their phase).
//!
//! Nothing here touches a target.

pub mod diagnostic;
/// The scenario's duration type lives beneath every module that reads durations.
pub use crate::duration;
pub mod model;
pub mod structure;
pub mod validate;
pub mod yaml;

use std::path::Path;

use diagnostic::{Diagnostic, Diagnostics};
use model::Scenario;

/// Larger scenario files are refused before parsing: no real gameday comes near it, and it
/// bounds the memory a hostile file can take.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;

/// The most diagnostics reported for one file; the rest are counted in a last line. A
/// generated or hostile file can have a problem per line, and each diagnostic costs a scan
/// of the source for its excerpt.
pub const MAX_DIAGNOSTICS: usize = 100;

/// Keeps the first [`MAX_DIAGNOSTICS`] problems (by position) and says how many were left out.
fn capped<T>(mut items: Vec<T>, key: impl Fn(&T) -> (usize, usize)) -> (Vec<T>, usize) {
    if items.len() <= MAX_DIAGNOSTICS {
        return (items, 0);
    }
    items.sort_by_key(&key);
    let more = items.len() - MAX_DIAGNOSTICS;
    items.truncate(MAX_DIAGNOSTICS);
    (items, more)
}

fn with_more(file: &str, mut d: Vec<Diagnostic>, more: usize) -> Diagnostics {
    d.sort_by_key(|a| (a.line, a.col));
    if more > 0 {
        let last = d.last().map(|x| x.line).unwrap_or(1);
        d.push(Diagnostic::new(
            file,
            "",
            last,
            1,
            format!("... and {more} more problems not shown; fix these first"),
        ));
    }
    Diagnostics(d)
}

/// serde-saphyr's messages, in our words where they name its API or internals.
fn plain(message: String) -> String {
    if message.contains("budget breached") {
        return format!(
            "the scenario is too large or too repetitive to read (YAML limits: {message}); scenarios are far smaller"
        );
    }
    if let Some(i) = message.find(", set DuplicateKeyPolicy") {
        return format!("{}; each key may appear once", &message[..i]);
    }
    message
}

/// A scenario read and checked, with its source kept for messages.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The file as named by the user.
    pub file: String,
    /// The source text.
    pub source: String,
    /// The checked scenario.
    pub scenario: Scenario,
}

/// The scenario's JSON Schema (what `gameday schema` prints).
pub fn json_schema() -> serde_json::Value {
    let mut settings = schemars::gen::SchemaSettings::draft07();
    settings.option_add_null_type = false;
    let schema = settings.into_generator().into_root_schema_for::<Scenario>();
    serde_json::to_value(schema).expect("schema serializes")
}

/// Reads and checks a scenario file.
pub fn load(path: &Path) -> Result<Loaded, Diagnostics> {
    let file = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| one(&file, &format!("cannot read: {e}")))?;
    if meta.len() as usize > MAX_FILE_BYTES {
        return Err(one(
            &file,
            &format!(
                "file is {} bytes; scenarios are limited to {MAX_FILE_BYTES} bytes",
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| one(&file, &format!("cannot read: {e}")))?;
    let source =
        String::from_utf8(bytes).map_err(|e| one(&file, &format!("not UTF-8 text: {e}")))?;
    load_str(&file, &source)
}

fn one(file: &str, message: &str) -> Diagnostics {
    Diagnostics(vec![Diagnostic::new(file, "", 1, 1, message)])
}

/// Reads and checks a scenario from text; `file` names it in messages.
pub fn load_str(file: &str, source: &str) -> Result<Loaded, Diagnostics> {
    if source.len() > MAX_FILE_BYTES {
        return Err(one(
            file,
            &format!(
                "scenario is {} bytes; the limit is {MAX_FILE_BYTES}",
                source.len()
            ),
        ));
    }
    let tree = yaml::parse(source).map_err(|e| {
        Diagnostics(vec![Diagnostic::new(
            file,
            source,
            e.pos.line,
            e.pos.col,
            format!("invalid YAML: {}", e.message),
        )])
    })?;
    let problems = structure::check(&tree, &json_schema());
    if !problems.is_empty() {
        let (problems, more) = capped(problems, |p| (p.pos.line, p.pos.col));
        let d = problems
            .into_iter()
            .map(|p| {
                let d = Diagnostic::new(file, source, p.pos.line, p.pos.col, p.message);
                match p.hint {
                    Some(h) => d.with_hint(h),
                    None => d,
                }
            })
            .collect();
        return Err(with_more(file, Diagnostics(d).sorted().0, more));
    }
    let scenario: Scenario = serde_saphyr::from_str(source).map_err(|e| {
        let (line, col) = e
            .location()
            .map(|l| (l.line() as usize, l.column() as usize))
            .unwrap_or((1, 1));
        Diagnostics(vec![Diagnostic::new(
            file,
            source,
            line,
            col,
            plain(e.without_snippet().to_string()),
        )])
    })?;
    let issues = validate::validate(&scenario);
    if !issues.is_empty() {
        let located: Vec<(yaml::Pos, &validate::Issue)> = issues
            .iter()
            .map(|i| (validate::position(&tree, i), i))
            .collect();
        let (located, more) = capped(located, |(p, _)| (p.line, p.col));
        let d = located
            .into_iter()
            .map(|(pos, i)| Diagnostic::new(file, source, pos.line, pos.col, i.message.clone()))
            .collect();
        return Err(with_more(file, Diagnostics(d).sorted().0, more));
    }
    Ok(Loaded {
        file: file.into(),
        source: source.into(),
        scenario,
    })
}
