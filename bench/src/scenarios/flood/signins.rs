//! The honest sign-ins beside the flood: a fresh client every
//! [`PROBE_EVERY`], each to an account of its own, timed from its connect
//! to its sign-in reply.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use udpchat_commands::signin::SignIn;
use udpchat_core::crypto::keys::StaticKey;

use super::{PROBE_EVERY, PROBE_TIMEOUT, SIGNIN_TARGET};
use crate::clients::{drain, SimClient};
use crate::load::{histogram, micros};
use crate::report::{Latency, Row};
use crate::server::ServerRef;

/// The sign-ins of one phase (those started in its measured stretch).
pub(super) struct Signins {
    hist: hdrhistogram::Histogram<u64>,
    pub(super) failed: u64,
    pub(super) within_target: u64,
    seconds: f64,
    first_error: Option<String>,
}

impl Signins {
    pub(super) fn latency(&self) -> Option<Latency> {
        Latency::of(&self.hist)
    }

    pub(super) fn started(&self) -> u64 {
        self.hist.len() + self.failed
    }

    pub(super) fn row(&self, phase: &str) -> Row {
        let mut row = Row::new(
            format!("sign-in, {phase}"),
            "signins/s",
            self.hist.len(),
            self.seconds,
        )
        .with("started", self.started())
        .with("within_2s", self.within_target);
        row.errors = self.failed;
        row.latency = self.latency();
        if let Some(e) = &self.first_error {
            row = row.with("first_error", e.clone());
        }
        row
    }
}

/// The loopback address of the `n`th sign-in's client: 127.0.1.1 to
/// 127.0.1.250, away from the load's 127.0.0.1 and the attackers.
fn probe_ip(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1 + (n % 250) as u8))
}

/// A user name and its identity key.
pub(super) type Account = (String, Arc<StaticKey>);

/// Every [`PROBE_EVERY`] until `stop_at` (or the accounts run out), a
/// fresh client signs in to the next account (open loop: one does not
/// wait for the last). Counts those started from `measure_from`.
pub(super) async fn sign_ins(
    server: ServerRef,
    accounts: Vec<Account>,
    measure_from: Instant,
    stop_at: Instant,
) -> Signins {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    let mut tasks = Vec::new();
    for (n, (user, identity)) in accounts.into_iter().enumerate() {
        tick.tick().await;
        let t0 = Instant::now();
        if t0 >= stop_at {
            break;
        }
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let signed =
                tokio::time::timeout(PROBE_TIMEOUT, sign_in(&server, probe_ip(n), user, identity))
                    .await;
            let result = match signed {
                Ok(result) => result,
                Err(_) => Err(anyhow::anyhow!(
                    "not signed in after {} s",
                    PROBE_TIMEOUT.as_secs()
                )),
            };
            (t0, t0.elapsed(), result)
        }));
    }
    let mut signins = Signins {
        hist: histogram(),
        failed: 0,
        within_target: 0,
        seconds: stop_at
            .saturating_duration_since(measure_from)
            .as_secs_f64(),
        first_error: None,
    };
    for task in tasks {
        let Ok((t0, took, result)) = task.await else {
            continue;
        };
        if t0 < measure_from {
            continue;
        }
        match result {
            Ok(()) => {
                signins.hist.saturating_record(micros(took).max(1));
                if took <= SIGNIN_TARGET {
                    signins.within_target += 1;
                }
            }
            Err(e) => {
                signins.failed += 1;
                signins.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    signins
}

/// A new client on its own socket: NK session, then `signin`.
async fn sign_in(
    server: &ServerRef,
    ip: IpAddr,
    user: String,
    identity: Arc<StaticKey>,
) -> anyhow::Result<()> {
    let (client, inbound) = SimClient::connect_as(server, ip, user, identity).await?;
    drain(inbound);
    client.sign::<SignIn>().await
}
