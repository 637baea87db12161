//! Privileged btrfs tests on loop devices (being written).

use crate::Case;

pub fn cases() -> Vec<Case> {
    Vec::new()
}
