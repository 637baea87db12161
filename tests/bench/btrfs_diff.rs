//! Btrfs benchmark (being written).
fn main() {}
