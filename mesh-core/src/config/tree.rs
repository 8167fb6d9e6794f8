//! The spanned value tree every format is read into before decoding.
//!
//! YAML, TOML and JSON each become the same small tree of [`Node`]s, each
//! carrying the line it starts on. The decoder then walks one tree, whatever
//! the format, so every rule and every message is written once.

use std::fmt;

/// Deepest nesting accepted (the schema needs about ten levels).
pub(crate) const MAX_DEPTH: usize = 64;

/// Most nodes accepted in one document (guards against alias bombs).
pub(crate) const MAX_NODES: usize = 1_000_000;

/// One value, with the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub line: Option<u32>,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A TOML date or time: never valid in our schema.
    Datetime(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

/// One key of a mapping, with the line of the key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub line: Option<u32>,
    pub value: Node,
}

impl Node {
    pub fn new(kind: Kind, line: Option<u32>) -> Self {
        Self { kind, line }
    }

    /// A short name of the type, for messages ("a string", "a list", ...).
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Datetime(_) => "a date/time",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    /// The line of the value at `path` below this node, or of its nearest
    /// ancestor that exists.
    pub fn line_of(&self, path: &[Seg]) -> Option<u32> {
        let mut node = self;
        let mut line = self.line;
        for seg in path {
            let next = match (seg, &node.kind) {
                (Seg::Key(k), Kind::Map(entries)) => {
                    entries.iter().find(|e| &e.key == k).map(|e| {
                        line = e.line.or(e.value.line).or(line);
                        &e.value
                    })
                }
                (Seg::Index(i), Kind::Seq(items)) => items.get(*i).inspect(|n| {
                    line = n.line.or(line);
                }),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        line
    }
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// A field path such as `services.news-service.routes[0].split`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Path(pub Vec<Seg>);

impl Path {
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path with one more key.
    pub fn key(&self, key: &str) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Key(key.to_string()));
        Self(v)
    }

    /// This path with one more index.
    pub fn index(&self, i: usize) -> Self {
        let mut v = self.0.clone();
        v.push(Seg::Index(i));
        Self(v)
    }

    /// Whether `other` is `self` or inside it.
    pub fn contains(&self, other: &Path) -> bool {
        other.0.get(..self.0.len()) == Some(self.0.as_slice())
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// The 1-based line of byte `offset` in `text`.
pub(crate) fn line_at(text: &str, offset: usize) -> u32 {
    let end = offset.min(text.len());
    let head = text.as_bytes().get(..end).unwrap_or_default();
    let n = head.iter().filter(|b| **b == b'\n').count() + 1;
    u32::try_from(n).unwrap_or(u32::MAX)
}
