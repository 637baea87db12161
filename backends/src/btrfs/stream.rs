//! Parser of the btrfs send stream.
