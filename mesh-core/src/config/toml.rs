//! TOML into the spanned [`Node`] tree, via toml_edit's span-keeping parser.
//! TOML itself forbids duplicate keys; dates and times are not part of our
//! schema and are refused when decoded.

use toml_edit::{Document, Item, Table, Value};

use super::error::{ConfigError, ConfigErrorKind};
use super::tree::{Entry, Kind, MAX_DEPTH, Node, line_at};

/// Parses TOML text into a tree; `Err` holds syntax-level errors (with lines).
pub(crate) fn parse(text: &str) -> Result<Node, Vec<ConfigError>> {
    let doc = Document::parse(text).map_err(|e| {
        let line = e.span().map(|s| line_at(text, s.start));
        let msg = e.message().trim().to_string();
        vec![ConfigError::new(
            ConfigErrorKind::Syntax,
            "",
            line,
            format!("invalid TOML: {msg}"),
        )]
    })?;
    let conv = Conv { text };
    match doc.as_item() {
        Item::Table(t) => conv.table(t, Some(1), 0),
        _ => Ok(Node::new(Kind::Map(Vec::new()), Some(1))),
    }
    .map_err(|e| vec![e])
}

struct Conv<'a> {
    text: &'a str,
}

impl Conv<'_> {
    fn line(&self, span: Option<std::ops::Range<usize>>) -> Option<u32> {
        span.map(|s| line_at(self.text, s.start))
    }

    fn deep(&self, depth: usize, line: Option<u32>) -> Result<(), ConfigError> {
        if depth >= MAX_DEPTH {
            return Err(ConfigError::new(
                ConfigErrorKind::Syntax,
                "",
                line,
                format!("nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn table(&self, t: &Table, line: Option<u32>, depth: usize) -> Result<Node, ConfigError> {
        self.deep(depth, line)?;
        let mut entries = Vec::new();
        for (key, item) in t.iter() {
            let key_line = t.key(key).and_then(|k| self.line(k.span()));
            let value = self.item(item, key_line, depth + 1)?;
            entries.push(Entry {
                key: key.to_string(),
                line: key_line,
                value,
            });
        }
        Ok(Node::new(Kind::Map(entries), line))
    }

    fn item(&self, item: &Item, key_line: Option<u32>, depth: usize) -> Result<Node, ConfigError> {
        match item {
            Item::None => Ok(Node::new(Kind::Null, key_line)),
            Item::Value(v) => self.value(v, key_line, depth),
            Item::Table(t) => {
                let line = self.line(t.span()).or(key_line);
                self.table(t, line, depth)
            }
            Item::ArrayOfTables(a) => {
                self.deep(depth, key_line)?;
                let mut items = Vec::new();
                for t in a.iter() {
                    let line = self.line(t.span()).or(key_line);
                    items.push(self.table(t, line, depth + 1)?);
                }
                Ok(Node::new(
                    Kind::Seq(items),
                    self.line(a.span()).or(key_line),
                ))
            }
        }
    }

    fn value(&self, v: &Value, key_line: Option<u32>, depth: usize) -> Result<Node, ConfigError> {
        self.deep(depth, key_line)?;
        let line = self.line(v.span()).or(key_line);
        let kind = match v {
            Value::String(s) => Kind::Str(s.value().clone()),
            Value::Integer(i) => Kind::Int(*i.value()),
            Value::Float(f) => Kind::Float(*f.value()),
            Value::Boolean(b) => Kind::Bool(*b.value()),
            // Not in the schema: the decoder refuses it with its path.
            Value::Datetime(d) => Kind::Datetime(d.value().to_string()),
            Value::Array(a) => {
                let mut items = Vec::new();
                for v in a.iter() {
                    items.push(self.value(v, line, depth + 1)?);
                }
                Kind::Seq(items)
            }
            Value::InlineTable(t) => {
                let mut entries = Vec::new();
                for (key, v) in t.iter() {
                    let key_line = t.key(key).and_then(|k| self.line(k.span())).or(line);
                    entries.push(Entry {
                        key: key.to_string(),
                        line: key_line,
                        value: self.value(v, key_line, depth + 1)?,
                    });
                }
                Kind::Map(entries)
            }
        };
        Ok(Node::new(kind, line))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_arrays_with_lines() {
        let n = parse("a = 1\n[svc.x]\nb = \"s\"\n[[svc.x.r]]\nc = [1, 2]\n").unwrap();
        assert_eq!(n.line_of(&[]), Some(1));
        use super::super::tree::Seg::{Index, Key};
        let p = [Key("svc".into()), Key("x".into()), Key("b".into())];
        assert_eq!(n.line_of(&p), Some(3));
        let p = [
            Key("svc".into()),
            Key("x".into()),
            Key("r".into()),
            Index(0),
            Key("c".into()),
        ];
        assert_eq!(n.line_of(&p), Some(5));
    }

    #[test]
    fn duplicate_keys_are_syntax_errors() {
        let e = parse("a = 1\nb = 2\na = 3\n").unwrap_err();
        assert_eq!(e[0].kind, ConfigErrorKind::Syntax);
        assert_eq!(e[0].line, Some(3), "{e:?}");
    }
}
