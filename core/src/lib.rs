//! udpchat's sans-IO core: everything both ends agree on, with no sockets,
//! no async runtime and no clock reads.
//!
//! - [`cbor`]: the one CBOR codec every body and the envelope go through.
//! - [`envelope`]: the CBOR envelope tagged by command.
//! - [`packet`]: typed packets: each names its wire tag and what it carries.
//! - [`registry`]: the command and event descriptors and the
//!   inventory-built registry.
//! - [`event`]: how events look in the shell and what they change.
//! - [`context`]: what a command handler may do on the server or the client.
//! - [`presence`]: who is signed in, and where.
//! - [`transport`]: the reliable message endpoint over datagrams.
#![forbid(unsafe_code)]

pub mod args;
pub mod cbor;
pub mod context;
pub mod crypto;
pub mod envelope;
pub mod error;
pub mod event;
pub mod group;
pub mod group_keys;
pub mod history;
pub mod limits;
pub mod mailbox;
pub mod names;
pub mod output;
pub mod packet;
pub mod passwords;
pub mod presence;
pub mod private_files;
pub mod registry;
pub mod secure;
pub mod seed_flags;
pub mod transport;
pub mod trims;
pub mod wire;

/// The port a server listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 4590;
/// The address a server binds, and a client talks to, unless told otherwise.
pub const DEFAULT_SERVER: &str = "127.0.0.1:4590";

/// Wall-clock milliseconds since the Unix epoch (0 before it): the times
/// messages carry and the handshakes' timestamps.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub use inventory;
