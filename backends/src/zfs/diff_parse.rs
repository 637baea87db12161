//! Parser of `zfs diff -H -F` output.
