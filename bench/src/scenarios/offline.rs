//! `offline`: N messages for a user who is offline, queued on the server
//! and then drained when the user signs in, as the real clients do it:
//!
//! - queue, the sender's whole path: `bundle` (the recipient's prekeys),
//!   seal (X3DH-shaped, four P-384 Diffie-Hellman in this process), then
//!   `deposit`, whose reply comes once the server's store has committed;
//! - queue, `deposit` alone of messages sealed beforehand: the server's
//!   side of it;
//! - drain: the recipient signs in; the server pushes every `stored`
//!   message; the recipient opens each and sends its `receipt` (the server
//!   then deletes it). Timed from the sign-in request to the last receipt
//!   answered.
//!
//! The server keeps at most 1000 messages per recipient, so N is split
//! over as many recipients as that takes.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use udpchat_commands::bundle::{BundleOf, BundleRequest};
use udpchat_commands::deposit::{Deposit, DepositBody};
use udpchat_commands::prekeys::Prekeys as UploadPrekeys;
use udpchat_commands::receipt::{Receipt, ReceiptBody};
use udpchat_commands::signin::SignIn;
use udpchat_commands::signup::SignUp;
use udpchat_commands::stored::{Handover, StoredMail};
use udpchat_core::cbor;
use udpchat_core::crypto::sealed::{self, Prekeys, SealedMessage};
use udpchat_core::mailbox::{associated, Bundle, PrekeyUpload, ONE_TIME_TARGET};
use udpchat_core::packet::{Encoded, Packet as _};
use udpchat_net::{Arrival, Inbound};

use super::{params_with, Ctx};
use crate::clients::{drain, loopback_for, SimClient, KEEPALIVE};
use crate::load::{for_each_bounded, histogram, micros};
use crate::procfs::Watch;
use crate::report::{Latency, Report, Row};

/// Messages the server keeps for one recipient at most.
const PER_RECIPIENT: usize = 1000;
/// Requests the sender keeps outstanding.
const WINDOW: usize = 8;
/// Stored messages the recipient opens and acknowledges at once.
const DRAIN_PARALLEL: usize = 8;

/// A recipient: its client, the prekeys it published, and what the
/// server pushes to it.
struct Recipient {
    client: SimClient,
    prekeys: Arc<Mutex<Prekeys>>,
    inbound: udpchat_net::Inbox,
}

async fn recipient(
    ctx: &Ctx,
    target: &crate::server::Target,
    i: usize,
) -> anyhow::Result<Recipient> {
    let user = format!("{}-{i}", ctx.users("away"));
    let (mut client, inbound) =
        SimClient::connect(&target.server, loopback_for(i + 1), user).await?;
    client.sign::<SignUp>().await?;
    client.keep_alive(KEEPALIVE);
    let mut rng = rand::rngs::OsRng;
    let mut prekeys = Prekeys::generate(&mut rng, &client.identity, 1);
    let one_time = prekeys.generate_one_time(&mut rng, ONE_TIME_TARGET as u32, 1);
    let upload = PrekeyUpload {
        signed: prekeys.signed_prekey(),
        one_time,
    };
    client.ask::<UploadPrekeys>(&upload).await?;
    client.sign_out().await?;
    Ok(Recipient {
        client,
        prekeys: Arc::new(Mutex::new(prekeys)),
        inbound,
    })
}

/// Seals `text` from `sender` for the bundle's user.
fn seal(sender: &SimClient, bundle: &Bundle, text: &str) -> anyhow::Result<SealedMessage> {
    sealed::seal(
        &mut rand::rngs::OsRng,
        &sender.identity,
        &bundle.identity,
        &bundle.signed,
        bundle.one_time.as_ref(),
        text.as_bytes(),
        &associated(&sender.user, &bundle.user),
    )
    .map_err(|e| anyhow::anyhow!("seal: {e}"))
}

async fn bundle(sender: &SimClient, user: &str) -> anyhow::Result<Bundle> {
    sender
        .ask::<BundleOf>(&BundleRequest {
            user: user.to_string(),
            signed_only: false,
        })
        .await
}

async fn deposit(sender: &SimClient, to: &str, sealed: &SealedMessage) -> anyhow::Result<()> {
    sender
        .ask::<Deposit>(&DepositBody {
            to: to.to_string(),
            sealed: cbor::encode(sealed),
        })
        .await?;
    Ok(())
}

/// Runs `jobs` with [`WINDOW`] at once; one row of their rate and latency.
async fn timed<F, Fut>(name: &str, count: usize, job: F) -> Row
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let started = Instant::now();
    let results = for_each_bounded(name, (0..count).collect(), WINDOW, move |i| {
        let job = job(i);
        async move {
            let t0 = Instant::now();
            job.await.map(|()| t0.elapsed())
        }
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let mut hist = histogram();
    let mut errors = 0;
    let mut first_error = None;
    for result in results {
        match result {
            Ok(took) => {
                hist.saturating_record(micros(took).max(1));
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let mut row = Row::new(name, "msg/s", hist.len(), seconds);
    row.errors = errors;
    row.latency = Latency::of(&hist);
    if let Some(e) = first_error {
        row = row.with("first_error", e);
    }
    row
}

pub async fn run(ctx: &Ctx, messages: usize) -> anyhow::Result<Report> {
    let messages = messages.max(2);
    let recipients = messages.div_ceil(PER_RECIPIENT);
    let mut report = Report::new(
        "offline",
        params_with(
            ctx,
            serde_json::json!({ "messages": messages, "recipients": recipients, "window": WINDOW }),
        ),
    );
    let target = ctx.server()?;
    let (mut sender, sender_inbound) = SimClient::connect(
        &target.server,
        loopback_for(0),
        format!("{}-0", ctx.users("sender")),
    )
    .await?;
    drain(sender_inbound);
    sender.sign::<SignUp>().await?;
    sender.keep_alive(KEEPALIVE);
    let mut away = Vec::with_capacity(recipients);
    for i in 0..recipients {
        away.push(recipient(ctx, &target, i).await?);
    }
    let names: Arc<Vec<String>> = Arc::new(away.iter().map(|r| r.client.user.clone()).collect());
    let to = move |i: usize| names[i % names.len()].clone();

    // The sender's whole path, for the first half.
    let full = messages / 2;
    let watch = Watch::start(target.pid);
    let mut queue_full = {
        let (sender, to) = (sender.clone(), to.clone());
        timed("queue: bundle+seal+deposit", full, move |i| {
            let (sender, to) = (sender.clone(), to(i));
            async move {
                let bundle = bundle(&sender, &to).await?;
                let sealed = seal(&sender, &bundle, &format!("offline message {i}"))?;
                deposit(&sender, &to, &sealed).await
            }
        })
        .await
    };
    queue_full.server = watch.usage();

    // The server's side alone for the rest: sealed beforehand.
    let rest = messages - full;
    let mut bundles = Vec::with_capacity(recipients);
    for name in away.iter().map(|r| r.client.user.clone()) {
        bundles.push(bundle(&sender, &name).await?);
    }
    let sealed: Arc<Vec<(String, SealedMessage)>> = Arc::new(
        (0..rest)
            .map(|i| {
                let b = &bundles[i % bundles.len()];
                // Without the one-time prekey: each is handed out once.
                let b = Bundle {
                    one_time: None,
                    ..b.clone()
                };
                Ok((
                    b.user.clone(),
                    seal(&sender, &b, &format!("offline message {}", full + i))?,
                ))
            })
            .collect::<anyhow::Result<_>>()?,
    );
    let watch = Watch::start(target.pid);
    let mut queue_deposit = {
        let sender = sender.clone();
        timed("queue: deposit", rest, move |i| {
            let (sender, sealed) = (sender.clone(), sealed.clone());
            async move {
                let (to, message) = &sealed[i];
                deposit(&sender, to, message).await
            }
        })
        .await
    };
    queue_deposit.server = watch.usage();

    // Drain: every recipient signs in and takes its messages.
    let watch = Watch::start(target.pid);
    let started = Instant::now();
    let mut drains = Vec::new();
    for r in away {
        let expected = (0..messages).filter(|i| to(*i) == r.client.user).count();
        drains.push(tokio::spawn(drain_one(r, expected)));
    }
    let mut drained = 0;
    let mut hist = histogram();
    let mut errors = 0;
    for d in drains {
        let (ok, failed, h) = d.await??;
        drained += ok;
        errors += failed;
        let _ = hist.add(&h);
    }
    let mut drain_row = Row::new(
        "drain: stored+open+receipt",
        "msg/s",
        drained,
        started.elapsed().as_secs_f64(),
    );
    drain_row.errors = errors;
    drain_row.latency = Latency::of(&hist);
    drain_row.server = watch.usage();

    report.rows.push(queue_full.with("count", full));
    report.rows.push(queue_deposit.with("count", rest));
    report.rows.push(drain_row.with("count", messages));
    report.note(format!(
        "{messages} messages for {recipients} offline recipient(s); the sender keeps {WINDOW} requests outstanding; sealing and opening (P-384 X3DH) run in the bench process; drain latency = sign-in request to each receipt's answer"
    ));
    Ok(report)
}

/// Signs `r` in and opens and acknowledges `expected` stored messages.
async fn drain_one(
    mut r: Recipient,
    expected: usize,
) -> anyhow::Result<(u64, u64, hdrhistogram::Histogram<u64>)> {
    let started = Instant::now();
    let signin = {
        let client = r.client.clone();
        tokio::spawn(async move { client.sign::<SignIn>().await })
    };
    let limit = Arc::new(tokio::sync::Semaphore::new(DRAIN_PARALLEL));
    let mut acks = Vec::with_capacity(expected);
    while acks.len() < expected {
        let next = tokio::time::timeout(udpchat_net::REPLY_TIMEOUT, r.inbound.recv()).await;
        let Ok(Some(Inbound::Envelope(Arrival { envelope, .. }))) = next else {
            break;
        };
        if envelope.cmd != StoredMail::TAG {
            continue;
        }
        let Handover { message, .. } = cbor::decode_body(&envelope.body)
            .map_err(|e| anyhow::anyhow!("{}: {e}", StoredMail::TAG))?;
        let permit = limit.clone().acquire_owned().await?;
        let (client, prekeys) = (r.client.clone(), r.prekeys.clone());
        acks.push(tokio::spawn(async move {
            let _permit = permit;
            let sealed: SealedMessage =
                cbor::decode_body(&message.sealed).map_err(|e| anyhow::anyhow!("sealed: {e}"))?;
            prekeys
                .lock()
                .open(
                    &client.identity,
                    &sealed,
                    &associated(&message.from, &message.to),
                )
                .map_err(|e| anyhow::anyhow!("open: {e}"))?;
            client
                .request(Encoded::request::<Receipt>(&ReceiptBody { id: message.id }))
                .await?;
            anyhow::Ok(started.elapsed())
        }));
    }
    signin.await??;
    let mut hist = histogram();
    let (mut ok, mut failed) = (0u64, 0u64);
    for ack in acks {
        match ack.await? {
            Ok(took) => {
                ok += 1;
                hist.saturating_record(micros(took).max(1));
            }
            Err(_) => failed += 1,
        }
    }
    failed += (expected as u64).saturating_sub(ok + failed);
    Ok((ok, failed, hist))
}
