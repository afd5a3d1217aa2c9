//! qstore-volume: a Docker volume plugin (the legacy protocol, over a unix socket) whose
//! volumes are size-limited tmpfs (tier memory) or loop-mounted ext4 images (tier disk), and
//! whose files can be committed to a qstore repository and cloned from it.
//!
//! Modules: [`protocol`] (request and response bodies), [`table`] (the persisted volume table
//! and option parsing), [`provision`] (file systems), [`driver`] (what each call does),
//! [`server`] (the HTTP routes).

pub mod client;
pub mod driver;
pub mod protocol;
pub mod provision;
pub mod server;
pub mod table;

pub use driver::Driver;
