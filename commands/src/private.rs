//! Private groups, as a member's client seals and opens their lines
//! (`udpchat_core::crypto::sender_keys`, `udpchat_core::group_keys`).
//!
//! Sending: the client hands its sender key to the members who lack it,
//! each sealed to them end to end (`crypto::sealed`, to their signed
//! prekey), inside the line itself, so the key travels in the group's one
//! order just before the first message that needs it, and a member who was
//! away finds it in the server's window. The server checks that the
//! line was sealed for the members as they are (`members-changed`
//! otherwise): the client then asks for them and hands out again (a new key
//! when someone left).
//!
//! Reading: a line whose key this client does not have is reported once,
//! and the client asks its sender (a line with a `want`); the sender hands
//! its key again. Lines are kept, in the clear, in the client's data dir
//! for `group history`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use udpchat_core::cbor;
use udpchat_core::context::Client;
use udpchat_core::crypto::sealed::SealedMessage;
use udpchat_core::crypto::sender_keys::{
    envelope_associated, KeyEnvelope, KeyShare, ReceivedChain, SealedLine, Want,
};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::group::{GroupInfo, GroupMessage, MEMBERS_DIGEST_LEN};
use udpchat_core::group_keys::OpenError;
use udpchat_core::mailbox::Bundle;
use udpchat_core::output::Output;

use crate::group::members::{GroupMembers, Named};
use crate::gsend::{Accepted, GroupLine, GroupSend};

/// The most a sealed line may be (its text, the keys it hands out and
/// its signature): a request body has room for it and the rest.
pub const MAX_LINE: usize = 88 * 1024;
/// What a line takes besides its text and key envelopes.
const LINE_OVERHEAD: usize = 256;
/// What a member who joins a private group is told, as Signal does.
pub const JOINED_NOTE: &str =
    "end-to-end encrypted: what was said before you joined cannot be read here";
/// How often one sender is asked for one key, or answers one member.
const ASK_EVERY: Duration = Duration::from_secs(60);
/// How many times a line is sealed again when the members changed under it.
const ATTEMPTS: usize = 3;

/// Whether `group` is private, asking the server when this client does
/// not know.
pub async fn is_private(client: &Client, group: &str) -> Result<bool, CommandError> {
    if let Some(private) = client.groups().keys(|k| k.is_private(group))? {
        return Ok(private);
    }
    let info = members(client, group).await?;
    Ok(info.1)
}

/// The server listed groups (`complete`: every group this user is in):
/// the keys learn which are private, and forget those this user is no
/// longer in. A failure is shown, and nothing else stops for it.
pub fn learn(client: &Client, groups: &[GroupInfo], complete: bool) {
    let learnt = client.groups().keys(|k| {
        let kinds = groups.iter().map(|g| (g.name.as_str(), g.private));
        if complete {
            k.listed(kinds);
        } else {
            kinds.for_each(|(group, private)| k.set_private(group, private));
        }
    });
    if let Err(e) = learnt {
        client.emit(Output::error(&e));
    }
}

/// The group's members, and whether it is private (which the keys learn).
async fn members(client: &Client, group: &str) -> Result<(Vec<String>, bool), CommandError> {
    let info = client
        .server()
        .request::<GroupMembers>(&Named {
            group: group.to_string(),
        })
        .await?;
    client
        .groups()
        .keys(|k| k.set_private(group, info.private))?;
    Ok((info.members, info.private))
}

/// Seals `text` for the members of the private `group` and has the server
/// take it, handing this client's key to whoever lacks it first. Empty
/// `text` with `wants` asks other members for their keys.
pub async fn send(
    client: &Client,
    group: &str,
    text: &str,
    wants: Vec<Want>,
    also: Vec<Handed>,
) -> Result<Accepted, CommandError> {
    let me = client.user()?;
    let mut known: Option<Vec<String>> = None;
    for _ in 0..ATTEMPTS {
        if known.is_none() && client.groups().keys(|k| k.needs_members(group))? {
            known = Some(members(client, group).await?.0);
        }
        let handout = client
            .groups()
            .keys(|k| k.handout(group, &me, known.as_deref(), &mut rand::rngs::OsRng))?;
        // The chain goes to whoever this line hands it to, new shares and
        // shares handed again alike: each is one it was given to, so that
        // their leaving rotates it.
        let from_iteration = handout.shares.first().map(|(_, s)| s.iteration).or(client
            .groups()
            .keys(|k| {
            k.next_iteration(group)
        })?);
        let mut sealed = seal_shares(client, group, &me, &handout.shares).await;
        let again = also
            .iter()
            .filter(|(e, _)| !handout.shares.iter().any(|(m, _)| *m == e.to));
        sealed.extend(again.cloned());
        let (envelopes, handed): (Vec<KeyEnvelope>, Vec<(String, Vec<u8>)>) =
            sealed.into_iter().unzip();
        match post(
            client,
            group,
            &me,
            text,
            envelopes,
            wants.clone(),
            handout.digest,
        )
        .await
        {
            Ok(accepted) => {
                if let Some(iteration) = from_iteration.filter(|_| !handed.is_empty()) {
                    client
                        .groups()
                        .keys(|k| k.handed(group, &handed, iteration))?;
                }
                return Ok(accepted);
            }
            Err(e) if e.code == Code::MembersChanged => {
                known = Some(members(client, group).await?.0);
            }
            Err(e) => return Err(e),
        }
    }
    Err(CommandError::new(
        Code::MembersChanged,
        format!("{group}'s members kept changing: not sent"),
    ))
}

/// Seals the line (several, when the keys it hands out do not fit one:
/// those go first, without text) and sends it.
async fn post(
    client: &Client,
    group: &str,
    me: &str,
    text: &str,
    envelopes: Vec<KeyEnvelope>,
    wants: Vec<Want>,
    digest: [u8; MEMBERS_DIGEST_LEN],
) -> Result<Accepted, CommandError> {
    let (first, last) = batches(envelopes, text.len());
    for keys in first {
        post_one(client, group, me, "", keys, Vec::new(), digest).await?;
    }
    post_one(client, group, me, text, last, wants, digest).await
}

/// The keys a line of `text_len` bytes hands out, split so that every line
/// stays within [`MAX_LINE`]: lines of keys alone, then what goes with the
/// text.
fn batches(
    mut envelopes: Vec<KeyEnvelope>,
    text_len: usize,
) -> (Vec<Vec<KeyEnvelope>>, Vec<KeyEnvelope>) {
    let room = MAX_LINE.saturating_sub(LINE_OVERHEAD + text_len);
    let mut first = Vec::new();
    while size(&envelopes) > room {
        let mut batch = Vec::new();
        while let Some(envelope) = envelopes.pop() {
            if !batch.is_empty()
                && size(&batch) + size(std::slice::from_ref(&envelope)) > MAX_LINE - LINE_OVERHEAD
            {
                envelopes.push(envelope);
                break;
            }
            batch.push(envelope);
        }
        first.push(batch);
    }
    (first, envelopes)
}

/// What envelopes add to a line, about (their bytes and CBOR around them).
fn size(envelopes: &[KeyEnvelope]) -> usize {
    envelopes
        .iter()
        .map(|e| e.sealed.len() + e.to.len() + 16)
        .sum()
}

async fn post_one(
    client: &Client,
    group: &str,
    me: &str,
    text: &str,
    envelopes: Vec<KeyEnvelope>,
    wants: Vec<Want>,
    digest: [u8; MEMBERS_DIGEST_LEN],
) -> Result<Accepted, CommandError> {
    let line = client
        .groups()
        .keys(|k| k.seal(group, me, text, envelopes, wants))?
        .ok_or_else(|| CommandError::new(Code::Internal, format!("no key of yours in {group}")))?;
    let request = GroupLine {
        group: group.to_string(),
        text: String::new(),
        sealed: Some(cbor::encode(&line)),
        members: Some(digest.to_vec()),
    };
    client.server().request::<GroupSend>(&request).await
}

/// A key sealed for a member, with the member and the identity key it was
/// sealed to.
type Handed = (KeyEnvelope, (String, Vec<u8>));

/// Each share sealed to its member; a member whose keys cannot be had is
/// told about (they ask when they come to read).
async fn seal_shares(
    client: &Client,
    group: &str,
    me: &str,
    shares: &[(String, KeyShare)],
) -> Vec<Handed> {
    let mut envelopes = Vec::with_capacity(shares.len());
    for (member, share) in shares {
        let sealed = async {
            let bundle = crate::bundle::fetch_as(client, member, true).await?;
            seal_to(client, group, me, &bundle, share)
        };
        match sealed.await {
            Ok(handed) => envelopes.push(handed),
            Err(e) => client.emit(Output::error(&CommandError::new(
                e.code.clone(),
                format!(
                    "{member} cannot read your messages in {group} yet: {}",
                    e.message
                ),
            ))),
        }
    }
    envelopes
}

/// `share` sealed to the owner of `bundle` (its signed prekey alone).
fn seal_to(
    client: &Client,
    group: &str,
    me: &str,
    bundle: &Bundle,
    share: &KeyShare,
) -> Result<Handed, CommandError> {
    let member = &bundle.user;
    let ad = envelope_associated(group, me, member);
    let sealed = client.keys().seal(bundle, &cbor::encode(share), &ad)?;
    let envelope = KeyEnvelope {
        to: member.clone(),
        sealed: cbor::encode(&sealed),
    };
    Ok((envelope, (member.clone(), bundle.identity.to_bytes())))
}

/// A private group's line, opened: its text (`None` for a line that only
/// carries keys), and lines of its sender held for the key it brought,
/// which open now (late, each with its text or why not).
#[derive(Debug, Default)]
pub struct Opened {
    pub text: Option<String>,
    pub late: Vec<(GroupMessage, Result<String, CommandError>)>,
    /// Why the sender's key could not be checked (the server could not be
    /// asked whether it is theirs): the text is shown marked so, and the
    /// key is not kept.
    pub unverified: Option<CommandError>,
}

/// A key handed to this member, opened.
enum Taken {
    /// Checked and kept.
    Kept,
    /// Sealed by an identity key the server could not be asked about
    /// (the client is leaving): good for this line only.
    Unverified(KeyShare, CommandError),
}

/// Opens a private group's line for `me`: takes the key it hands `me`, if
/// any, answers a `want` of `me`'s key, and opens it. A line whose key has
/// not come is held until it does (and its sender asked for it).
pub async fn open(
    client: &Client,
    me: &str,
    message: &GroupMessage,
    sealed: &[u8],
) -> Result<Opened, CommandError> {
    let (group, from) = (message.group.as_str(), message.from.as_str());
    let line: SealedLine = cbor::decode_body(sealed).map_err(|e| {
        CommandError::new(
            Code::Sealed,
            format!(
                "{from}'s message {} in {group} is malformed: {e}",
                message.seq
            ),
        )
    })?;
    if from == me {
        // This client's own line (sent from here, or before a restart):
        // its text was kept when it was sent.
        return Ok(Opened::default());
    }
    let mut opened = Opened::default();
    // Why the key handed to `me` did not open, if it did not.
    let mut unopened = None;
    if let Some(envelope) = line.keys.iter().find(|e| e.to == me) {
        match take_key(client, me, group, from, envelope).await {
            Ok(Taken::Unverified(share, why)) => {
                // Read this line with it, and keep nothing of it.
                let text = ReceivedChain::from_share(&share)
                    .and_then(|mut chain| chain.open(group, from, &line))
                    .map_err(|e| unreadable(message, OpenError::Refused(e)))?;
                opened.text = (!text.is_empty()).then_some(text);
                opened.unverified = Some(why);
                return Ok(opened);
            }
            Ok(Taken::Kept) => {
                let released = client.groups().keys(|k| k.release(group, from))?;
                opened.late = released
                    .into_iter()
                    .map(|(m, text)| {
                        let text = text.map_err(|e| unreadable(&m, e));
                        (m, text)
                    })
                    .collect();
            }
            Err(e) => unopened = Some(e.message),
        }
    }
    if line.wants.iter().any(|w| w.from == me) {
        answer(client, group, from);
    }
    let key_id = line.key_id;
    match client.groups().keys(|k| k.open(group, from, &line))? {
        Ok(text) => {
            opened.text = (!text.is_empty()).then_some(text);
            Ok(opened)
        }
        Err(OpenError::NoKey { .. }) => {
            let dropped = client.groups().keys(|k| k.hold(message.clone(), line))?;
            if let Some(dropped) = dropped {
                client.emit(Output::error(&CommandError::new(
                    Code::MissingKey,
                    format!(
                        "gave up on {}'s message {} in {group}: its key never came",
                        dropped.from, dropped.seq
                    ),
                )));
            }
            if !ask(client, group, from, key_id) {
                // Said once per key: the others wait quietly with it.
                return Ok(opened);
            }
            let why = match unopened {
                Some(why) => format!("the key {from} handed you did not open ({why})"),
                None => "no key for it here".to_string(),
            };
            Err(CommandError::new(
                Code::MissingKey,
                format!(
                    "cannot read {from}'s messages in {group} yet: {why}; asked {from} for it, and they show when it comes"
                ),
            ))
        }
        Err(OpenError::Refused(e)) => Err(unreadable(message, OpenError::Refused(e))),
    }
}

/// Says, per group and sender, how many lines were still waiting for
/// their key when the user signs out: none goes unmentioned.
pub fn report_unread(client: &Client) {
    // Nothing is opened here: signing out must not wait on the disk.
    for ((group, from), count) in client.groups().give_up_held() {
        let lines = if count == 1 { "message" } else { "messages" };
        client.emit(Output::error(&CommandError::new(
            Code::MissingKey,
            format!("{count} {lines} from {from} in {group} not read: their key never came"),
        )));
    }
}

/// A line refused for good: forged, tampered with, or a replay.
fn unreadable(message: &GroupMessage, e: OpenError) -> CommandError {
    CommandError::new(
        Code::Sealed,
        format!(
            "refused {}'s message {} in {}: {e}",
            message.from, message.seq, message.group
        ),
    )
}

/// Opens the key `from` sealed for `me`, checks that `from`'s identity key
/// sealed it, and takes it.
async fn take_key(
    client: &Client,
    me: &str,
    group: &str,
    from: &str,
    envelope: &KeyEnvelope,
) -> Result<Taken, CommandError> {
    let refused = |why: String| {
        CommandError::new(
            Code::Sealed,
            format!("refused a key from {from} in {group}: {why}"),
        )
    };
    let sealed: SealedMessage =
        cbor::decode_body(&envelope.sealed).map_err(|e| refused(e.to_string()))?;
    let (identity, bytes) = client
        .keys()
        .open(&sealed, &envelope_associated(group, from, me))
        .map_err(|e| refused(e.message))?;
    let share: KeyShare = cbor::decode_body(&bytes).map_err(|e| refused(e.to_string()))?;
    if !client.keys().is_known(from, &identity) {
        match crate::whois::identity(client, from).await {
            Ok(registered) if registered == identity => {}
            Ok(_) => {
                return Err(refused(format!(
                    "it was not sealed by {from}'s identity key"
                )))
            }
            Err(e) if e.code == Code::NoSuchUser => return Err(refused(e.message)),
            // The server could not be asked (this client is leaving).
            Err(e) => return Ok(Taken::Unverified(share, e)),
        }
    }
    client
        .groups()
        .keys(|k| k.accept(group, from, &share))?
        .map_err(|e| refused(e.to_string()))?;
    Ok(Taken::Kept)
}

/// A group, a member and one of its keys (`u32::MAX`: this client's).
type Asked = (String, String, u32);

/// When each was last asked for or answered.
static LATELY: Mutex<Option<HashMap<Asked, Instant>>> = Mutex::new(None);

/// Whether `what` was not done within [`ASK_EVERY`]; records it.
fn not_lately(what: Asked) -> bool {
    let now = Instant::now();
    let mut lately = LATELY.lock();
    let lately = lately.get_or_insert_with(HashMap::new);
    lately.retain(|_, at| now.duration_since(*at) < ASK_EVERY);
    if lately.contains_key(&what) {
        return false;
    }
    lately.insert(what, now);
    true
}

/// Asks `from` for key `key_id` in `group` (in the background, at most once
/// a minute). Returns whether it asked now.
fn ask(client: &Client, group: &str, from: &str, key_id: u32) -> bool {
    if !not_lately((group.to_string(), from.to_string(), key_id)) {
        return false;
    }
    let (client2, group, want) = (
        client.clone(),
        group.to_string(),
        Want {
            from: from.to_string(),
            key_id,
        },
    );
    client.tasks().spawn(Box::pin(async move {
        if let Err(e) = send(&client2, &group, "", vec![want], Vec::new()).await {
            client2.emit(Output::error(&CommandError::new(
                e.code,
                format!("could not ask for a key in {group}: {}", e.message),
            )));
        }
    }));
    true
}

/// `asker` asked for this client's key in `group`: hands it to them again
/// (in the background, at most once a minute), from where they may read
/// it (see `GroupKeys::share_again`).
fn answer(client: &Client, group: &str, asker: &str) {
    if !not_lately((group.to_string(), asker.to_string(), u32::MAX)) {
        return;
    }
    let (client2, group, asker) = (client.clone(), group.to_string(), asker.to_string());
    client.tasks().spawn(Box::pin(async move {
        let handed = async {
            let bundle = crate::bundle::fetch_as(&client2, &asker, true).await?;
            let identity = bundle.identity.to_bytes();
            let share = client2
                .groups()
                .keys(|k| k.share_again(&group, &asker, &identity))?;
            let Some(share) = share else {
                return Ok(());
            };
            let me = client2.user()?;
            let handed = seal_to(&client2, &group, &me, &bundle, &share)?;
            send(&client2, &group, "", Vec::new(), vec![handed])
                .await
                .map(|_| ())
        };
        if let Err(e) = handed.await {
            client2.emit(Output::error(&CommandError::new(
                e.code,
                format!(
                    "could not hand {asker} your key in {group} again: {}",
                    e.message
                ),
            )));
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelopes(n: usize) -> Vec<KeyEnvelope> {
        (0..n)
            .map(|i| KeyEnvelope {
                to: format!("member{i:04}"),
                sealed: vec![0; 280],
            })
            .collect()
    }

    #[test]
    fn keys_for_a_large_group_go_in_lines_of_their_own_each_within_the_limit() {
        // A few go with the text.
        let (first, last) = batches(envelopes(19), 100);
        assert!(first.is_empty());
        assert_eq!(last.len(), 19);
        // 999 members' keys with a 64 KiB text: lines of keys first.
        let (first, last) = batches(envelopes(999), 64 * 1024);
        assert!(!first.is_empty());
        let all: usize = first.iter().map(Vec::len).sum::<usize>() + last.len();
        assert_eq!(all, 999, "every key goes out once");
        for batch in &first {
            assert!(size(batch) + LINE_OVERHEAD <= MAX_LINE);
        }
        assert!(size(&last) + LINE_OVERHEAD + 64 * 1024 <= MAX_LINE);
        // And a real line of the largest batch, sealed, is within it.
        let mut chain =
            udpchat_core::crypto::sender_keys::OwnChain::generate(&mut rand::thread_rng());
        let biggest = first.iter().max_by_key(|b| size(b)).unwrap().clone();
        let line = chain.seal("g", "alice", "", biggest, vec![]);
        assert!(cbor::encode(&line).len() <= MAX_LINE);
        let line = chain.seal("g", "alice", &"x".repeat(64 * 1024), last, vec![]);
        assert!(cbor::encode(&line).len() <= MAX_LINE);
    }
}
