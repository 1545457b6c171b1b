//! The structural check: the YAML tree against the scenario's JSON Schema, reporting every
//! unknown key (with a "did you mean"), wrong type, missing field and bad enum value at once.
//!
//! The schema is the one `gameday schema` prints, generated from the model by `schemars`, so
//! the model, the editor completion and this check cannot drift apart. Only the parts of JSON
//! Schema that schemars emits for our model are interpreted.

use serde_json::Value;

use super::diagnostic::did_you_mean;
use super::yaml::{Node, Pos};
use crate::duration::parse_duration;

/// A structural problem: where, what, and maybe a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where.
    pub pos: Pos,
    /// What is wrong and what was expected.
    pub message: String,
    /// A suggestion.
    pub hint: Option<String>,
}

/// Checks `node` against the root `schema` (with its `definitions`).
pub fn check(node: &Node, schema: &Value) -> Vec<Problem> {
    let mut out = Vec::new();
    let defs = schema.get("definitions").cloned().unwrap_or(Value::Null);
    Checker { defs: &defs }.walk(node, schema, "", &mut out);
    out
}

struct Checker<'a> {
    defs: &'a Value,
}

fn kind_of(node: &Node) -> &'static str {
    match node {
        Node::Map { .. } => "object",
        Node::Seq { .. } => "array",
        Node::Alias { .. } => "alias",
        Node::Scalar { quoted: true, .. } => "string",
        Node::Scalar { value, .. } => scalar_kind(value),
    }
}

fn scalar_kind(v: &str) -> &'static str {
    match v {
        "" | "~" | "null" | "Null" | "NULL" => "null",
        "true" | "True" | "TRUE" | "false" | "False" | "FALSE" => "boolean",
        _ if v.parse::<i64>().is_ok() || v.parse::<u64>().is_ok() => "integer",
        // All digits but beyond 64 bits: still an integer, so the range check says "too
        // large" rather than "found a number".
        _ if !v.trim_start_matches(['-', '+']).is_empty()
            && v.trim_start_matches(['-', '+'])
                .chars()
                .all(|c| c.is_ascii_digit()) =>
        {
            "integer"
        }
        _ if v.parse::<f64>().is_ok() && v.chars().any(|c| c.is_ascii_digit()) => "number",
        _ => "string",
    }
}

fn type_matches(found: &str, expected: &str) -> bool {
    found == expected
        || (expected == "number" && found == "integer")
        // serde-saphyr reads a plain scalar into a string field, as YAML users expect
        // (`name: 2024`), so any plain scalar is acceptable where a string is.
        || (expected == "string" && matches!(found, "integer" | "number" | "boolean"))
}

fn describe(t: &str) -> &str {
    match t {
        "object" => "a mapping",
        "array" => "a list",
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "true or false",
        "null" => "nothing",
        other => other,
    }
}

impl Checker<'_> {
    fn resolve<'s>(&'s self, mut schema: &'s Value) -> &'s Value {
        for _ in 0..16 {
            if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
                let name = r.trim_start_matches("#/definitions/");
                match self.defs.get(name) {
                    Some(s) => schema = s,
                    None => return schema,
                }
            } else if let Some([only]) = schema
                .get("allOf")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
            {
                schema = only;
            } else {
                return schema;
            }
        }
        schema
    }

    fn is_duration(&self, schema: &Value) -> bool {
        schema.get("$ref").and_then(Value::as_str) == Some("#/definitions/Duration")
            || schema
                .get("allOf")
                .and_then(Value::as_array)
                .is_some_and(|a| a.len() == 1 && self.is_duration(&a[0]))
    }

    fn walk(&self, node: &Node, schema: &Value, path: &str, out: &mut Vec<Problem>) {
        if matches!(node, Node::Alias { .. }) {
            return;
        }
        if self.is_duration(schema) {
            if let Node::Scalar { value, .. } = node {
                if let Err(e) = parse_duration(value) {
                    out.push(Problem {
                        pos: node.pos(),
                        message: format!("{}: {e}", here(path)),
                        hint: None,
                    });
                }
                return;
            }
        }
        let schema = self.resolve(schema);
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = schema.get(key).and_then(Value::as_array) {
                if kind_of(node) == "null"
                    && branches
                        .iter()
                        .any(|b| self.resolve(b).get("type") == Some(&Value::from("null")))
                {
                    return;
                }
                // Enums whose variants carry docs come out as one branch per value: treat them
                // as one enum, so the message lists every accepted value.
                let enums: Option<Vec<Value>> = branches
                    .iter()
                    .map(|b| {
                        self.resolve(b)
                            .get("enum")
                            .and_then(Value::as_array)
                            .cloned()
                    })
                    .collect::<Option<Vec<_>>>()
                    .map(|v| v.into_iter().flatten().collect());
                if let Some(values) = enums {
                    let merged = serde_json::json!({ "enum": values });
                    self.walk(node, &merged, path, out);
                    return;
                }
                let mut best: Option<Vec<Problem>> = None;
                for b in branches {
                    if self.resolve(b).get("type") == Some(&Value::from("null")) {
                        continue;
                    }
                    let mut errs = Vec::new();
                    self.walk(node, b, path, &mut errs);
                    if errs.is_empty() {
                        return;
                    }
                    if best.as_ref().is_none_or(|e| errs.len() < e.len()) {
                        best = Some(errs);
                    }
                }
                out.extend(best.unwrap_or_default());
                return;
            }
        }
        let found = kind_of(node);
        let types: Vec<&str> = match schema.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.is_empty() && !types.iter().any(|t| type_matches(found, t)) {
            let expected: Vec<&str> = types
                .iter()
                .filter(|t| **t != "null")
                .map(|t| describe(t))
                .collect();
            out.push(Problem {
                pos: node.pos(),
                message: format!(
                    "{}: expected {}, found {}",
                    here(path),
                    expected.join(" or "),
                    describe(found)
                ),
                hint: None,
            });
            return;
        }
        if let (Some(allowed), Node::Scalar { value, .. }) =
            (schema.get("enum").and_then(Value::as_array), node)
        {
            let names: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
            if !names.contains(&value.as_str()) {
                out.push(Problem {
                    pos: node.pos(),
                    message: format!(
                        "{}: unknown value `{}`, expected one of: {}",
                        here(path),
                        short(value),
                        names.join(", ")
                    ),
                    hint: did_you_mean(value, names.iter().copied())
                        .map(|s| format!("did you mean `{s}`?")),
                });
            }
            return;
        }
        if let Node::Scalar { value, .. } = node {
            if let Ok(n) = value.parse::<f64>() {
                if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                    if n < min {
                        out.push(Problem {
                            pos: node.pos(),
                            message: format!(
                                "{}: {} is below the minimum {min}",
                                here(path),
                                short(value)
                            ),
                            hint: None,
                        });
                    }
                }
                if let Some(fmt) = schema.get("format").and_then(Value::as_str) {
                    let max = match fmt {
                        "uint8" => Some(u8::MAX as f64),
                        "uint16" => Some(u16::MAX as f64),
                        "uint32" => Some(u32::MAX as f64),
                        "uint64" | "uint" => Some(u64::MAX as f64),
                        _ => None,
                    };
                    if max.is_some_and(|m| n > m) {
                        out.push(Problem {
                            pos: node.pos(),
                            message: format!("{}: {} is too large", here(path), short(value)),
                            hint: None,
                        });
                    }
                }
            }
        }
        match node {
            Node::Map { entries, pos } => {
                let props = schema.get("properties").and_then(Value::as_object);
                let extra = schema.get("additionalProperties");
                for (k, kpos, v) in entries {
                    let sub = format!(
                        "{}{k}",
                        if path.is_empty() {
                            String::new()
                        } else {
                            format!("{path}.")
                        }
                    );
                    match props.and_then(|p| p.get(k)) {
                        Some(s) => self.walk(v, s, &sub, out),
                        None => match extra {
                            Some(Value::Bool(false)) => {
                                let names: Vec<&str> = props
                                    .map(|p| p.keys().map(String::as_str).collect())
                                    .unwrap_or_default();
                                out.push(Problem {
                                    pos: *kpos,
                                    message: format!(
                                        "unknown field `{}` in {}, expected one of: {}",
                                        short(k),
                                        if path.is_empty() {
                                            "the scenario".to_string()
                                        } else {
                                            format!("`{path}`")
                                        },
                                        names.join(", ")
                                    ),
                                    hint: did_you_mean(k, names.iter().copied())
                                        .map(|s| format!("did you mean `{s}`?")),
                                });
                            }
                            Some(s @ Value::Object(_)) => self.walk(v, s, &sub, out),
                            _ => {}
                        },
                    }
                }
                if let Some(req) = schema.get("required").and_then(Value::as_array) {
                    for r in req.iter().filter_map(Value::as_str) {
                        if !entries.iter().any(|(k, _, _)| k == r) {
                            out.push(Problem {
                                pos: *pos,
                                message: format!(
                                    "missing field `{r}` in {}",
                                    if path.is_empty() {
                                        "the scenario".to_string()
                                    } else {
                                        format!("`{path}`")
                                    }
                                ),
                                hint: None,
                            });
                        }
                    }
                }
            }
            Node::Seq { items, .. } => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, it) in items.iter().enumerate() {
                        self.walk(it, item_schema, &format!("{path}[{i}]"), out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// A scalar or key as quoted in a message: cut at 40 characters, since a hostile value can
/// be megabytes long and would push the rest of the message out of sight.
fn short(v: &str) -> String {
    match v.char_indices().nth(40) {
        None => v.to_string(),
        Some((i, _)) => format!("{}…", &v[..i]),
    }
}

fn here(path: &str) -> String {
    if path.is_empty() {
        "the scenario".into()
    } else {
        format!("`{path}`")
    }
}
