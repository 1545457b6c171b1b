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
pub mod duration;
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
        return Err(Diagnostics(
            problems
                .into_iter()
                .map(|p| {
                    let d = Diagnostic::new(file, source, p.pos.line, p.pos.col, p.message);
                    match p.hint {
                        Some(h) => d.with_hint(h),
                        None => d,
                    }
                })
                .collect(),
        )
        .sorted());
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
            e.without_snippet().to_string(),
        )])
    })?;
    let issues = validate::validate(&scenario);
    if !issues.is_empty() {
        return Err(Diagnostics(
            issues
                .iter()
                .map(|i| {
                    let pos = validate::position(&tree, i);
                    Diagnostic::new(file, source, pos.line, pos.col, i.message.clone())
                })
                .collect(),
        )
        .sorted());
    }
    Ok(Loaded {
        file: file.into(),
        source: source.into(),
        scenario,
    })
}
