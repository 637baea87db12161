//! journald's native protocol, written directly (a datagram of `KEY=value` fields to its socket)
//! so that the boot outcome and the lost-state summary reach the journal as structured fields
//! with a fixed MESSAGE_ID, which `initrd/darlings.catalog` explains. No library is linked: the
//! darlings binary needs nothing beyond glibc.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// The socket journald listens on in a running system (and in a systemd initrd).
pub const SOCKET: &str = "/run/systemd/journal/socket";

/// A darlings boot ended: its outcome, backend and policy (`DARLINGS_OUTCOME=`...).
pub const MESSAGE_BOOT: &str = "a3adeb16bf174666b662d841471af360";
/// A lost-state diff was made and saved: what it found (`DARLINGS_LOST_ENTRIES=`...).
pub const MESSAGE_LOST: &str = "20096239d628459a82e60913c0cef6a2";

/// One journal entry's fields, in order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Entry {
    pub fields: Vec<(&'static str, String)>,
}

impl Entry {
    pub fn new(message_id: &str, priority: u8, message: String) -> Entry {
        let mut e = Entry::default();
        e.add("MESSAGE_ID", message_id);
        e.add("PRIORITY", priority);
        e.add("SYSLOG_IDENTIFIER", "darlings");
        e.add("MESSAGE", message);
        e
    }

    pub fn add(&mut self, key: &'static str, value: impl ToString) {
        debug_assert!(valid_key(key), "{key}");
        self.fields.push((key, value.to_string()));
    }

    /// The datagram: `KEY=value\n` per field, or, for a value holding a newline, `KEY\n`, its
    /// length as a little-endian u64, the bytes and `\n` (journald's binary-safe form).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (k, v) in &self.fields {
            out.extend_from_slice(k.as_bytes());
            if v.contains('\n') {
                out.push(b'\n');
                out.extend_from_slice(&(v.len() as u64).to_le_bytes());
            } else {
                out.push(b'=');
            }
            out.extend_from_slice(v.as_bytes());
            out.push(b'\n');
        }
        out
    }
}

/// journald's rule for field names: uppercase letters, digits and `_`, not starting with `_`
/// (those are trusted fields journald sets itself) nor a digit, at most 64 bytes.
fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && !k.starts_with('_')
        && !k.starts_with(|c: char| c.is_ascii_digit())
        && k.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Sends the entries to the journal at `socket`. A missing socket (no journald: a busybox
/// initrd, a container) is said once at debug level; a failed send is a warning. Never an error:
/// logging must not be what fails a boot, and the boot record holds the same facts.
pub fn send(socket: &Path, entries: &[Entry]) {
    if entries.is_empty() {
        return;
    }
    if std::fs::symlink_metadata(socket).is_err() {
        tracing::debug!(
            "journal: no journald socket at {}; the outcome is in the boot record (`darlings status`) and the log",
            socket.display()
        );
        return;
    }
    let sock = match UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("journal: cannot make a datagram socket: {e}; nothing sent to journald");
            return;
        }
    };
    for e in entries {
        if let Err(err) = sock.send_to(&e.encode(), socket) {
            tracing::warn!(
                "journal: cannot send to journald at {}: {err}; the boot record holds the same facts",
                socket.display()
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a native-protocol datagram back into fields, as journald does.
    pub(crate) fn decode(mut b: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let nl = b.iter().position(|&c| c == b'\n').unwrap();
            let line = &b[..nl];
            if let Some(eq) = line.iter().position(|&c| c == b'=') {
                out.push((
                    String::from_utf8(line[..eq].to_vec()).unwrap(),
                    line[eq + 1..].to_vec(),
                ));
                b = &b[nl + 1..];
            } else {
                let key = String::from_utf8(line.to_vec()).unwrap();
                let rest = &b[nl + 1..];
                let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
                out.push((key, rest[8..8 + len].to_vec()));
                assert_eq!(rest[8 + len], b'\n');
                b = &rest[9 + len..];
            }
        }
        out
    }

    #[test]
    fn datagrams_reach_a_socket_with_their_fields_binary_safe() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("socket");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut e = Entry::new(MESSAGE_BOOT, 3, "darlings boot: failed".into());
        e.add("DARLINGS_OUTCOME", "failed");
        e.add(
            "DARLINGS_ERROR",
            "early preflight failed\n  caused by: blank missing",
        );
        send(&path, &[e]);
        let mut buf = vec![0; 65536];
        let n = server.recv(&mut buf).unwrap();
        let fields = decode(&buf[..n]);
        let get = |k: &str| {
            fields
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        assert_eq!(get("MESSAGE_ID").as_deref(), Some(MESSAGE_BOOT));
        assert_eq!(get("PRIORITY").as_deref(), Some("3"));
        assert_eq!(get("SYSLOG_IDENTIFIER").as_deref(), Some("darlings"));
        assert_eq!(get("DARLINGS_OUTCOME").as_deref(), Some("failed"));
        assert_eq!(
            get("DARLINGS_ERROR").as_deref(),
            Some("early preflight failed\n  caused by: blank missing")
        );
        // The multi-line value went in the length-prefixed form.
        assert!(buf[..n].windows(15).any(|w| w == b"DARLINGS_ERROR\n"));
    }

    #[test]
    fn a_missing_socket_is_no_error() {
        let d = tempfile::tempdir().unwrap();
        send(
            &d.path().join("absent"),
            &[Entry::new(MESSAGE_LOST, 6, "x".into())],
        );
    }

    #[test]
    fn message_ids_are_128_bit_hex_and_keys_valid() {
        for id in [MESSAGE_BOOT, MESSAGE_LOST] {
            assert_eq!(id.len(), 32, "{id}");
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
        assert_ne!(MESSAGE_BOOT, MESSAGE_LOST);
        for (k, ok) in [
            ("DARLINGS_OUTCOME", true),
            ("MESSAGE_ID", true),
            ("_PID", false),
            ("darlings", false),
            ("1X", false),
        ] {
            assert_eq!(valid_key(k), ok, "{k}");
        }
    }

    /// The catalog shipped in initrd/ explains both ids, in the format journalctl reads:
    /// `-- <id>` headers, then header fields up to a blank line, then text.
    #[test]
    fn the_catalog_explains_every_message_id() {
        let text = include_str!("../initrd/darlings.catalog");
        let mut ids = Vec::new();
        let mut sections = text.split("\n-- ").skip(1).peekable();
        assert!(sections.peek().is_some(), "no `-- <id>` header");
        for sec in sections {
            let (id, body) = sec.split_once('\n').unwrap();
            assert_eq!(id.len(), 32, "header {id:?}");
            let (head, body) = body
                .split_once("\n\n")
                .expect("a blank line after the headers");
            for key in ["Subject: ", "Defined-By: darlings", "Documentation: "] {
                assert!(
                    head.lines().any(|l| l.starts_with(key)),
                    "{id}: no {key:?} in\n{head}"
                );
            }
            assert!(!body.trim().is_empty(), "{id}: no text");
            ids.push(id.to_string());
        }
        ids.sort();
        let mut want = vec![MESSAGE_BOOT.to_string(), MESSAGE_LOST.to_string()];
        want.sort();
        assert_eq!(ids, want);
    }
}
