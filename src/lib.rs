//! wallflower-nvr: a small network video recorder. See ARCHITECTURE.md for the map.

pub mod auth;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod error;
pub mod http;
pub mod index;
pub mod media;
pub mod recorder;
pub mod retention;
pub mod time;
