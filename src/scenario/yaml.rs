//! A YAML document as a tree of nodes that remember where they came from.
//!
//! serde stops at the first error and forgets positions once a value is built. To report
//! every problem of a file at once, each at its line and column, validation walks this tree
//! instead: built from the events of `granit-parser`, the parser `serde-saphyr` itself uses,
//! so there is still one YAML stack. Aliases are kept as aliases (never expanded here), so a
//! "billion laughs" document costs its own size.

use granit_parser::{Event, Parser, ScalarStyle};

/// A position in the source, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line.
    pub line: usize,
    /// Column.
    pub col: usize,
}

/// A node of the document.
#[derive(Debug, Clone)]
pub enum Node {
    /// A scalar, with whether it was quoted (quoted scalars are always strings).
    Scalar {
        /// Its text.
        value: String,
        /// Quoted or block: always a string.
        quoted: bool,
        /// Where it starts.
        pos: Pos,
    },
    /// A sequence.
    Seq {
        /// Its items.
        items: Vec<Node>,
        /// Where it starts.
        pos: Pos,
    },
    /// A mapping, in source order; keys with their own positions.
    Map {
        /// Key, key position, value.
        entries: Vec<(String, Pos, Node)>,
        /// Where it starts.
        pos: Pos,
    },
    /// An alias to an anchored node, not expanded.
    Alias {
        /// Where it is.
        pos: Pos,
    },
}

/// One step of a path into the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

impl Node {
    /// Where the node starts.
    pub fn pos(&self) -> Pos {
        match self {
            Node::Scalar { pos, .. }
            | Node::Seq { pos, .. }
            | Node::Map { pos, .. }
            | Node::Alias { pos } => *pos,
        }
    }

    /// The value under `key`, for a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map { entries, .. } => {
                entries.iter().find(|(k, _, _)| k == key).map(|(_, _, v)| v)
            }
            _ => None,
        }
    }

    /// The position of `key` itself (not its value), for a mapping.
    pub fn key_pos(&self, key: &str) -> Option<Pos> {
        match self {
            Node::Map { entries, .. } => entries
                .iter()
                .find(|(k, _, _)| k == key)
                .map(|(_, p, _)| *p),
            _ => None,
        }
    }

    /// Follows a path; returns the deepest node reached, so that a missing leaf still points
    /// at its parent.
    pub fn locate(&self, path: &[Step]) -> Pos {
        let mut cur = self;
        for step in path {
            let next = match (step, cur) {
                (Step::Key(k), Node::Map { .. }) => cur.get(k),
                (Step::Index(i), Node::Seq { items, .. }) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => cur = n,
                None => return cur.pos(),
            }
        }
        cur.pos()
    }
}

/// A YAML syntax error, at its position.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    /// Where.
    pub pos: Pos,
    /// What the parser said.
    pub message: String,
}

/// The deepest nesting accepted; deeper documents are refused rather than risk the stack.
pub const MAX_DEPTH: usize = 64;

/// Parses the first document of `src` into a tree.
pub fn parse(src: &str) -> Result<Node, SyntaxError> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    for ev in Parser::new_from_str(src) {
        let (event, span) = ev.map_err(|e| SyntaxError {
            pos: Pos {
                line: e.marker().line(),
                col: e.marker().col() + 1,
            },
            message: e.info().to_string(),
        })?;
        let pos = Pos {
            line: span.start.line(),
            col: span.start.col() + 1,
        };
        let node = match event {
            Event::Scalar(value, style, _, _) => Some(Node::Scalar {
                value: value.into_owned(),
                quoted: !matches!(style, ScalarStyle::Plain),
                pos,
            }),
            Event::Alias(_) => Some(Node::Alias { pos }),
            Event::SequenceStart(..) => {
                stack.push(Frame::Seq(Vec::new(), pos));
                None
            }
            Event::MappingStart(..) => {
                stack.push(Frame::Map(Vec::new(), None, pos));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(items, p)) => Some(Node::Seq { items, pos: p }),
                _ => None,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(entries, _, p)) => Some(Node::Map { entries, pos: p }),
                _ => None,
            },
            Event::DocumentEnd if root.is_some() => break,
            _ => None,
        };
        if stack.len() > MAX_DEPTH {
            return Err(SyntaxError {
                pos,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        if let Some(n) = node {
            match stack.last_mut() {
                None => root = Some(n),
                Some(Frame::Seq(items, _)) => items.push(n),
                Some(Frame::Map(entries, key, _)) => match key.take() {
                    None => {
                        let k = match &n {
                            Node::Scalar { value, .. } => value.clone(),
                            _ => "<complex key>".into(),
                        };
                        *key = Some((k, n.pos()));
                    }
                    Some((k, kp)) => entries.push((k, kp, n)),
                },
            }
        }
    }
    Ok(root.unwrap_or(Node::Map {
        entries: vec![],
        pos: Pos { line: 1, col: 1 },
    }))
}

enum Frame {
    Seq(Vec<Node>, Pos),
    Map(Vec<(String, Pos, Node)>, Option<(String, Pos)>, Pos),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let src = "a:\n  b: [1, 2]\n  c: 'x'\n";
        let n = parse(src).unwrap();
        let a = n.get("a").unwrap();
        assert_eq!(a.key_pos("c"), Some(Pos { line: 3, col: 3 }));
        assert_eq!(
            n.locate(&[Step::Key("a".into()), Step::Key("b".into()), Step::Index(1)]),
            Pos { line: 2, col: 10 }
        );
        assert!(matches!(
            a.get("c"),
            Some(Node::Scalar { quoted: true, .. })
        ));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.pos.line >= 1, "{e:?}");
    }
}
