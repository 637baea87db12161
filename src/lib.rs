//! darlings as a library: config, planner, apply, diff reports and logging. The binary in
//! `main.rs` is a thin CLI over these; tests drive them directly.

pub mod adopt;
pub mod apply;
pub mod backends;
pub mod boot;
pub mod cmdline;
pub mod config;
pub mod error;
pub mod failpoint;
pub mod fleet;
pub mod glob;
pub mod hold;
pub mod journal;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod oldroots;
pub mod orphans;
pub mod owners;
pub mod paths;
pub mod plan;
pub mod presets;
pub mod report;
pub mod restore;
pub mod seed;
pub mod show;
pub mod stores;
pub mod suggest;
