//! Appending a persisted path to a store's entries in the TOML config, as `adopt --write-config`
//! does, keeping the file's comments and layout (toml_edit's document API); and the Nix line to
//! write instead when the config is the NixOS module's rendered file.

use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value};

use super::Kind;
use crate::paths::AbsPath;

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("config {file} is not TOML that can be edited: {why}")]
    Parse { file: String, why: String },
    #[error("config {file} has no [[persist]] table with store = \"{store}\"; add one, or name a store it has with --store")]
    NoStore { file: String, store: String },
    #[error("config {file}: {key} of store \"{store}\" is neither an array nor an array of tables; make it an array and adopt again")]
    Shape {
        file: String,
        store: String,
        key: String,
    },
}

fn key(kind: Kind) -> &'static str {
    match kind {
        Kind::Dir => "directories",
        Kind::File => "files",
    }
}

/// Pushes `path` onto `a` formatted like the entries before it: on its own line with their
/// indentation in a multi-line array (a comment after the last entry stays with that entry),
/// after a space in a one-line array.
fn push_like_last(a: &mut Array, path: &str) {
    let mut v = Value::from(path);
    let last_prefix = a
        .iter()
        .last()
        .and_then(|l| l.decor().prefix())
        .and_then(|p| p.as_str())
        .map(str::to_string);
    let trailing = a.trailing().as_str().unwrap_or("").to_string();
    match last_prefix {
        Some(p) if p.contains('\n') => {
            let indent = p.rsplit('\n').next().unwrap_or("").to_string();
            // What followed the last entry (its comment, then the newline before `]`) now
            // follows it still, and the new entry comes on the next line.
            let before = if trailing.contains('\n') {
                trailing.clone()
            } else {
                "\n".to_string()
            };
            v.decor_mut().set_prefix(format!("{before}{indent}"));
            a.set_trailing(if trailing.contains('\n') { "\n" } else { "" });
        }
        Some(_) => v.decor_mut().set_prefix(" "),
        None => {}
    }
    a.push_formatted(v);
}

fn add_to_table(t: &mut Table, kind: Kind, path: &str) -> Result<(), ()> {
    match t.get_mut(key(kind)) {
        None => {
            t.insert(key(kind), toml_edit::value(Array::from_iter([path])));
            Ok(())
        }
        Some(Item::Value(Value::Array(a))) => {
            push_like_last(a, path);
            Ok(())
        }
        Some(Item::ArrayOfTables(aot)) => {
            let mut e = Table::new();
            e.insert("path", toml_edit::value(path));
            aot.push(e);
            Ok(())
        }
        Some(_) => Err(()),
    }
}

fn add_to_inline(t: &mut InlineTable, kind: Kind, path: &str) -> Result<(), ()> {
    match t.get_mut(key(kind)) {
        None => {
            t.insert(key(kind), Value::Array(Array::from_iter([path])));
            Ok(())
        }
        Some(Value::Array(a)) => {
            push_like_last(a, path);
            Ok(())
        }
        Some(_) => Err(()),
    }
}

/// `text` with `path` appended to the `directories` (or `files`) of the `[[persist]]` table
/// whose store is `store`; everything else is left as it was.
pub fn add_entry(
    text: &str,
    file: &str,
    store: &AbsPath,
    kind: Kind,
    path: &AbsPath,
) -> Result<String, EditError> {
    let mut doc: DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| EditError::Parse {
                file: file.to_string(),
                why: e.message().to_string(),
            })?;
    let want = store.to_string();
    let p = path.to_string();
    let shape = || EditError::Shape {
        file: file.to_string(),
        store: want.clone(),
        key: key(kind).to_string(),
    };
    let found = match doc.get_mut("persist") {
        Some(Item::ArrayOfTables(aot)) => {
            match aot
                .iter_mut()
                .find(|t| t.get("store").and_then(|s| s.as_str()) == Some(want.as_str()))
            {
                Some(t) => Some(add_to_table(t, kind, &p).map_err(|()| shape())?),
                None => None,
            }
        }
        Some(Item::Value(Value::Array(a))) => {
            match a.iter_mut().find_map(|v| match v {
                Value::InlineTable(t)
                    if t.get("store").and_then(|s| s.as_str()) == Some(want.as_str()) =>
                {
                    Some(t)
                }
                _ => None,
            }) {
                Some(t) => Some(add_to_inline(t, kind, &p).map_err(|()| shape())?),
                None => None,
            }
        }
        _ => None,
    };
    if found.is_none() {
        return Err(EditError::NoStore {
            file: file.to_string(),
            store: want,
        });
    }
    Ok(doc.to_string())
}

/// The NixOS module's option that persists `path` in `store`, for a config rendered from Nix.
pub fn nix_line(store: &AbsPath, kind: Kind, path: &AbsPath) -> String {
    format!(
        "darlings.persistence.\"{store}\".{} = [ \"{path}\" ];",
        key(kind)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# my config
[root]
backend = "tmpfs"   # tmpfs root

[[persist]]
store = "/persist"  # the disk
directories = [
  "/var/log",
  { path = "/srv", mode = "0750" },  # served files
]

[[persist]]
store = "/cache"
files = ["/etc/a"]
"#;

    fn p(s: &str) -> AbsPath {
        AbsPath::parse(s).unwrap()
    }

    #[test]
    fn appends_to_a_multi_line_array_keeping_comments() {
        let out = add_entry(TEXT, "f", &p("/persist"), Kind::Dir, &p("/var/lib/foo")).unwrap();
        assert_eq!(
            out,
            TEXT.replace(
                "  # served files\n]",
                "  # served files\n  \"/var/lib/foo\",\n]"
            )
        );
        crate::config::parse(&out, "f").unwrap();
    }

    #[test]
    fn appends_to_a_one_line_array_and_makes_a_missing_one() {
        let out = add_entry(TEXT, "f", &p("/cache"), Kind::File, &p("/etc/b")).unwrap();
        assert!(out.contains("files = [\"/etc/a\", \"/etc/b\"]"), "{out}");
        let out = add_entry(TEXT, "f", &p("/cache"), Kind::Dir, &p("/var/cache")).unwrap();
        assert!(out.contains("directories = [\"/var/cache\"]"), "{out}");
        assert!(out.starts_with("# my config\n"), "{out}");
        let cfg = crate::config::parse(&out, "f").unwrap();
        assert_eq!(cfg.stores[1].entries.len(), 2);
    }

    #[test]
    fn an_unknown_store_is_refused() {
        let e = add_entry(TEXT, "f", &p("/nope"), Kind::Dir, &p("/x")).unwrap_err();
        assert!(e.to_string().contains("store = \"/nope\""), "{e}");
    }

    #[test]
    fn nix_line_names_the_option() {
        assert_eq!(
            nix_line(&p("/persist"), Kind::Dir, &p("/var/lib/foo")),
            "darlings.persistence.\"/persist\".directories = [ \"/var/lib/foo\" ];"
        );
    }
}
