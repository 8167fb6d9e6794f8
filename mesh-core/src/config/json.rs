//! JSON into the spanned [`Node`] tree. serde_json checks the syntax (its
//! errors carry line and column); a small position-tracking walk over the
//! then known-good text builds the tree with lines and finds duplicate keys.

use super::error::{ConfigError, ConfigErrorKind};
use super::tree::{Entry, Kind, MAX_DEPTH, Node};

/// Parses JSON text into a tree; `Err` holds syntax-level errors (with lines).
pub(crate) fn parse(text: &str) -> Result<Node, Vec<ConfigError>> {
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        let line = u32::try_from(e.line()).ok().filter(|l| *l > 0);
        return Err(vec![syntax(line, format!("invalid JSON: {e}"))]);
    }
    let mut walker = Walker {
        text,
        pos: 0,
        line: 1,
        errors: Vec::new(),
    };
    let node = walker.value(0);
    walker.errors.extend(node.as_ref().err().cloned());
    match node {
        Ok(node) if walker.errors.is_empty() => Ok(node),
        _ => Err(walker.errors),
    }
}

fn syntax(line: Option<u32>, msg: impl Into<String>) -> ConfigError {
    ConfigError::new(ConfigErrorKind::Syntax, "", line, msg)
}

struct Walker<'a> {
    text: &'a str,
    pos: usize,
    line: u32,
    errors: Vec<ConfigError>,
}

impl Walker<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b'\n' => self.line = self.line.saturating_add(1),
                b' ' | b'\t' | b'\r' => {}
                _ => return,
            }
            self.pos += 1;
        }
    }

    fn err(&self, msg: &str) -> ConfigError {
        syntax(Some(self.line), format!("invalid JSON: {msg}"))
    }

    fn expect(&mut self, b: u8) -> Result<(), ConfigError> {
        self.skip_ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected `{}`", char::from(b))))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, ConfigError> {
        self.skip_ws();
        if depth >= MAX_DEPTH {
            return Err(self.err(&format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let line = Some(self.line);
        match self.peek() {
            Some(b'{') => {
                self.pos += 1;
                let mut entries: Vec<Entry> = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(Node::new(Kind::Map(entries), line));
                }
                loop {
                    self.skip_ws();
                    let key_line = Some(self.line);
                    let key = self.string()?;
                    self.expect(b':')?;
                    let value = self.value(depth + 1)?;
                    if entries.iter().any(|e| e.key == key) {
                        self.errors
                            .push(syntax(key_line, format!("duplicate key `{key}`")));
                    } else {
                        entries.push(Entry {
                            key,
                            line: key_line,
                            value,
                        });
                    }
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(Node::new(Kind::Map(entries), line));
                        }
                        _ => return Err(self.err("expected `,` or `}`")),
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(Node::new(Kind::Seq(items), line));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(Node::new(Kind::Seq(items), line));
                        }
                        _ => return Err(self.err("expected `,` or `]`")),
                    }
                }
            }
            Some(b'"') => Ok(Node::new(Kind::Str(self.string()?), line)),
            Some(_) => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
                {
                    self.pos += 1;
                }
                let word = self.text.get(start..self.pos).unwrap_or("");
                let kind = match word {
                    "null" => Kind::Null,
                    "true" => Kind::Bool(true),
                    "false" => Kind::Bool(false),
                    _ => match word.parse::<i64>() {
                        Ok(i) => Kind::Int(i),
                        Err(_) => match word.parse::<f64>() {
                            Ok(f) => Kind::Float(f),
                            Err(_) => return Err(self.err(&format!("unexpected `{word}`"))),
                        },
                    },
                };
                Ok(Node::new(kind, line))
            }
            None => Err(self.err("unexpected end of input")),
        }
    }

    /// A string literal; decoded by serde_json so escapes are exact.
    fn string(&mut self) -> Result<String, ConfigError> {
        self.skip_ws();
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string"));
        }
        let start = self.pos;
        self.pos += 1;
        loop {
            match self.peek() {
                Some(b'\\') => self.pos += 2,
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => self.pos += 1,
                None => return Err(self.err("unterminated string")),
            }
        }
        let literal = self.text.get(start..self.pos).unwrap_or("\"\"");
        serde_json::from_str::<String>(literal).map_err(|e| self.err(&e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_tree_with_lines() {
        let n = parse("{\n  \"a\": 1,\n  \"b\": [\"x\\u00e9\", 2.5, true, null]\n}").unwrap();
        let Kind::Map(entries) = &n.kind else {
            panic!()
        };
        assert_eq!(entries[0].line, Some(2));
        assert_eq!(entries[1].line, Some(3));
        let Kind::Seq(items) = &entries[1].value.kind else {
            panic!()
        };
        assert_eq!(items[0].kind, Kind::Str("xé".into()));
        assert_eq!(items[1].kind, Kind::Float(2.5));
        assert_eq!(items[3].kind, Kind::Null);
    }

    #[test]
    fn syntax_errors_and_duplicates_have_lines() {
        let e = parse("{\n\"a\": 1,\n\"a\": 2\n}").unwrap_err();
        assert_eq!(e[0].line, Some(3));
        assert!(e[0].message.contains("duplicate key `a`"));
        let e = parse("{\n\"a\": 1,\n}").unwrap_err();
        assert_eq!(e[0].line, Some(3));
        assert!(e[0].message.starts_with("invalid JSON"));
    }
}
