//! `deposit` (packet): a message for a user who is offline, sealed end to
//! end by the sender, handed to the server to keep. The reply comes only
//! after the server's store committed it. If the recipient signed in
//! meanwhile, it is handed over at once.

use serde::{Deserialize, Serialize};
use udpchat_core::context::{Client, Origin, Server};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::event::{Event, Names};
use udpchat_core::mailbox::{associated, Letter};
use udpchat_core::output::Output;
use udpchat_core::packet::{Packet, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve};

/// `deposit`: the request and its handler.
pub struct Deposit;

impl Packet for Deposit {
    const TAG: &'static str = "deposit";
}

impl Request for Deposit {
    type Body = DepositBody;
    type Reply = Deposited;
}

/// The request body.
#[derive(Debug, Serialize, Deserialize)]
pub struct DepositBody {
    pub to: String,
    /// A CBOR `SealedMessage`.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// The reply body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Deposited {
    pub id: u64,
}

register! {
    Command::new(Deposit::TAG, "Leave a sealed message on the server for an offline user.")
        .serve::<Deposit>()
}

register! {
    Event::new("queued").names(met_recipient)
}

/// Seals `letter` for `to` and leaves it on the server; shows
/// `queued for bob (offline)`. The server's id for it.
pub async fn queue(
    client: &Client,
    from: &str,
    to: &str,
    letter: &Letter,
) -> Result<u64, CommandError> {
    let bundle = crate::bundle::fetch(client, to).await?;
    let sealed = client
        .keys()
        .seal(&bundle, &letter.to_plaintext(), &associated(from, to))?;
    let body = DepositBody {
        to: to.to_string(),
        sealed: udpchat_core::cbor::encode(&sealed),
    };
    let Deposited { id } = client.server().request::<Deposit>(&body).await?;
    client.emit(
        Output::new("queued", format!("queued for {to} (offline)"))
            .with("to", to.to_string())
            .with("id", id),
    );
    Ok(id)
}

impl Serve for Deposit {
    async fn serve(
        server: Server,
        origin: Origin,
        body: DepositBody,
    ) -> Result<Deposited, CommandError> {
        let from = crate::signed_in_user(&server, origin)?;
        let DepositBody { to, sealed } = body;
        if to == from {
            return Err(CommandError::new(
                Code::Usage,
                "you cannot leave a message for yourself",
            ));
        }
        let stored = server.mailbox().deposit(&from, &to, sealed).await?;
        let id = stored.id;
        match server.session_of(&to) {
            Some(peer) => crate::stored::hand_over(&server, peer, vec![stored]).await,
            None => server.mail_elsewhere(&to, id),
        }
        Ok(Deposited { id })
    }
}

/// Whoever a message was kept for is someone one talks to.
fn met_recipient(output: &Output, names: &mut dyn Names) {
    if let Some(to) = output.field("to") {
        names.met(to);
    }
}
