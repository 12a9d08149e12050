//! Simulated clients: each is a [`Link`] (the same tokio driver the real
//! client runs) on a UDP socket of its own, with an encrypted NK session to
//! the server and, once signed up, a user name and an identity key. They
//! speak the commands' own packet types (`udpchat_commands`), encoded
//! with `udpchat_core::packet`, as the real client does; they skip only the
//! shell and the client's dispatcher.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use udpchat_commands::list::{List, ListRequest};
use udpchat_commands::logout::Logout;
use udpchat_commands::lookup::{Lookup, LookupRequest};
use udpchat_commands::signin::{Credentials, SignedIn};
use udpchat_commands::signup::SignUp;
use udpchat_core::context::Zeroizing;
use udpchat_core::crypto::keys::{PublicKey, StaticKey};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::packet::{decode_reply, Encoded, Packet as _, Request};
use udpchat_core::wire::Pattern;
use udpchat_net::{Link, Peer};

use crate::report::Latency;
use crate::server::ServerRef;

/// Sockets bound to one loopback address before moving to the next
/// (127.0.0.2, ...): one address has about 28,000 ephemeral ports.
pub const SOCKETS_PER_ADDRESS: usize = 20_000;

/// The loopback address the `index`th simulated client binds to.
pub fn loopback_for(index: usize) -> IpAddr {
    let n = (index / SOCKETS_PER_ADDRESS) as u32;
    // 127.0.0.1, 127.0.0.2, ... then 127.0.1.0, ...: all of 127/8 is
    // loopback on Linux.
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 1)) + n))
}

/// How often simulated clients ping the server: three times per the
/// server's default presence timeout (30 s), as the real client does.
pub const KEEPALIVE: Duration = Duration::from_secs(10);

/// What a crowd of pinging clients saw while a stretch was measured.
#[derive(Default)]
pub struct Pings {
    measuring: AtomicBool,
    answered: AtomicU64,
    unanswered: AtomicU64,
    latency: parking_lot::Mutex<Option<hdrhistogram::Histogram<u64>>>,
}

impl Pings {
    /// Counts from now on.
    pub fn start(&self) {
        *self.latency.lock() = Some(crate::load::histogram());
        self.measuring.store(true, Ordering::Relaxed);
    }

    pub fn stop(&self) {
        self.measuring.store(false, Ordering::Relaxed);
    }

    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    pub fn unanswered(&self) -> u64 {
        self.unanswered.load(Ordering::Relaxed)
    }

    pub fn latency(&self) -> Option<Latency> {
        self.latency.lock().as_ref().and_then(Latency::of)
    }

    fn record(&self, answered: bool, took: Duration) {
        if !self.measuring.load(Ordering::Relaxed) {
            return;
        }
        if answered {
            self.answered.fetch_add(1, Ordering::Relaxed);
            if let Some(h) = self.latency.lock().as_mut() {
                h.saturating_record(crate::load::micros(took).max(1));
            }
        } else {
            self.unanswered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Pings every `every` (first after a random part of it, so a crowd's
/// pings are spread evenly), as the real client keeps alive, telling
/// `pings` whether each was answered and how soon; stops when the
/// returned guard drops.
pub fn keep_pinging<F, Fut>(every: Duration, pings: Arc<Pings>, mut ping: F) -> AbortOnDrop
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    AbortOnDrop(tokio::spawn(async move {
        tokio::time::sleep(every.mul_f64(rand::random::<f64>())).await;
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let t0 = std::time::Instant::now();
            let answered = ping().await;
            pings.record(answered, t0.elapsed());
        }
    }))
}

/// The password every simulated user has.
pub fn password_of(user: &str) -> String {
    format!("bench password of {user}")
}

/// A client with a session to the server.
#[derive(Clone)]
pub struct SimClient {
    pub link: Link,
    pub server: Peer,
    pub user: String,
    pub identity: Arc<StaticKey>,
    keepalive: Option<Arc<AbortOnDrop>>,
}

/// Stops a task when dropped.
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl std::fmt::Debug for SimClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimClient")
            .field("user", &self.user)
            .finish()
    }
}

/// A command's error as the bench reports it (`code: message`), its code
/// still readable with [`code_of`].
#[derive(Debug)]
pub struct Refused(pub CommandError);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.code, self.0.message)
    }
}

impl std::error::Error for Refused {}

/// A command's error as an `anyhow::Error` (shown as `code: message`).
pub fn command_error(e: CommandError) -> anyhow::Error {
    anyhow::Error::new(Refused(e))
}

/// The code of a command's error, if `e` is one.
pub fn code_of(e: &anyhow::Error) -> Option<&Code> {
    e.downcast_ref::<Refused>().map(|r| &r.0.code)
}

/// A Link on a fresh socket at `ip`.
pub async fn open_link(ip: IpAddr) -> anyhow::Result<(Link, udpchat_net::Inbox)> {
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0))
        .await
        .with_context(|| format!("cannot bind a UDP socket on {ip}"))?;
    Ok(Link::spawn_client(socket)?)
}

/// Throws away what arrives (pings, pushes the scenario does not count),
/// so the channel does not grow.
pub fn drain(mut inbound: udpchat_net::Inbox) {
    tokio::spawn(async move { while inbound.recv().await.is_some() {} });
}

impl SimClient {
    /// Opens a Link at `ip` and an NK session to the server; nobody is
    /// signed in on it yet. The inbound channel is returned to the caller.
    pub async fn connect(
        server: &ServerRef,
        ip: IpAddr,
        user: String,
    ) -> anyhow::Result<(SimClient, udpchat_net::Inbox)> {
        let identity = Arc::new(StaticKey::generate(&mut rand::rngs::OsRng));
        SimClient::connect_as(server, ip, user, identity).await
    }

    /// The same for a user whose identity key is already made (to sign in
    /// again to an account from a new client, as a person would).
    pub async fn connect_as(
        server: &ServerRef,
        ip: IpAddr,
        user: String,
        identity: Arc<StaticKey>,
    ) -> anyhow::Result<(SimClient, udpchat_net::Inbox)> {
        let (link, inbound) = open_link(ip).await?;
        let client = SimClient::on_link_as(&link, server, user, identity).await?;
        link.set_identity(Some((*client.identity).clone()));
        Ok((client, inbound))
    }

    /// A session of its own on a Link other clients may share (the server
    /// tells sessions apart, not addresses).
    pub async fn on_link(
        link: &Link,
        server: &ServerRef,
        user: String,
    ) -> anyhow::Result<SimClient> {
        let identity = Arc::new(StaticKey::generate(&mut rand::rngs::OsRng));
        SimClient::on_link_as(link, server, user, identity).await
    }

    /// The same with an identity key already made.
    pub async fn on_link_as(
        link: &Link,
        server: &ServerRef,
        user: String,
        identity: Arc<StaticKey>,
    ) -> anyhow::Result<SimClient> {
        let peer = link
            .connect(server.addr, server.key.clone(), Pattern::Nk)
            .await
            .map_err(command_error)?;
        Ok(SimClient {
            link: link.clone(),
            server: peer,
            user,
            identity,
            keepalive: None,
        })
    }

    /// `R` (`SignUp` or `SignIn`) with this client's name, password and
    /// identity.
    pub async fn sign<R>(&self) -> anyhow::Result<()>
    where
        R: Request<Body = Credentials, Reply = SignedIn>,
    {
        let credentials = Credentials {
            user: self.user.clone(),
            password: Zeroizing::new(password_of(&self.user)),
            identity: self.identity.public(),
            local: Vec::new(),
            replace_key: None,
        };
        let signed = self.ask::<R>(&credentials).await?;
        if signed.user != self.user {
            return Err(anyhow!(
                "{}: signed in as {} not {}",
                R::TAG,
                signed.user,
                self.user
            ));
        }
        Ok(())
    }

    /// `logout`: the name is free again for another client.
    pub async fn sign_out(&self) -> anyhow::Result<()> {
        self.request(Encoded::request::<Logout>(&()))
            .await
            .map(|_| ())
    }

    /// A request to the server; the reply's body undecoded, or the error.
    pub async fn request(&self, request: Encoded) -> anyhow::Result<Vec<u8>> {
        self.link
            .request(self.server, request)
            .await
            .map_err(command_error)
    }

    /// A request to the server and its decoded reply, or the error.
    pub async fn ask<R: Request>(&self, body: &R::Body) -> anyhow::Result<R::Reply> {
        let reply = self.request(Encoded::request::<R>(body)).await?;
        decode_reply(&reply).map_err(|e| anyhow!("{}: {e}", R::TAG))
    }

    /// Sends the server a keepalive every `every`, as the real client does
    /// (three times per presence timeout), until the last clone of this client
    /// drops; the first ping comes after a random part of `every`, so many
    /// clients spread out.
    pub fn keep_alive(&mut self, every: Duration) {
        let (link, server) = (self.link.clone(), self.server);
        let task = tokio::spawn(async move {
            let first = every.mul_f64(rand::random::<f64>());
            tokio::time::sleep(first).await;
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let _ = link.keep_alive(server).await;
            }
        });
        self.keepalive = Some(Arc::new(AbortOnDrop(task)));
    }

    /// `list`'s `total`: how many others are signed in.
    pub async fn list_total(&self) -> anyhow::Result<usize> {
        Ok(self.list().await?.total)
    }

    /// `list`: how many names came and how many are signed in. The names
    /// are checked (CBOR text, one per entry) and counted, not kept: a
    /// load generator that builds them spent a fifth of its CPU on it
    /// (PERFORMANCE.md, twelfth part), and a real client lists rarely.
    pub async fn list(&self) -> anyhow::Result<Listed> {
        let reply = self
            .request(Encoded::request::<List>(&ListRequest::default()))
            .await?;
        let listed: Listed = decode_reply(&reply).map_err(|e| anyhow!("{}: {e}", List::TAG))?;
        if listed.names > listed.total || (listed.names == 0 && listed.total > 0) {
            return Err(anyhow!(
                "{}: {} names of {} signed in",
                List::TAG,
                listed.names,
                listed.total
            ));
        }
        Ok(listed)
    }

    /// `lookup`: where `user`'s client is and its identity key.
    pub async fn lookup(&self, user: &str) -> anyhow::Result<(SocketAddr, PublicKey)> {
        let found = self
            .ask::<Lookup>(&LookupRequest {
                user: user.to_string(),
                meet: false,
            })
            .await?;
        let addr = found
            .addr
            .parse()
            .map_err(|_| anyhow!("{}: bad address {}", Lookup::TAG, found.addr))?;
        Ok((addr, found.identity))
    }
}

/// Connects and signs up `count` clients named `PREFIX-i`, at most
/// `parallel` at once (each sign-up costs the server an argon2 hash);
/// their inbound channels are drained.
pub async fn sign_up_many(
    server: &ServerRef,
    prefix: &str,
    count: usize,
    parallel: usize,
) -> anyhow::Result<Vec<SimClient>> {
    let server = server.clone();
    let items: Vec<usize> = (0..count).collect();
    let prefix = prefix.to_string();
    let results =
        crate::load::for_each_bounded(&format!("signing up {count}"), items, parallel, move |i| {
            let server = server.clone();
            let user = format!("{prefix}-{i}");
            async move {
                let (mut client, inbound) =
                    SimClient::connect(&server, loopback_for(i), user).await?;
                drain(inbound);
                client.sign::<SignUp>().await?;
                client.keep_alive(KEEPALIVE);
                anyhow::Ok(client)
            }
        })
        .await;
    results.into_iter().collect()
}

/// A `list` reply (`udpchat_commands::list::Users`), its names counted.
#[derive(Debug, serde::Deserialize)]
pub struct Listed {
    #[serde(rename = "users", deserialize_with = "count_names")]
    pub names: usize,
    pub total: usize,
}

/// Counts a sequence of strings without keeping them.
fn count_names<'de, D: serde::Deserializer<'de>>(names: D) -> Result<usize, D::Error> {
    struct Count;
    impl<'de> serde::de::Visitor<'de> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of names")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut count = 0;
            while seq.next_element::<Name>()?.is_some() {
                count += 1;
            }
            Ok(count)
        }
    }
    /// A name, checked to be text and dropped.
    struct Name;
    impl<'de> serde::Deserialize<'de> for Name {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
            struct Text;
            impl serde::de::Visitor<'_> for Text {
                type Value = Name;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a name")
                }
                fn visit_str<E>(self, _: &str) -> Result<Name, E> {
                    Ok(Name)
                }
            }
            d.deserialize_str(Text)
        }
    }
    names.deserialize_seq(Count)
}

#[cfg(test)]
mod tests {
    use udpchat_commands::list::Users;
    use udpchat_core::cbor;

    use super::*;

    #[test]
    fn a_list_reply_is_counted_and_a_name_that_is_not_text_refused() {
        let users = Users {
            users: vec!["alice".into(), "bob".into()],
            total: 5,
        };
        let listed: Listed = decode_reply(&cbor::encode(&users)).unwrap();
        assert_eq!((listed.names, listed.total), (2, 5));
        let numbers = serde_json::json!({ "users": [1, 2], "total": 2 });
        assert!(decode_reply::<Listed>(&cbor::encode(&numbers)).is_err());
    }
}
