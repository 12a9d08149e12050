//! `fanout`: one group of M members (10, 100, 1000), one of them sending
//! (or `--senders S` of them at once, on udpchat).
//! On udpchat the sender's `gsend` goes to the server, which pushes a
//! `group-message` to each other member over its own session; with `--irc
//! ADDR` the same load runs through a channel of a real IRC server (see
//! `bench/peers/ngircd.sh`), side by side in the same run. The sender keeps
//! `inflight` messages that have not yet reached every member; deliveries/s
//! and the p99 delivery latency (send call to one member's arrival) are
//! counted identically on both (`fanout_track`). Members count arrivals at
//! their Link's inbound channel (udpchat) or TCP reader (IRC).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use udpchat_commands::group::create::{Create, CreateBody};
use udpchat_commands::group_message::GroupMessage;
use udpchat_commands::group_messages::GroupMessages;
use udpchat_commands::gsend::{GroupLine, GroupSend};
use udpchat_commands::signup::SignUp;
use udpchat_core::cbor;
use udpchat_core::crypto::sender_keys::{OwnChain, SealedLine};
use udpchat_core::error::Code;
use udpchat_core::group::{members_digest, MEMBERS_DIGEST_LEN};
use udpchat_core::packet::{decode_body, Encoded, Packet as _, PushBody, Request as _};
use udpchat_net::{Arrival, Inbound};

use super::{params_with, Ctx};
use crate::clients::{code_of, loopback_for, SimClient, KEEPALIVE};
use crate::fanout_track::Tracker;
use crate::irc::{IrcClient, IrcSender};
use crate::load::{self, for_each_bounded, Plan};
use crate::report::{Latency, Report, Row};
use crate::server::Target;

/// The member counts measured.
pub const MEMBERS: [usize; 3] = [10, 100, 1000];
/// Bytes of each message's text.
pub const MESSAGE_BYTES: usize = 100;
/// IRC connections opened at once (ngircd listens with a short backlog).
const IRC_CONNECT_PARALLEL: usize = 16;

/// A running IRC server to compare with.
#[derive(Debug, Clone, Copy)]
pub struct IrcPeer {
    pub addr: SocketAddr,
    /// Its process, for /proc readings.
    pub pid: Option<u32>,
}

/// The group being measured: its tracker, and how its lines are sealed
/// (private groups).
type Current = Arc<RwLock<(Arc<Tracker>, Option<Arc<Sealing>>)>>;

pub async fn run(
    ctx: &Ctx,
    members: &[usize],
    inflight: usize,
    senders: usize,
    irc: Option<IrcPeer>,
) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "fanout",
        params_with(
            ctx,
            serde_json::json!({
                "members": members,
                "inflight": inflight,
                "senders": senders,
                "message_bytes": MESSAGE_BYTES,
                "irc": irc.map(|p| p.addr.to_string()),
            }),
        ),
    );
    let plan = Plan {
        window: inflight,
        ..ctx.plan()
    };
    let udpchat = udpchat_rows(ctx, members, senders, plan).await;
    let irc_rows = match irc {
        Some(peer) => {
            let mut rows = Vec::new();
            for (phase, &m) in members.iter().enumerate() {
                rows.push(irc_row(peer, m, phase, plan).await?);
            }
            rows
        }
        None => Vec::new(),
    };
    match udpchat {
        Ok(rows) => {
            for mut row in rows {
                let m = row.extra.get("members").and_then(|v| v.as_u64());
                // The IRC rows have one sender: compared only with ours.
                let irc = irc_rows
                    .iter()
                    .filter(|_| senders == 1)
                    .find(|r| r.extra.get("members").and_then(|v| v.as_u64()) == m);
                if let Some(irc) = irc.filter(|r| r.rate > 0.0) {
                    let ratio = row.rate / irc.rate;
                    row = row.with("x_irc", ratio);
                }
                report.rows.push(row);
            }
        }
        Err(reason) => {
            report.available = irc.is_some();
            report.reason = Some(format!("udpchat: {reason:#}"));
            report.note(format!("udpchat fanout not available: {reason:#}"));
        }
    }
    report.rows.extend(irc_rows);
    let who = match senders {
        1 => "one sender".to_string(),
        s => format!("{s} senders at once on udpchat (one on IRC)"),
    };
    report.note(format!(
        "{who}, M members in all (M-1 receive each message), {MESSAGE_BYTES} B texts, at most {inflight} messages per sender not yet at every member"
    ));
    if irc.is_some() {
        report.note("IRC: plain TCP, no encryption, one channel; the sender is an IRC operator with +F so ngircd's per-user flood limit does not apply; udpchat: UDP, every datagram AES-256-GCM sealed per session, reliable transport acknowledging each push");
    }
    Ok(report)
}

/// The udpchat rows, or why they cannot be measured.
async fn udpchat_rows(
    ctx: &Ctx,
    members: &[usize],
    senders: usize,
    plan: Plan,
) -> anyhow::Result<Vec<Row>> {
    let target = ctx.server()?;
    let shape = Shape {
        members,
        senders,
        kinds: &[Kind::Plain, Kind::Private],
    };
    let mut rows = group_rows(ctx, &[target], &|_| 0, &shape, plan, "udpchat").await?;
    // Each private row beside the plain one of the same size.
    let plain: Vec<(Option<u64>, f64)> = rows
        .iter()
        .filter(|r| r.extra.get("private") == Some(&serde_json::Value::Bool(false)))
        .map(|r| (r.extra.get("members").and_then(|v| v.as_u64()), r.rate))
        .collect();
    for row in rows
        .iter_mut()
        .filter(|r| r.extra.get("private") == Some(&serde_json::Value::Bool(true)))
    {
        let m = row.extra.get("members").and_then(|v| v.as_u64());
        if let Some((_, rate)) = plain.iter().find(|(pm, rate)| *pm == m && *rate > 0.0) {
            let ratio = row.rate / rate;
            *row = row.clone().with("x_plain", ratio);
        }
    }
    Ok(rows)
}

/// Groups measured: whose messages the server reads, or private ones
/// whose messages each sender seals (sender keys) and the server only
/// forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Plain,
    Private,
}

/// What [`group_rows`] measures: each group size, with `senders` of its
/// members sending, for each kind of group.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    pub members: &'a [usize],
    pub senders: usize,
    pub kinds: &'a [Kind],
}

/// One row per group size and kind, on the server nodes `targets`
/// (several nodes of one deployment): member `i` signs in on
/// `targets[place(i)]`; the first `senders` members send. Rows are named
/// `LABEL M=m` (`LABEL private M=m` for private groups).
pub async fn group_rows(
    ctx: &Ctx,
    targets: &[Target],
    place: &(dyn Fn(usize) -> usize + Sync),
    shape: &Shape<'_>,
    plan: Plan,
    label: &str,
) -> anyhow::Result<Vec<Row>> {
    let Shape {
        members,
        senders,
        kinds,
    } = *shape;
    let most = members.iter().copied().max().unwrap_or(0);
    let target = &targets[0];
    let current: Current = Arc::new(RwLock::new((Tracker::new(0), None)));
    let prefix = ctx.users("fan");
    let servers: Vec<_> = (0..most)
        .map(|i| targets[place(i) % targets.len()].server.clone())
        .collect();
    let clients = {
        let current = current.clone();
        for_each_bounded(
            &format!("signing up {most}"),
            (0..most).collect(),
            super::rpc::SIGNUP_PARALLEL,
            move |i| {
                let (server, current) = (servers[i].clone(), current.clone());
                let user = format!("{prefix}-{i}");
                async move {
                    let (mut client, inbound) =
                        SimClient::connect(&server, loopback_for(i), user).await?;
                    count_group_messages(inbound, current);
                    client.sign::<SignUp>().await?;
                    client.keep_alive(KEEPALIVE);
                    anyhow::Ok(client)
                }
            },
        )
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<SimClient>>>()?
    };
    let mut rows = Vec::new();
    for (&m, &kind) in members
        .iter()
        .flat_map(|m| kinds.iter().map(move |k| (m, k)))
    {
        let creator = clients[0].clone();
        let private = kind == Kind::Private;
        let group = format!("fan{m}{}{}", if private { "p" } else { "" }, ctx.run_tag);
        let create = CreateBody {
            group: group.clone(),
            open: false,
            members: clients[1..m].iter().map(|c| c.user.clone()).collect(),
            private,
        };
        creator
            .request(Encoded::request::<Create>(&create))
            .await
            .map_err(|e| {
                if code_of(&e) == Some(&Code::UnknownCommand) {
                    anyhow::anyhow!(
                        "groups are not built yet (the server does not know `{}`)",
                        Create::TAG
                    )
                } else {
                    e.context(format!(
                        "{} {}",
                        Create::TAG,
                        Create::OP.unwrap_or_default()
                    ))
                }
            })?;
        let tracker = Tracker::new(m - 1);
        let sealing = private.then(|| {
            let names: Vec<&str> = clients[..m].iter().map(|c| c.user.as_str()).collect();
            Arc::new(Sealing::new(members_digest(&names)))
        });
        *current.write() = (tracker.clone(), sealing.clone());
        tracker.measure(plan.warmup, plan.measure);
        // The group's first members; each receives the others' messages.
        let sending: Vec<_> = clients[..senders.min(m)]
            .iter()
            .map(|c| {
                let sealer = sealing.clone().map(|s| {
                    let line = Sealer::new(&group, &c.user);
                    (s, Arc::new(Mutex::new(line)))
                });
                (c.clone(), group.clone(), tracker.clone(), sealer)
            })
            .collect();
        let kind_label = if private { " private" } else { "" };
        let name = match sending.len() {
            1 => format!("{label}{kind_label} M={m}"),
            s => format!("{label}{kind_label} M={m} S={s}"),
        };
        let outcome = load::closed_loop(
            &name,
            &sending,
            plan,
            target.pid,
            |(sender, group, tracker, sealer)| async move {
                let (id, text) = tracker.text(MESSAGE_BYTES);
                let all = tracker.sent(id);
                let line = match &sealer {
                    Some((sealing, sealer)) => sealing.seal(&group, &sender.user, sealer, text),
                    None => GroupLine {
                        group,
                        text,
                        sealed: None,
                        members: None,
                    },
                };
                sender.request(Encoded::request::<GroupSend>(&line)).await?;
                all.await
            },
        )
        .await;
        rows.push(
            fanout_row(name, m, &tracker, &outcome)
                .with("senders", sending.len())
                .with("private", private),
        );
    }
    Ok(rows)
}

/// A private group's lines as the bench sends them, to measure what the
/// server's fan-out costs: lines the size of real ones (100 B of text
/// sealed with a sender key and signed, as `udpchat` does), but sealed and
/// signed once per sender and then sent with their iteration counted up.
/// The server checks neither the signature nor the ciphertext, and the
/// members here only count arrivals; what sealing and signing cost a
/// sender, and checking and opening each member, is in the micro-benchmarks
/// (`cargo bench -p udpchat-bench`, "group line"). A line's text (the
/// tracker's id is in it) is looked up by its sender and iteration.
struct Sealing {
    digest: [u8; MEMBERS_DIGEST_LEN],
    texts: Mutex<HashMap<(String, u32), String>>,
}

/// One sender's line, sealed once, and the next iteration to send it as.
struct Sealer {
    line: SealedLine,
    next: u32,
}

impl Sealer {
    fn new(group: &str, from: &str) -> Sealer {
        let mut chain = OwnChain::generate(&mut rand::thread_rng());
        let text = "x".repeat(MESSAGE_BYTES);
        Sealer {
            line: chain.seal(group, from, &text, vec![], vec![]),
            next: 0,
        }
    }
}

impl Sealing {
    fn new(digest: [u8; MEMBERS_DIGEST_LEN]) -> Sealing {
        Sealing {
            digest,
            texts: Mutex::new(HashMap::new()),
        }
    }

    fn seal(&self, group: &str, from: &str, sealer: &Mutex<Sealer>, text: String) -> GroupLine {
        let line = {
            let mut sealer = sealer.lock();
            sealer.line.iteration = sealer.next;
            sealer.next += 1;
            sealer.line.clone()
        };
        self.texts
            .lock()
            .insert((from.to_string(), line.iteration), text);
        GroupLine {
            group: group.to_string(),
            text: String::new(),
            sealed: Some(cbor::encode(&line)),
            members: Some(self.digest.to_vec()),
        }
    }

    /// The text the line `from` sealed carries (the tracker's id is in it).
    fn text_of(&self, from: &str, sealed: &[u8]) -> Option<String> {
        let line: SealedLine = cbor::decode_body(sealed).ok()?;
        self.texts
            .lock()
            .get(&(from.to_string(), line.iteration))
            .cloned()
    }
}

fn fanout_row(name: String, m: usize, tracker: &Tracker, outcome: &load::Outcome) -> Row {
    let deliveries = tracker
        .deliveries
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut row = Row::new(name, "deliveries/s", deliveries, outcome.seconds)
        .with("members", m)
        .with("messages_per_s", outcome.rate());
    row.errors = outcome.errors;
    row.latency = Latency::of(&tracker.latency.lock());
    row.server = outcome.server;
    row.generator = outcome.generator;
    if let Some(e) = &outcome.first_error {
        row = row.with("first_error", e.clone());
    }
    row
}

/// Hands each group message a member receives (alone in a
/// `group-message`, or several in a `group-messages`) to the current
/// tracker.
fn count_group_messages(mut inbound: udpchat_net::Inbox, current: Current) {
    tokio::spawn(async move {
        while let Some(next) = inbound.recv().await {
            let Inbound::Envelope(Arrival { envelope, .. }) = next else {
                continue;
            };
            let messages = if envelope.cmd == GroupMessage::TAG {
                decode_body::<PushBody<GroupMessage>>(&envelope.body).map(|message| vec![message])
            } else if envelope.cmd == GroupMessages::TAG {
                decode_body::<PushBody<GroupMessages>>(&envelope.body).map(|batch| batch.messages)
            } else {
                continue;
            };
            if let Ok(messages) = messages {
                let (tracker, sealing) = current.read().clone();
                for message in &messages {
                    match (&message.sealed, &sealing) {
                        (Some(sealed), Some(sealing)) => {
                            if let Some(text) = sealing.text_of(&message.from, sealed) {
                                tracker.arrived(&text);
                            }
                        }
                        _ => tracker.arrived(&message.text),
                    }
                }
            }
        }
    });
}

/// The same load through an IRC channel of M members.
async fn irc_row(peer: IrcPeer, m: usize, phase: usize, plan: Plan) -> anyhow::Result<Row> {
    let channel = format!("#fan{m}");
    let tracker = Tracker::new(m - 1);
    // Nicks differ per phase: the last phase's clients may still be leaving.
    let letter = char::from(b'a' + (phase % 26) as u8);
    let joined = {
        let (channel, tracker) = (channel.clone(), tracker.clone());
        for_each_bounded(
            &format!("irc: joining {m}"),
            (0..m).collect(),
            IRC_CONNECT_PARALLEL,
            move |i| {
                let (channel, tracker) = (channel.clone(), tracker.clone());
                async move {
                    let mut client =
                        IrcClient::connect(peer.addr, &format!("{letter}{i}"), &channel, tracker)
                            .await?;
                    if i == 0 {
                        client.unthrottle().await?;
                    }
                    client.join(&channel).await?;
                    anyhow::Ok(client.ignore_control())
                }
            },
        )
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<IrcSender>>>()?
    };
    tracker.measure(plan.warmup, plan.measure);
    let name = format!("irc M={m}");
    let outcome = load::closed_loop(
        &name,
        &[(joined[0].clone(), channel.clone(), tracker.clone())],
        plan,
        peer.pid,
        |(sender, channel, tracker)| async move {
            let (id, text) = tracker.text(MESSAGE_BYTES);
            let all = tracker.sent(id);
            sender.privmsg(&channel, &text).await?;
            all.await
        },
    )
    .await;
    let row = fanout_row(name, m, &tracker, &outcome);
    for client in &joined {
        let _ = client.quit().await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(row)
}
