//! What the driver's tests push: a numbered note.

use serde::{Deserialize, Serialize};
use udpchat_core::packet::{Packet, Push};

/// A push the tests count.
pub struct Note;

#[derive(Serialize, Deserialize)]
pub struct Number(pub usize);

impl Packet for Note {
    const TAG: &'static str = "note";
}

impl Push for Note {
    const SERVER_ONLY: bool = false;
    type Body = Number;
}
