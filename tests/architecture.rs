//! The dependency direction of the source tree (issue #18): scenario → engine → targets →
//! ledger, never back, and no import cycle between the modules of one folder either. A
//! cycle makes two concepts one in all but name: neither can be read, tested or changed
//! without the other.
//!
//! Read from the `use` paths and inline paths of `src/` (`crate::x::…` and, inside a
//! folder, `super::x`), outside comments and before a file's `#[cfg(test)]` module (tests
//! may reach anywhere). Hand-written over a crate such as `cargo-modules` because that
//! tool builds rust-analyzer (minutes of compile time in CI) to answer what a few regular
//! expressions over our own layout answer exactly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One edge: `from` names `to` at `file:line`.
type Edges = BTreeMap<String, BTreeMap<String, String>>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The code lines of a file: comments cut, and nothing from the first `#[cfg(test)]` on.
fn code_lines(p: &Path) -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(p).unwrap();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or_default();
        out.push((i + 1, code.to_string()));
    }
    out
}

/// The module names that follow `prefix` in `line` (`crate::engine::` → `runner`, …).
/// A `super::` prefix counts only as a whole path start: not as the tail of a longer one
/// (`super::super::x` is found by asking for that longer prefix), and not followed by
/// another `super`.
fn names_after(line: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = line[from..].find(prefix).map(|i| i + from) {
        from = i + prefix.len();
        let before = line[..i].chars().last();
        if prefix.starts_with("super")
            && before.is_some_and(|c| c == ':' || c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let name: String = line[from..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() && name != "super" {
            out.push(name);
        }
    }
    out
}

/// The children of a folder as module names (files and sub-folders, not `mod.rs`).
fn children(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let name = p.file_name()?.to_str()?.to_string();
            if p.is_dir() {
                Some(name)
            } else {
                let stem = name.strip_suffix(".rs")?;
                (stem != "mod" && stem != "lib" && stem != "main").then(|| stem.to_string())
            }
        })
        .collect()
}

/// The edges between the children of `dir` (`src/` itself, or one of its folders).
fn edges_in(dir: &Path) -> Edges {
    let kids = children(dir);
    let root = src();
    // `crate::engine::` for src/engine; `crate::` for src.
    let crate_prefix = match dir.strip_prefix(&root).unwrap().to_str().unwrap() {
        "" => "crate::".to_string(),
        rel => format!("crate::{}::", rel.replace('/', "::")),
    };
    let mut edges = Edges::new();
    for f in rust_files(dir) {
        let rel = f.strip_prefix(dir).unwrap();
        let parts: Vec<&str> = rel.iter().map(|c| c.to_str().unwrap()).collect();
        if parts == ["mod.rs"] || parts == ["lib.rs"] || parts == ["main.rs"] {
            continue; // the folder's root may name its children, and they it
        }
        let from = parts[0].trim_end_matches(".rs").to_string();
        // From a file `depth` folders below `dir`, `super::` repeated depth+1 times names
        // `dir`'s children... except from `a/mod.rs`, one level less.
        let depth = parts.len() - 1 - usize::from(parts.last() == Some(&"mod.rs"));
        let super_prefix = "super::".repeat(depth + 1);
        for (n, line) in code_lines(&f) {
            let mut named = names_after(&line, &crate_prefix);
            if dir != root {
                named.extend(names_after(&line, &super_prefix));
            }
            for to in named {
                if to != from && kids.contains(&to) {
                    edges
                        .entry(from.clone())
                        .or_default()
                        .entry(to)
                        .or_insert_with(|| {
                            format!("{}:{n}", f.strip_prefix(&root).unwrap().display())
                        });
                }
            }
        }
    }
    edges
}

/// One cycle of `edges`, as the path that closes it, if there is any.
fn find_cycle(edges: &Edges) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        edges: &Edges,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for to in edges.get(n).into_iter().flat_map(|m| m.keys()) {
            if let Some(c) = visit(to, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        if let Some(c) = visit(n, edges, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

fn explain(cycle: &[String], edges: &Edges) -> String {
    cycle
        .windows(2)
        .map(|w| format!("  {} -> {} ({})", w[0], w[1], edges[&w[0]][&w[1]]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let edges = edges_in(&src());
    // The check sees the layout: the flow's edges are there.
    for (from, to) in [
        ("engine", "targets"),
        ("targets", "ledger"),
        ("scenario", "duration"),
    ] {
        assert!(
            edges.get(from).is_some_and(|m| m.contains_key(to)),
            "{from} -> {to} not seen: {edges:#?}"
        );
    }
    if let Some(c) = find_cycle(&edges) {
        panic!(
            "import cycle between top-level modules:\n{}\nmove the shared concept below both",
            explain(&c, &edges)
        );
    }
}

#[test]
fn no_import_cycle_inside_a_folder() {
    let mut dirs = vec![];
    let mut todo = vec![src()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                todo.push(e.path());
                dirs.push(e.path());
            }
        }
    }
    assert!(dirs.len() >= 8, "{dirs:?}");
    let mut cycles = Vec::new();
    for d in &dirs {
        let edges = edges_in(d);
        if let Some(c) = find_cycle(&edges) {
            cycles.push(format!(
                "in {}:\n{}",
                d.strip_prefix(src()).unwrap().display(),
                explain(&c, &edges)
            ));
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

/// The check finds a cycle when there is one (so that a pass means something).
#[test]
fn the_cycle_check_sees_a_cycle() {
    fn add(edges: &mut Edges, a: &str, b: &str) {
        edges
            .entry(a.into())
            .or_default()
            .insert(b.into(), "x.rs:1".into());
    }
    let mut edges = Edges::new();
    add(&mut edges, "scenario", "targets");
    add(&mut edges, "targets", "ledger");
    assert!(find_cycle(&edges).is_none());
    add(&mut edges, "ledger", "scenario");
    let c = find_cycle(&edges).unwrap();
    assert_eq!(c.first(), c.last());
    assert_eq!(c.len(), 4, "{c:?}");
    assert_eq!(
        names_after(
            "use crate::engine::runner::{self}; x = super::super::plan::Y",
            "crate::engine::"
        ),
        vec!["runner"]
    );
    assert_eq!(
        names_after("a super::super::plan b", "super::"),
        Vec::<String>::new()
    );
    assert_eq!(
        names_after("a super::super::plan b", "super::super::"),
        vec!["plan"]
    );
}
