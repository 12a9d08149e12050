//! `stored` (packet): the server hands a client a message that was kept
//! for it while it was offline, with its sender and original time. The
//! client opens it, checks that the sender's identity key is the one the
//! server lists for the sender's name, shows it, and only then sends a
//! `receipt`, after which the server deletes it.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use udpchat_core::context::{Client, PeerId, Sender, Server};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::crypto::sealed::SealedMessage;
use udpchat_core::error::{Code, CommandError};
use udpchat_core::history::{Conversation, Line, State};
use udpchat_core::mailbox::{associated, Letter, Stored};
use udpchat_core::output::{continued, Output};
use udpchat_core::packet::{decode_body, Packet, Push};
use udpchat_core::register;
use udpchat_core::registry::{Command, OnPush};

/// `stored`: the push and its handler.
pub struct StoredMail;

impl Packet for StoredMail {
    const TAG: &'static str = "stored";
}

impl Push for StoredMail {
    const SERVER_ONLY: bool = true;
    // Its `receipt` goes once it is written: the server deletes it then.
    const HELD_UNTIL_KEPT: bool = false;
    type Body = Handover;
}

/// The push body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Handover {
    pub message: Stored,
    /// The identity key the server lists for the sender.
    pub from_identity: Option<PublicKey>,
    /// How many more messages follow in this handover (those waiting at
    /// sign-in come together): what could not be opened is summed up once
    /// the last has come. Left out by an older server: 0.
    #[serde(default)]
    pub left: u32,
}

register! {
    Command::new(StoredMail::TAG, "A message kept for you while you were offline.")
        .on_push::<StoredMail>()
}

/// Pushes `messages` to the client on `peer`, in order.
pub async fn hand_over(server: &Server, peer: PeerId, messages: Vec<Stored>) {
    // Many kept messages tend to come from few senders: look each up once.
    let mut identities: HashMap<String, Option<PublicKey>> = HashMap::new();
    let count = messages.len();
    for (index, message) in messages.into_iter().enumerate() {
        let from_identity = match identities.get(&message.from) {
            Some(known) => known.clone(),
            None => {
                let found = server
                    .accounts()
                    .identity(&message.from)
                    .await
                    .ok()
                    .flatten();
                identities.insert(message.from.clone(), found.clone());
                found
            }
        };
        server.push::<StoredMail>(
            peer,
            &Handover {
                message,
                from_identity,
                left: (count - 1 - index) as u32,
            },
        );
    }
}

/// Everything waiting for `user`, oldest first, to the session `peer`. If
/// the store fails, the messages stay for the next sign-in.
pub async fn deliver_pending(server: &Server, user: &str, peer: PeerId) {
    if let Ok(messages) = server.mailbox().pending(user).await {
        hand_over(server, peer, messages).await;
    }
}

impl OnPush for StoredMail {
    async fn on_push(client: Client, _: Sender, body: Handover) -> Result<(), CommandError> {
        let Handover {
            message,
            from_identity,
            left,
        } = body;
        // Addressed by the server, whatever this client thinks it is.
        let me = message.to.clone();
        // Another copy of one already shown (and opened: its one-time
        // prekey is gone): acknowledged again, not shown again.
        let server = client.session().lock().server;
        if !first_handover(server, &me, message.id) {
            return acknowledged_again(&client, server, &me, left, message.id).await;
        }
        // Whatever the sender deposited, this message is reported once
        // and acknowledged: one that cannot be opened must not stay in
        // the mailbox, taking room and coming back at every sign-in.
        let sealed = decode_body::<SealedMessage>(&message.sealed);
        let opened = sealed
            .clone()
            .and_then(|sealed| client.keys().open(&sealed, &associated(&message.from, &me)));
        // A copy of one a process before this one wrote, and left before
        // its receipt went: its one-time prekey is spent, so it does not
        // open, and the history knows it. Acknowledged, not reported.
        if opened.is_err() && kept_before(&client, &message) {
            return acknowledged_again(&client, server, &me, left, message.id).await;
        }
        let spend = opened.is_ok();
        let shown = match opened {
            Ok((proven, plaintext)) if Some(&proven) == from_identity.as_ref() => {
                client.keys().check(&message.from, &proven);
                let Letter { id, text } = Letter::from_plaintext(&plaintext);
                // Sent straight here first and shown, its acknowledgement
                // lost as the user left: its sender kept it here too. It
                // is taken in (its receipt goes) but not shown again.
                let shown_before = id.is_some_and(|id| {
                    crate::message::shown_before(&client, &message.from, id, &text)
                });
                if !shown_before {
                    crate::history::keep(
                        &client,
                        &Line {
                            conversation: Conversation::User(message.from.clone()),
                            from: message.from.clone(),
                            text: text.clone(),
                            time_ms: message.sent_at_ms,
                            number: Some(message.id),
                            message_id: id,
                            outgoing: false,
                            state: State::Kept,
                        },
                        Some(render(&message, &text)),
                    );
                }
                Ok(())
            }
            Ok(_) => Err(CommandError::new(
                Code::Unverified,
                format!("dropped a stored message claiming to be from {}: it was sealed with another key", message.from),
            )),
            // Summed up with the others of this handover, not one error
            // each (a new device cannot open what waited for the old one).
            Err(e) => {
                unopened(server, &me).add(&message.from, e.message);
                Ok(())
            }
        };
        // Deleted from the mailbox, and its one-time prekey here, only once
        // it is on disk: a client killed before then is handed it again,
        // and opens it.
        crate::history::written(&client).await;
        if let (true, Ok(sealed)) = (spend, &sealed) {
            if let Err(e) = client.keys().spend(sealed) {
                tracing::warn!("prekeys: {}", e.message);
            }
        }
        let acknowledged = crate::receipt::acknowledge(&client, message.id).await;
        summed_up(&client, server, &me, left);
        acknowledged?;
        shown
    }
}

/// A copy of a message this client has: acknowledged, and not shown.
async fn acknowledged_again(
    client: &Client,
    server: SocketAddr,
    me: &str,
    left: u32,
    id: u64,
) -> Result<(), CommandError> {
    let acknowledged = crate::receipt::acknowledge(client, id).await;
    summed_up(client, server, me, left);
    acknowledged
}

/// Whether this client's history holds `message` already: the line that
/// came from its sender under its id, sent when it was.
fn kept_before(client: &Client, message: &Stored) -> bool {
    let conversation = Conversation::User(message.from.clone());
    match client.history().came(&conversation, message.id) {
        Ok(Some(kept)) => kept.line.time_ms == message.sent_at_ms,
        Ok(None) => false,
        Err(e) => {
            tracing::warn!("history: {}", e.message);
            false
        }
    }
}

/// After the last message of a handover, what could not be opened, in
/// one line.
fn summed_up(client: &Client, server: SocketAddr, me: &str, left: u32) {
    if left == 0 {
        if let Some(summary) = unopened(server, me).take() {
            client.emit(Output::error(&summary));
        }
    }
}

/// The messages of a handover that could not be opened, so far.
#[derive(Debug, Default)]
pub struct Unopened {
    count: usize,
    senders: Vec<String>,
    first_reason: Option<String>,
}

impl Unopened {
    fn add(&mut self, from: &str, reason: String) {
        self.count += 1;
        if !self.senders.iter().any(|s| s == from) {
            self.senders.push(from.to_string());
        }
        self.first_reason.get_or_insert(reason);
    }

    /// One line for them all (and the tally starts again), if any.
    pub fn take(&mut self) -> Option<CommandError> {
        let Unopened {
            count,
            senders,
            first_reason,
        } = std::mem::take(self);
        let reason = first_reason?;
        let from = senders.join(", ");
        Some(CommandError::new(
            Code::Sealed,
            if count == 1 {
                format!("a message kept for you from {from} could not be opened on this device: {reason}")
            } else {
                format!("{count} messages kept for you could not be opened on this device (from {from}): {reason}")
            },
        ))
    }
}

/// The tally for `user`'s handovers from `server`.
fn unopened(server: SocketAddr, user: &str) -> parking_lot::MappedMutexGuard<'static, Unopened> {
    static TALLIES: Mutex<Option<HashMap<(SocketAddr, String), Unopened>>> = Mutex::new(None);
    parking_lot::MutexGuard::map(TALLIES.lock(), |tallies| {
        tallies
            .get_or_insert_with(HashMap::new)
            .entry((server, user.to_string()))
            .or_default()
    })
}

/// Stored messages remembered as taken in, at most (oldest forgotten
/// first): far more than a second copy can lag behind the first.
const HANDED_OVER: usize = 4_096;

/// Stored messages taken in lately, by server, user and id.
#[derive(Default)]
struct HandedOver {
    seen: HashSet<(SocketAddr, String, u64)>,
    order: VecDeque<(SocketAddr, String, u64)>,
}

impl HandedOver {
    /// `true` if `key` is new (and now remembered).
    fn first(&mut self, key: (SocketAddr, String, u64)) -> bool {
        if self.seen.contains(&key) {
            return false;
        }
        if self.order.len() >= HANDED_OVER {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(key.clone());
        self.order.push_back(key);
        true
    }
}

/// `true` the first time this client is handed the stored message `id`
/// for `user` by `server`; `false` for another copy of one it took in
/// lately. The server may hand a message over twice (one deposited while
/// its recipient signs in comes with the sign-in's mailbox and from the
/// deposit) and keeps it until its receipt, so a copy must be
/// acknowledged, not shown again. Like `group-message`'s last shown
/// number, this is state of the client process, which is one client.
fn first_handover(server: SocketAddr, user: &str, id: u64) -> bool {
    static HANDED: Mutex<Option<HandedOver>> = Mutex::new(None);
    HANDED
        .lock()
        .get_or_insert_with(HandedOver::default)
        .first((server, user.to_string(), id))
}

fn render(message: &Stored, text: &str) -> Output {
    let time = clock(message.sent_at_ms);
    Output::new(
        "message",
        format!(
            "[{time}] <{}> (while you were away): {}",
            message.from,
            continued(text)
        ),
    )
    .with("from", message.from.clone())
    .with("text", text.to_string())
    .with("stored", true)
    .with("sent_at_ms", message.sent_at_ms)
    .with("id", message.id)
}

/// `YYYY-MM-DD HH:MM UTC` from ms since the epoch (civil from days, no
/// time-zone database needed).
fn clock(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handover_is_not_held_its_receipt_waits_for_the_write_instead() {
        let registry = udpchat_core::registry::Registry::global();
        assert!(!registry.held_until_kept(StoredMail::TAG));
        for held in ["message", "group-message", "group-messages"] {
            assert!(registry.held_until_kept(held), "{held}");
        }
        assert!(registry.held_until_kept("no-such-push"));
    }

    #[test]
    fn what_could_not_be_opened_is_one_line_naming_each_sender_once() {
        let mut unopened = Unopened::default();
        assert!(unopened.take().is_none(), "nothing to say");
        unopened.add("alice", "sealed for another device".into());
        let one = unopened.take().unwrap();
        assert_eq!(
            one.message,
            "a message kept for you from alice could not be opened on this device: sealed for another device"
        );
        for from in ["alice", "bob", "alice"] {
            unopened.add(from, format!("reason from {from}"));
        }
        let three = unopened.take().unwrap();
        assert_eq!(three.code, Code::Sealed);
        assert_eq!(
            three.message,
            "3 messages kept for you could not be opened on this device (from alice, bob): reason from alice"
        );
        assert!(unopened.take().is_none(), "the tally starts again");
    }

    #[test]
    fn a_copy_of_a_stored_message_is_known_and_the_oldest_are_forgotten() {
        let server: SocketAddr = "127.0.0.1:4590".parse().unwrap();
        let other: SocketAddr = "127.0.0.2:4590".parse().unwrap();
        let key = |addr, user: &str, id| (addr, user.to_string(), id);
        let mut handed = HandedOver::default();
        assert!(handed.first(key(server, "bob", 7)));
        assert!(!handed.first(key(server, "bob", 7)));
        // Another user, another server: another message.
        assert!(handed.first(key(server, "carole", 7)));
        assert!(handed.first(key(other, "bob", 7)));
        for id in 100..100 + HANDED_OVER as u64 {
            handed.first(key(server, "bob", id));
        }
        assert_eq!(handed.seen.len(), HANDED_OVER);
        assert!(handed.first(key(server, "bob", 7)), "forgotten by now");
    }

    #[test]
    fn times_read_as_dates() {
        assert_eq!(clock(0), "1970-01-01 00:00 UTC");
        assert_eq!(clock(1_795_444_200_000), "2026-11-23 14:30 UTC");
        assert_eq!(clock(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
