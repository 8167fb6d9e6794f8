//! YAML (1.2 core schema) into the spanned [`Node`] tree, via yaml-rust2's
//! marked event stream. Duplicate keys, non-string keys, several documents and
//! alias bombs are errors.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::error::{ConfigError, ConfigErrorKind};
use super::tree::{Entry, Kind, MAX_DEPTH, MAX_NODES, Node};

/// Parses YAML text into a tree; `Err` holds syntax-level errors (with lines).
pub(crate) fn parse(text: &str) -> Result<Node, Vec<ConfigError>> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        let line = u32::try_from(e.marker().line()).ok();
        return Err(vec![ConfigError::new(
            ConfigErrorKind::Syntax,
            "",
            line,
            format!("invalid YAML: {}", e.info()),
        )]);
    }
    if !builder.errors.is_empty() {
        return Err(builder.errors);
    }
    match builder.docs.len() {
        0 => Ok(Node::new(Kind::Map(Vec::new()), Some(1))),
        1 => Ok(builder.docs.pop().unwrap_or(Node::new(Kind::Null, None))),
        _ => Err(vec![ConfigError::new(
            ConfigErrorKind::Syntax,
            "",
            builder.docs.get(1).and_then(|d| d.line),
            "a config file holds one YAML document; found several (`---`)",
        )]),
    }
}

enum Frame {
    Seq {
        node: Node,
        anchor: usize,
    },
    Map {
        node: Node,
        anchor: usize,
        key: Option<(String, Option<u32>)>,
    },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    docs: Vec<Node>,
    anchors: HashMap<usize, (Node, usize)>,
    nodes: usize,
    errors: Vec<ConfigError>,
}

fn line_of(mark: Marker) -> Option<u32> {
    u32::try_from(mark.line()).ok()
}

impl Builder {
    fn fail(&mut self, line: Option<u32>, msg: impl Into<String>) {
        if self.errors.is_empty() {
            self.errors
                .push(ConfigError::new(ConfigErrorKind::Syntax, "", line, msg));
        }
    }

    fn count(&mut self, n: usize, line: Option<u32>) {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            self.fail(
                line,
                format!("document too large (over {MAX_NODES} values, counting aliases)"),
            );
        }
    }

    /// Adds a finished value (or, for a mapping awaiting a key, a key).
    fn push(&mut self, node: Node, raw_key: Option<String>) {
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq { node: seq, .. }) => {
                if let Kind::Seq(items) = &mut seq.kind {
                    items.push(node);
                }
            }
            Some(Frame::Map { node: map, key, .. }) => match key.take() {
                Some((k, line)) => {
                    if let Kind::Map(entries) = &mut map.kind {
                        if entries.iter().any(|e| e.key == k) {
                            let msg = format!("duplicate key `{k}`");
                            self.fail(line, msg);
                        } else {
                            entries.push(Entry {
                                key: k,
                                line,
                                value: node,
                            });
                        }
                    }
                }
                None => match raw_key {
                    Some(k) => *key = Some((k, node.line)),
                    None => {
                        let line = node.line;
                        self.fail(line, "mapping keys must be plain strings");
                    }
                },
            },
        }
    }

    fn on_event_inner(&mut self, ev: Event, mark: Marker) {
        let line = line_of(mark);
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, line);
                let plain = style == TScalarStyle::Plain
                    && !tag
                        .as_ref()
                        .is_some_and(|t| t.suffix == "str" || t.suffix.ends_with(":str"));
                let kind = if plain {
                    resolve(&text)
                } else {
                    Kind::Str(text.clone())
                };
                let node = Node::new(kind, line);
                if anchor > 0 {
                    self.anchors.insert(anchor, (node.clone(), 1));
                }
                self.push(node, Some(text));
            }
            Event::Alias(id) => {
                let Some(size) = self.anchors.get(&id).map(|(_, size)| *size) else {
                    self.fail(line, "alias to an unknown anchor");
                    return;
                };
                self.count(size, line);
                if !self.errors.is_empty() {
                    return;
                }
                if let Some((mut node, _)) = self.anchors.get(&id).cloned() {
                    node.line = line;
                    let key = match &node.kind {
                        Kind::Str(s) => Some(s.clone()),
                        _ => None,
                    };
                    self.push(node, key);
                }
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                self.count(1, line);
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(line, format!("nested deeper than {MAX_DEPTH} levels"));
                    return;
                }
                let frame = if matches!(ev, Event::SequenceStart(..)) {
                    Frame::Seq {
                        node: Node::new(Kind::Seq(Vec::new()), line),
                        anchor,
                    }
                } else {
                    Frame::Map {
                        node: Node::new(Kind::Map(Vec::new()), line),
                        anchor,
                        key: None,
                    }
                };
                self.stack.push(frame);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = self.stack.pop() else {
                    return;
                };
                let (node, anchor) = match frame {
                    Frame::Seq { node, anchor } | Frame::Map { node, anchor, .. } => (node, anchor),
                };
                if anchor > 0 {
                    let size = count_nodes(&node);
                    self.anchors.insert(anchor, (node.clone(), size));
                }
                self.push(node, None);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.errors.is_empty() {
            self.on_event_inner(ev, mark);
        }
    }
}

fn count_nodes(node: &Node) -> usize {
    match &node.kind {
        Kind::Seq(items) => items.iter().map(count_nodes).fold(1, usize::saturating_add),
        Kind::Map(entries) => entries
            .iter()
            .map(|e| count_nodes(&e.value))
            .fold(1, usize::saturating_add),
        _ => 1,
    }
}

/// Resolves a plain scalar by the YAML 1.2 core schema.
fn resolve(text: &str) -> Kind {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Kind::Null,
        "true" | "True" | "TRUE" => return Kind::Bool(true),
        "false" | "False" | "FALSE" => return Kind::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Kind::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Kind::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Kind::Float(f64::NAN),
        _ => {}
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<i64>() {
            Ok(i) => Kind::Int(i),
            Err(_) => text
                .parse::<f64>()
                .map_or(Kind::Str(text.to_string()), Kind::Float),
        };
    }
    if let Some(hex) = text.strip_prefix("0x")
        && let Ok(i) = i64::from_str_radix(hex, 16)
    {
        return Kind::Int(i);
    }
    if let Some(oct) = text.strip_prefix("0o")
        && let Ok(i) = i64::from_str_radix(oct, 8)
    {
        return Kind::Int(i);
    }
    if is_float(digits)
        && let Ok(f) = text.parse::<f64>()
    {
        return Kind::Float(f);
    }
    Kind::Str(text.to_string())
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
fn is_float(s: &str) -> bool {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (s.get(..i).unwrap_or(""), s.get(i + 1..)),
        None => (s, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let all_digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = all_digits(int)
        && frac.is_none_or(all_digits)
        && (!int.is_empty() || frac.is_some_and(|f| !f.is_empty()));
    let exp_ok = exp.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    mantissa_ok && exp_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_resolve_by_the_core_schema() {
        assert_eq!(resolve("3"), Kind::Int(3));
        assert_eq!(resolve("-3"), Kind::Int(-3));
        assert_eq!(resolve("0.5"), Kind::Float(0.5));
        assert_eq!(resolve("1e3"), Kind::Float(1000.0));
        assert_eq!(resolve("true"), Kind::Bool(true));
        assert_eq!(resolve("~"), Kind::Null);
        assert_eq!(
            resolve("127.0.0.1:8081"),
            Kind::Str("127.0.0.1:8081".into())
        );
        assert_eq!(resolve("5xx"), Kind::Str("5xx".into()));
        assert_eq!(resolve("1.2.3"), Kind::Str("1.2.3".into()));
    }

    #[test]
    fn lines_keys_and_quoting() {
        let n = parse("a: 1\nb:\n  c: \"2\"\n").unwrap();
        let Kind::Map(entries) = &n.kind else {
            panic!("{n:?}")
        };
        assert_eq!(entries[0].line, Some(1));
        assert_eq!(entries[1].line, Some(2));
        let Kind::Map(inner) = &entries[1].value.kind else {
            panic!()
        };
        assert_eq!(inner[0].line, Some(3));
        assert_eq!(inner[0].value.kind, Kind::Str("2".into()));
    }

    #[test]
    fn duplicate_keys_and_documents_are_errors() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e[0].line, Some(3));
        assert!(e[0].message.contains("duplicate key `a`"));
        let e = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(e[0].message.contains("one YAML document"));
        let e = parse("? [a]\n: 1\n").unwrap_err();
        assert!(e[0].message.contains("keys must be plain strings"));
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let names = ["b", "c", "d", "e", "f", "g", "h"];
        let mut prev = "a";
        for n in names {
            bomb.push_str(&format!("{n}: &{n} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
            prev = n;
        }
        let e = parse(&bomb).unwrap_err();
        assert!(e[0].message.contains("too large"), "{e:?}");
        let deep = "[".repeat(200);
        assert!(parse(&deep).is_err());
    }
}
