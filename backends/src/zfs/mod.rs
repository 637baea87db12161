//! The ZFS backend (in progress): the `zfs diff -H -F` parser.
pub mod diff_parse;
