//! `going-down` (packet): the server tells every signed-in client it is
//! shutting down.

use udpchat_core::context::{Client, Sender};
use udpchat_core::error::CommandError;
use udpchat_core::event::{Event, Ink, Pen};
use udpchat_core::output::Output;
use udpchat_core::packet::{Packet, Push};
use udpchat_core::register;
use udpchat_core::registry::{Command, OnPush};

/// `going-down`: the push and its handler.
pub struct GoingDown;

impl Packet for GoingDown {
    const TAG: &'static str = "going-down";
}

impl Push for GoingDown {
    const SERVER_ONLY: bool = true;
    type Body = ();
}

register! {
    Command::new(GoingDown::TAG, "The server is shutting down.")
        .on_push::<GoingDown>()
}

register! {
    Event::new("server-down").on_its_own().look(look)
}

impl OnPush for GoingDown {
    async fn on_push(client: Client, _: Sender, _: ()) -> Result<(), CommandError> {
        let server = {
            let mut session = client.session().lock();
            session.user = None;
            session.server
        };
        client.emit(
            Output::new("server-down", "server is going down: you are signed out")
                .with("server", server.to_string()),
        );
        // Another server of the same deployment takes over at once.
        client.server().fail_over();
        Ok(())
    }
}

/// What the user must not miss.
fn look(output: &Output, pen: &dyn Pen) -> Option<String> {
    Some(pen.ink(Ink::Alarm, &output.text))
}
