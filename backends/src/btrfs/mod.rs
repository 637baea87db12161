//! The Btrfs backend (in progress): the send-stream parser that feeds `darlings diff`.
pub mod resolve;
pub mod stream;
