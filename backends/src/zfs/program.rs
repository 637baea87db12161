//! The Lua channel programs darlings runs (text generation, pure) and the parser of what the
//! read-only inspection program returns.
//!
//! Arguments are written into the program as Lua string literals rather than passed as an
//! nvlist: names are validated first (see [`valid_dataset`]), and the text is then exactly what
//! runs, which is what the tests check and what `--dry-run` could show.

use crate::BackendError;

/// One component of a ZFS name, by the rule the config validates with (crate::names).
pub fn valid_component(c: &str) -> bool {
    crate::names::zfs_component_ok(c)
}

/// `pool/a/b` with valid components; the pool alone is refused (its root dataset holds every
/// other dataset, so it can never be the root).
pub fn valid_dataset(name: &str) -> Result<(), BackendError> {
    if !crate::names::zfs_dataset_ok(name) {
        return Err(BackendError::Refused(format!(
            "dataset name {name:?} is not valid for darlings; use pool/path/to/root with letters, \
             digits and _-.: only ([root] dataset in the config)"
        )));
    }
    Ok(())
}

/// A Lua string literal for a name already checked by [`valid_dataset`] / [`valid_component`].
fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            c => out.push_str(&format!("\\{}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// Lua helpers every program shares: refusals carry no Lua position (`error(m, 0)`).
const PRELUDE: &str = r#"local function fail(m) error(m, 0) end
local function newer_than(ds, blank)
  local btxg = zfs.get_prop(blank, "createtxg")
  local out = {}
  for s in zfs.list.snapshots(ds) do
    if zfs.get_prop(s, "createtxg") > btxg then out[#out + 1] = s end
  end
  return out
end
"#;

/// Read-only (run without sync): one `key\tvalue` line per fact the preflight and the repair of
/// a half-done keep protocol need. Dataset names contain neither tabs nor newlines.
pub fn inspect(dataset: &str, blank: &str, container: &str, next: &str) -> String {
    format!(
        r#"{PRELUDE}local ds, blank, box, nxt = {ds}, {blank}, {box_}, {nxt}
local o = {{}}
local function put(k, v) o[#o + 1] = k .. "\t" .. tostring(v) end
put("dataset", zfs.exists(ds))
if zfs.exists(ds) then
  local origin = zfs.get_prop(ds, "origin")
  if origin ~= nil then put("origin", origin) end
  put("written", zfs.get_prop(ds, "written"))
  for c in zfs.list.children(ds) do put("child", c) end
  if zfs.exists(blank) then
    put("blank", true)
    for _, s in ipairs(newer_than(ds, blank)) do put("newer", s) end
  end
end
if zfs.exists(box) then
  put("container", true)
  for c in zfs.list.children(box) do put("old", c) end
end
put("next", zfs.exists(nxt))
return table.concat(o, "\n")
"#,
        ds = lit(dataset),
        blank = lit(blank),
        box_ = lit(container),
        nxt = lit(next),
    )
}

/// The atomic rollback: checks the blank, refuses or destroys newer snapshots (checked first, so
/// a destroy that would fail changes nothing), then rolls back — one sync task. Returns
/// `already blank` when nothing had been written since the blank, else one line per action.
pub fn rollback(dataset: &str, blank: &str, destroy_newer: bool) -> String {
    format!(
        r#"{PRELUDE}local ds, blank, destroy = {ds}, {blank}, {destroy_newer}
if not zfs.exists(ds) then fail("dataset " .. ds .. " not found; check [root] dataset in the config") end
if not zfs.exists(blank) then fail("blank snapshot " .. blank .. " not found; create it with darlings init") end
local newer = newer_than(ds, blank)
if #newer > 0 and not destroy then
  fail("snapshots newer than " .. blank .. " exist: " .. table.concat(newer, ", ") .. "; destroy them (zfs destroy) or set destroy-newer-snapshots = true")
end
for _, s in ipairs(newer) do
  local e = zfs.check.destroy(s)
  if e ~= 0 then fail("cannot destroy snapshot " .. s .. " (errno " .. e .. "); it may have clones or holds: remove them") end
end
if #newer == 0 and zfs.get_prop(ds, "written") == 0 then return {already} end
local done = {{}}
for _, s in ipairs(newer) do
  local e = zfs.sync.destroy(s)
  if e ~= 0 then fail("cannot destroy snapshot " .. s .. " (errno " .. e .. ")") end
  done[#done + 1] = "destroyed snapshot " .. s
end
local e = zfs.sync.rollback(ds)
if e ~= 0 then fail("cannot roll back " .. ds .. " (errno " .. e .. "); is it mounted or held?") end
done[#done + 1] = "rolled back " .. ds .. " to " .. blank
return table.concat(done, "\n")
"#,
        ds = lit(dataset),
        blank = lit(blank),
        already = lit(ALREADY_BLANK),
    )
}

/// Destroys the snapshots newer than the blank (all checked before any is destroyed), for the
/// keep-old-roots protocol, which then clones the blank.
pub fn destroy_newer(dataset: &str, blank: &str) -> String {
    format!(
        r#"{PRELUDE}local ds, blank = {ds}, {blank}
local newer = newer_than(ds, blank)
for _, s in ipairs(newer) do
  local e = zfs.check.destroy(s)
  if e ~= 0 then fail("cannot destroy snapshot " .. s .. " (errno " .. e .. "); it may have clones or holds: remove them") end
end
for _, s in ipairs(newer) do
  local e = zfs.sync.destroy(s)
  if e ~= 0 then fail("cannot destroy snapshot " .. s .. " (errno " .. e .. ")") end
end
return tostring(#newer)
"#,
        ds = lit(dataset),
        blank = lit(blank),
    )
}

/// Destroys old roots (each with its snapshots) in one sync task.
pub fn destroy_trees(datasets: &[String]) -> String {
    let list: Vec<String> = datasets.iter().map(|d| lit(d)).collect();
    format!(
        r#"{PRELUDE}local gone = {{{list}}}
for _, ds in ipairs(gone) do
  if zfs.exists(ds) then
    for s in zfs.list.snapshots(ds) do
      local e = zfs.sync.destroy(s)
      if e ~= 0 then fail("cannot destroy snapshot " .. s .. " (errno " .. e .. "); it may have clones or holds: remove them") end
    end
    local e = zfs.sync.destroy(ds)
    if e ~= 0 then fail("cannot destroy old root " .. ds .. " (errno " .. e .. "); it may have clones or be mounted") end
  end
end
return tostring(#gone)
"#,
        list = list.join(", ")
    )
}

/// What the [`rollback`] program did, parsed once from the text it returns: the Lua says
/// `already blank` or lists its actions, and nothing past this type compares strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rolled {
    /// Nothing had been written since the blank and no newer snapshot existed: nothing changed.
    AlreadyBlank,
    /// One line per action taken.
    Done(Vec<String>),
}

/// The sentinel the rollback program returns when it changed nothing.
const ALREADY_BLANK: &str = "already blank";

pub fn parse_rolled(text: &str) -> Rolled {
    if text.trim() == ALREADY_BLANK {
        Rolled::AlreadyBlank
    } else {
        Rolled::Done(
            text.lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
        )
    }
}

/// What [`inspect`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub dataset: bool,
    /// The dataset's origin snapshot when it is a clone.
    pub origin: Option<String>,
    pub written: u64,
    pub children: Vec<String>,
    pub blank: bool,
    pub newer: Vec<String>,
    pub container: bool,
    /// Full names of the container's children.
    pub old: Vec<String>,
    pub next: bool,
}

pub fn parse_state(text: &str) -> Result<State, BackendError> {
    let mut st = State::default();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let bad = || {
            BackendError::Malformed(format!(
                "zfs inspection program returned an unexpected line {line:?}"
            ))
        };
        let (k, v) = line.split_once('\t').ok_or_else(bad)?;
        let flag = || match v {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(bad()),
        };
        match k {
            "dataset" => st.dataset = flag()?,
            "origin" => st.origin = Some(v.to_string()),
            "written" => st.written = v.parse().map_err(|_| bad())?,
            "child" => st.children.push(v.to_string()),
            "blank" => st.blank = flag()?,
            "newer" => st.newer.push(v.to_string()),
            "container" => st.container = flag()?,
            "old" => st.old.push(v.to_string()),
            "next" => st.next = flag()?,
            _ => return Err(bad()),
        }
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_names() {
        let cases = [
            ("rpool/local/root", true),
            ("tank/root", true),
            ("tank/a_b-c.d:e", true),
            ("tank", false),
            ("tank/", false),
            ("tank//root", false),
            ("tank/ro ot", false),
            ("tank/root@blank", false),
            ("tank/\"x", false),
            ("tank/..", false),
            ("", false),
        ];
        for (name, ok) in cases {
            assert_eq!(valid_dataset(name).is_ok(), ok, "{name}");
        }
    }

    #[test]
    fn literals_are_quoted() {
        let cases = [
            ("tank/root", "\"tank/root\""),
            ("a\"b", "\"a\\\"b\""),
            ("a\\b", "\"a\\\\b\""),
            ("a\nb", "\"a\\10b\""),
        ];
        for (input, want) in cases {
            assert_eq!(lit(input), want);
        }
    }

    #[test]
    fn rollback_program_text() {
        let p = rollback("tank/root", "tank/root@blank", false);
        assert!(p.contains("local ds, blank, destroy = \"tank/root\", \"tank/root@blank\", false"));
        assert!(p.contains("zfs.sync.rollback(ds)"));
        // Every destroy is checked before the first one runs.
        let check = p.find("zfs.check.destroy").unwrap();
        let sync = p.find("zfs.sync.destroy").unwrap();
        assert!(check < sync);
        assert!(rollback("t/r", "t/r@b", true).contains("= \"t/r\", \"t/r@b\", true"));
        // Balanced blocks: as many `end`s as openers (a cheap syntax check without Lua).
        for prog in [
            p.clone(),
            inspect("t/r", "t/r@b", "t/r-old", "t/r-old/next"),
            destroy_newer("t/r", "t/r@b"),
            destroy_trees(&["t/r-old/a".into(), "t/r-old/b".into()]),
        ] {
            let words: Vec<&str> = prog
                .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .collect();
            let opens = words
                .iter()
                .filter(|w| matches!(**w, "function" | "if" | "for"))
                .count();
            let ends = words.iter().filter(|w| **w == "end").count();
            assert_eq!(opens, ends, "{prog}");
        }
    }

    #[test]
    fn rollback_results_are_typed() {
        assert!(rollback("t/r", "t/r@b", false).contains("then return \"already blank\" end"));
        assert_eq!(parse_rolled("already blank"), Rolled::AlreadyBlank);
        assert_eq!(
            parse_rolled("destroyed snapshot t/r@s1\nrolled back t/r to t/r@b"),
            Rolled::Done(vec![
                "destroyed snapshot t/r@s1".into(),
                "rolled back t/r to t/r@b".into()
            ])
        );
        assert_eq!(parse_rolled(""), Rolled::Done(vec![]));
    }

    #[test]
    fn destroy_trees_lists_names() {
        let p = destroy_trees(&["t/r-old/a".into(), "t/r-old/b".into()]);
        assert!(p.contains("local gone = {\"t/r-old/a\", \"t/r-old/b\"}"));
    }

    #[test]
    fn state_lines() {
        let text = "dataset\ttrue\norigin\tt/r-old/x@blank\nwritten\t0\nchild\tt/r/var\n\
                    blank\ttrue\nnewer\tt/r@s1\ncontainer\ttrue\nold\tt/r-old/x\nnext\tfalse";
        let st = parse_state(text).unwrap();
        assert_eq!(
            st,
            State {
                dataset: true,
                origin: Some("t/r-old/x@blank".into()),
                written: 0,
                children: vec!["t/r/var".into()],
                blank: true,
                newer: vec!["t/r@s1".into()],
                container: true,
                old: vec!["t/r-old/x".into()],
                next: false,
            }
        );
        for bad in ["dataset\tmaybe", "nokey", "written\tx", "what\t1"] {
            assert!(parse_state(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_state("").unwrap(), State::default());
    }
}
