//! wallflower-nvr: a small network video recorder. See ARCHITECTURE.md for the map.

pub mod body;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod disk;
pub mod error;
pub mod http;
pub mod indexer;
pub mod live;
pub mod logging;
pub mod media;
pub mod range;
pub mod recorder;
pub mod retention;
pub mod store;
pub mod time;
pub mod ui;
pub mod watchdog;
