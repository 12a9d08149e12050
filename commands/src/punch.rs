//! `punch` (packet): the server tells a client that another is about to
//! open a session with it, with the meeting it arranged and the other's
//! candidates (see `lookup`). The client checks those addresses at once,
//! so that both NATs open toward each other (hole punching), and answers
//! the other's checks. Taken only from the server: a peer cannot make this
//! client send checks anywhere.

use serde::{Deserialize, Serialize};
use udpchat_core::context::{Client, Sender};
use udpchat_core::error::CommandError;
use udpchat_core::names::check_user_name;
use udpchat_core::packet::{Packet, Push};
use udpchat_core::register;
use udpchat_core::registry::{Command, OnPush};
use udpchat_core::secure::meeting::Ticket;

/// `punch`: the push and its handler.
pub struct Punch;

impl Packet for Punch {
    const TAG: &'static str = "punch";
}

impl Push for Punch {
    const SERVER_ONLY: bool = true;
    type Body = PunchBody;
}

/// The push body.
#[derive(Debug, Serialize, Deserialize)]
pub struct PunchBody {
    /// Who is coming.
    pub from: String,
    pub meeting: Ticket,
    /// Where the server sees that client, then its own addresses.
    pub candidates: Vec<String>,
}

register! {
    Command::new(Punch::TAG, "Another client is about to open a session with this one.")
        .on_push::<Punch>()
}

impl OnPush for Punch {
    async fn on_push(client: Client, _: Sender, body: PunchBody) -> Result<(), CommandError> {
        check_user_name(&body.from)?;
        client
            .peers()
            .meet(body.meeting, crate::lookup::addresses(&body.candidates));
        Ok(())
    }
}
