//! `group-messages` (packet): several of a group's messages in one push,
//! from the server, shown each as [`group_message`](crate::group_message)
//! shows one. The server sends it when a member has more than one message
//! coming at once: those one commit stored (members writing at the same
//! time), or what a member missed while away. One datagram, one seal and
//! one acknowledgement then carry what would have taken one each.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use udpchat_core::context::{Client, Sender};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::group::GroupMessage as Line;
use udpchat_core::packet::{Encoded, Packet, Push};
use udpchat_core::register;
use udpchat_core::registry::{Command, OnPush};

use crate::group_message::{check, show, GroupMessage};

/// `group-messages`: the push and its handler.
pub struct GroupMessages;

impl Packet for GroupMessages {
    const TAG: &'static str = "group-messages";
}

impl Push for GroupMessages {
    const SERVER_ONLY: bool = true;
    const ACK_AT_ONCE: bool = false;
    type Body = Batch;
}

/// Messages in the server's order (increasing `seq` within a group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub messages: Vec<Line>,
}

register! {
    Command::new(GroupMessages::TAG, "Several of a group's messages at once, from the server.")
        .on_push::<GroupMessages>()
}

impl OnPush for GroupMessages {
    async fn on_push(client: Client, _: Sender, batch: Batch) -> Result<(), CommandError> {
        if batch.messages.is_empty() {
            return Err(CommandError::new(
                Code::BadRequest,
                "an empty group-messages push",
            ));
        }
        // All or none: a batch with a bad line is refused whole, as a
        // single bad `group-message` is.
        batch.messages.iter().try_for_each(check)?;
        show(&client, &batch.messages).await;
        Ok(())
    }
}

/// The text a batch carries, about: a push of this much and its envelope
/// fit one datagram, so a batch is sealed, sent and acknowledged once.
const PARCEL_BYTES: usize = 900;
/// What a message adds to a batch besides its names and text (CBOR map
/// keys and numbers).
const PER_MESSAGE: usize = 48;

/// Messages of one group going to a member in one push: their `seq`s,
/// and the push (`group-message` for one, `group-messages` for more).
#[derive(Debug, Clone)]
pub struct Parcel {
    /// Shared by every member the parcel goes to.
    pub seqs: Arc<[u64]>,
    pub push: Encoded,
}

/// Packs `messages` (in order) into parcels of about a datagram each; a
/// message too large to share one goes alone.
pub fn parcels<'a>(messages: impl IntoIterator<Item = &'a Line>) -> Vec<Parcel> {
    let mut parcels = Vec::new();
    let mut packing: Vec<&Line> = Vec::new();
    let mut bytes = 0;
    for message in messages {
        let sealed = message.sealed.as_ref().map_or(0, Vec::len);
        let size =
            PER_MESSAGE + message.group.len() + message.from.len() + message.text.len() + sealed;
        if !packing.is_empty() && bytes + size > PARCEL_BYTES {
            parcels.push(parcel(&packing));
            packing.clear();
            bytes = 0;
        }
        packing.push(message);
        bytes += size;
    }
    if !packing.is_empty() {
        parcels.push(parcel(&packing));
    }
    parcels
}

fn parcel(messages: &[&Line]) -> Parcel {
    let seqs = messages.iter().map(|m| m.seq).collect();
    let push = match messages {
        [one] => Encoded::push::<GroupMessage>(one),
        many => Encoded::push::<GroupMessages>(&Batch {
            messages: many.iter().map(|&m| m.clone()).collect(),
        }),
    };
    Parcel { seqs, push }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: u64, text: &str) -> Line {
        Line {
            group: "group1".into(),
            seq,
            from: "bob".into(),
            text: text.into(),
            sealed: None,
            time_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn short_messages_share_a_push_and_a_long_one_goes_alone() {
        let long = "x".repeat(2_000);
        let messages = [
            line(1, "hi"),
            line(2, "how are you"),
            line(3, &long),
            line(4, "back"),
        ];
        let parcels = parcels(&messages);
        let seqs: Vec<_> = parcels.iter().map(|p| p.seqs.to_vec()).collect();
        assert_eq!(seqs, [vec![1, 2], vec![3], vec![4]]);
        let tags: Vec<_> = parcels.iter().map(|p| p.push.tag()).collect();
        assert_eq!(tags, ["group-messages", "group-message", "group-message"]);
    }

    #[test]
    fn a_batch_stays_near_one_datagram() {
        let text = "y".repeat(100);
        let messages: Vec<_> = (1..=40).map(|seq| line(seq, &text)).collect();
        let parcels = parcels(&messages);
        assert!(parcels.len() > 1, "40 x 100 B do not fit one datagram");
        assert!(parcels.iter().all(|p| p.push.body().len() <= 1_100));
        let all: Vec<u64> = parcels.iter().flat_map(|p| p.seqs.to_vec()).collect();
        assert_eq!(all, (1..=40).collect::<Vec<_>>(), "every message, in order");
    }
}
