//! A read-only, span-carrying view of a parsed TOML document, the same whatever layout wrote it.
//!
//! serde's `Spanned` cannot wrap tables that have no header of their own (dotted keys, implicit
//! tables: toml-rs/toml#798), which is exactly what TOML writers such as nixpkgs'
//! `pkgs.formats.toml` emit. So the config is read from toml_edit's document instead: tables,
//! inline tables and arrays of tables all look alike here, and every node carries the best span
//! it has (its own, else the key that named it, else its parent's), so every problem still has a
//! line and a column.

use std::ops::Range;

use toml_edit::{ImDocument, Item, TableLike, Value};

/// A value with the byte span it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sp<T> {
    pub v: T,
    pub span: Range<usize>,
}

/// A parse error of the document itself, with its span when toml_edit knows it.
pub struct SyntaxError {
    pub span: Option<Range<usize>>,
    pub message: String,
}

pub fn parse(text: &str) -> Result<ImDocument<&str>, SyntaxError> {
    ImDocument::parse(text).map_err(|e| SyntaxError {
        span: e.span(),
        message: e.message().trim_end().to_string(),
    })
}

/// The document's top level as a table.
pub fn top<'a>(doc: &'a ImDocument<&str>) -> Table<'a> {
    Table {
        t: doc.as_table(),
        span: 0..0,
        name: String::new(),
        array_element: false,
    }
}

/// A table, however it was written: `[a]`, an element of `[[a]]`, `a.b = ...`, `a = { ... }`, or
/// a table that exists only because a deeper header names it.
pub struct Table<'a> {
    t: &'a dyn TableLike,
    /// The table's own span, else the span of the key that introduced it.
    pub span: Range<usize>,
    /// `root`, `persist.users.alice`: how messages name the table.
    pub name: String,
    /// An element of an array (`[[persist]]`, or an inline table in a list).
    array_element: bool,
}

/// One element of the tree below a key.
pub enum Node<'a> {
    Table(Table<'a>),
    Array(Vec<Node<'a>>, Range<usize>),
    Scalar(Sp<Scalar>),
}

/// A scalar as darlings reads it; anything else keeps only its type name for messages.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
    Other(&'static str),
}

impl Scalar {
    pub fn type_str(&self) -> &'static str {
        match self {
            Scalar::Str(_) => "string",
            Scalar::Int(_) => "integer",
            Scalar::Bool(_) => "boolean",
            Scalar::Other(t) => t,
        }
    }
}

impl Node<'_> {
    pub fn type_str(&self) -> &'static str {
        match self {
            Node::Table(_) => "table",
            Node::Array(..) => "array",
            Node::Scalar(s) => s.v.type_str(),
        }
    }

    pub fn span(&self) -> Range<usize> {
        match self {
            Node::Table(t) => t.span.clone(),
            Node::Array(_, span) => span.clone(),
            Node::Scalar(s) => s.span.clone(),
        }
    }
}

impl<'a> Table<'a> {
    /// How messages name this table: `[root]`, `[[persist]]`, `[persist.users.alice]`.
    pub fn shown(&self) -> String {
        if self.name.is_empty() {
            "the top level".to_string()
        } else if self.array_element {
            format!("[[{}]]", self.name)
        } else {
            format!("[{}]", self.name)
        }
    }

    /// The keys in document order, each with the span of the key itself.
    pub fn keys(&self) -> Vec<(String, Range<usize>)> {
        self.t
            .iter()
            .filter(|(_, item)| !item.is_none())
            .map(|(k, _)| {
                let span = self
                    .t
                    .key(k)
                    .and_then(|key| key.span())
                    .unwrap_or_else(|| self.span.clone());
                (k.to_string(), span)
            })
            .collect()
    }

    pub fn get(&self, key: &str) -> Option<Node<'a>> {
        let (k, item) = self.t.get_key_value(key)?;
        let key_span = k.span().unwrap_or_else(|| self.span.clone());
        let name = if self.name.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.name)
        };
        node(item, key_span, name)
    }
}

fn node<'a>(item: &'a Item, key_span: Range<usize>, name: String) -> Option<Node<'a>> {
    match item {
        Item::None => None,
        Item::Table(t) => Some(Node::Table(Table {
            span: t.span().unwrap_or_else(|| key_span.clone()),
            t,
            name,
            array_element: false,
        })),
        Item::ArrayOfTables(a) => {
            let span = a.span().unwrap_or_else(|| key_span.clone());
            let items = a
                .iter()
                .map(|t| {
                    Node::Table(Table {
                        span: t.span().unwrap_or_else(|| span.clone()),
                        t,
                        name: name.clone(),
                        array_element: true,
                    })
                })
                .collect();
            Some(Node::Array(items, span))
        }
        Item::Value(v) => Some(value(v, key_span, name)),
    }
}

fn value<'a>(v: &'a Value, fallback: Range<usize>, name: String) -> Node<'a> {
    let span = v.span().unwrap_or(fallback);
    match v {
        Value::String(s) => Node::Scalar(Sp {
            v: Scalar::Str(s.value().clone()),
            span,
        }),
        Value::Integer(i) => Node::Scalar(Sp {
            v: Scalar::Int(*i.value()),
            span,
        }),
        Value::Boolean(b) => Node::Scalar(Sp {
            v: Scalar::Bool(*b.value()),
            span,
        }),
        Value::Float(_) => Node::Scalar(Sp {
            v: Scalar::Other("float"),
            span,
        }),
        Value::Datetime(_) => Node::Scalar(Sp {
            v: Scalar::Other("datetime"),
            span,
        }),
        Value::Array(a) => {
            let items = a
                .iter()
                .map(|e| match value(e, span.clone(), name.clone()) {
                    Node::Table(mut t) => {
                        t.array_element = true;
                        Node::Table(t)
                    }
                    other => other,
                })
                .collect();
            Node::Array(items, span)
        }
        Value::InlineTable(t) => Node::Table(Table {
            t,
            span,
            name,
            array_element: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str, path: &[&str]) -> Vec<String> {
        let doc = parse(text).ok().unwrap();
        let mut t = top(&doc);
        for p in path {
            t = match t.get(p) {
                Some(Node::Table(t)) => t,
                Some(Node::Array(mut items, _)) => match items.remove(0) {
                    Node::Table(t) => t,
                    _ => panic!("not a table"),
                },
                _ => panic!("no {p}"),
            };
        }
        t.keys().into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn every_layout_is_the_same_tree() {
        let layouts = [
            "[persist.users.alice]\nhome = \"/h\"\n",
            "persist.users.alice.home = \"/h\"\n",
            "persist = { users = { alice = { home = \"/h\" } } }\n",
            "[persist]\nusers.alice.home = \"/h\"\n",
            "[[persist]]\n[persist.users.alice]\nhome = \"/h\"\n",
            "[[persist]]\nusers.alice = { home = \"/h\" }\n",
            "persist = [{ users.alice.home = \"/h\" }]\n",
        ];
        for l in layouts {
            assert_eq!(names(l, &["persist", "users", "alice"]), ["home"], "{l}");
        }
    }

    #[test]
    fn implicit_tables_take_the_span_of_their_key() {
        let text = "[[persist.users.alice.directories]]\npath = \"x\"\n";
        let doc = parse(text).ok().unwrap();
        let Some(Node::Table(p)) = top(&doc).get("persist") else {
            panic!()
        };
        assert_eq!(&text[p.span.clone()], "persist");
    }
}
