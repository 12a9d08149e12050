//! The cluster's rows and events in PostgreSQL: each node's row and
//! heartbeat (`nodes`), who is signed in where (`signed_in`), and the
//! `udpchat` channel that carries [`Event`]s. Every write that others must
//! hear of sends its event in the same transaction, so an event goes out
//! exactly when what it tells of is committed.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{Event, Heard};
use crate::store::{Cached as _, PgStore, StoreError};

/// The channel every node listens on.
pub const CHANNEL: &str = "udpchat";

/// A user signed in on some node, as its row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedInRow {
    pub user: String,
    pub node: String,
    pub addr: SocketAddr,
    pub local: Vec<SocketAddr>,
}

fn row(row: &tokio_postgres::Row) -> Option<SignedInRow> {
    Some(SignedInRow {
        user: row.get(0),
        node: row.get(1),
        addr: row.get::<_, String>(2).parse().ok()?,
        local: row
            .get::<_, Vec<String>>(3)
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect(),
    })
}

/// A node as its row says.
#[derive(Debug, Clone)]
pub struct NodeRow {
    pub id: String,
    pub addr: String,
    pub started: String,
    /// Since its last heartbeat.
    pub silent_for: Duration,
    /// Users signed in on it.
    pub users: usize,
    /// Its load at its last heartbeat (JSON), if it wrote one yet.
    pub load: Option<String>,
}

const SIGNED_IN: &str = "SELECT s.user_name, s.node, s.client_addr, s.local_addrs
    FROM signed_in s JOIN nodes n ON n.id = s.node";

impl PgStore {
    /// Adds (or refreshes) this node's row.
    pub fn join(&self, addr: SocketAddr) -> Result<(), StoreError> {
        self.run(async {
            self.execute(
                "INSERT INTO nodes (id, addr) VALUES ($1, $2)
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()",
                &[&self.node(), &addr.to_string()],
            )
            .await?;
            Ok(())
        })
    }

    /// Refreshes this node's row with its `load` (JSON; false if the others deleted it: they
    /// thought this node dead), then deletes the nodes whose heartbeat is
    /// older than `expire`, telling everyone.
    pub fn heartbeat(&self, expire: Duration, load: &str) -> Result<bool, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let alive = client
                .cached_execute(
                    "UPDATE nodes SET heartbeat_at = now(), load = $2 WHERE id = $1",
                    &[&self.node(), &load],
                )
                .await?
                > 0;
            client
                .cached_execute(
                    "WITH dead AS (
                        DELETE FROM nodes WHERE heartbeat_at < now() - make_interval(secs => $1)
                        RETURNING id)
                     SELECT pg_notify($2, json_build_object('k', 'node-down', 'node', id)::text)
                     FROM dead",
                    &[&expire.as_secs_f64(), &CHANNEL],
                )
                .await?;
            Ok(alive)
        })
    }

    /// Deletes this node's row, and with it who was signed in here,
    /// telling everyone (the node is going down).
    pub fn leave(&self) -> Result<(), StoreError> {
        self.run(async {
            self.execute(
                "WITH gone AS (DELETE FROM nodes WHERE id = $1 RETURNING id)
                     SELECT pg_notify($2, json_build_object('k', 'node-down', 'node', id)::text)
                     FROM gone",
                &[&self.node(), &CHANNEL],
            )
            .await?;
            Ok(())
        })
    }

    /// `user` is signed in here, at `addr`: takes the row from whichever
    /// node had it, and tells everyone.
    pub fn publish_sign_in(
        &self,
        user: &str,
        addr: SocketAddr,
        local: &[SocketAddr],
    ) -> Result<(), StoreError> {
        let local: Vec<String> = local.iter().map(ToString::to_string).collect();
        let event = Event::SignedIn {
            node: self.node().to_string(),
            user: user.to_string(),
        }
        .encode();
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            tx.cached_execute(
                "INSERT INTO signed_in (user_name, node, client_addr, local_addrs)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_name) DO UPDATE SET node = excluded.node,
                     client_addr = excluded.client_addr, local_addrs = excluded.local_addrs,
                     since = now()",
                &[&user, &self.node(), &addr.to_string(), &local],
            )
            .await?;
            tx.cached_execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &event])
                .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// `user` signed out here (if the row is still this node's: it may
    /// have been taken by another), telling everyone.
    pub fn publish_sign_out(&self, user: &str) -> Result<(), StoreError> {
        let event = Event::SignedOut {
            node: self.node().to_string(),
            user: user.to_string(),
        }
        .encode();
        self.run(async {
            self.execute(
                "WITH gone AS (
                        DELETE FROM signed_in WHERE user_name = $1 AND node = $2
                        RETURNING user_name)
                     SELECT pg_notify($3, $4) FROM gone",
                &[&user, &self.node(), &CHANNEL, &event],
            )
            .await?;
            Ok(())
        })
    }

    /// The client signed in as `user` here is at `addr` now (if the row is
    /// still this node's), telling everyone.
    pub fn publish_moved(&self, user: &str, addr: SocketAddr) -> Result<(), StoreError> {
        let event = Event::Moved {
            node: self.node().to_string(),
            user: user.to_string(),
        }
        .encode();
        self.run(async {
            self.execute(
                "WITH moved AS (
                        UPDATE signed_in SET client_addr = $3
                        WHERE user_name = $1 AND node = $2
                        RETURNING user_name)
                     SELECT pg_notify($4, $5) FROM moved",
                &[&user, &self.node(), &addr.to_string(), &CHANNEL, &event],
            )
            .await?;
            Ok(())
        })
    }

    /// Sends `event` to every node.
    pub fn notify(&self, event: &Event) -> Result<(), StoreError> {
        let event = event.encode();
        self.run(async {
            self.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &event])
                .await?;
            Ok(())
        })
    }

    /// Where `user` is signed in (on a node that is up), if anywhere.
    pub fn where_signed_in(&self, user: &str) -> Result<Option<SignedInRow>, StoreError> {
        self.run(async {
            let found = self
                .query_opt(&format!("{SIGNED_IN} WHERE s.user_name = $1"), &[&user])
                .await?;
            Ok(found.as_ref().and_then(row))
        })
    }

    /// Everyone signed in on the other nodes.
    pub fn signed_in_elsewhere(&self) -> Result<Vec<SignedInRow>, StoreError> {
        self.run(async {
            let rows = self
                .query(&format!("{SIGNED_IN} WHERE s.node <> $1"), &[&self.node()])
                .await?;
            Ok(rows.iter().filter_map(row).collect())
        })
    }

    /// Every node's row, oldest first, with how many users are signed in
    /// on it and how long ago it last heartbeat.
    pub fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        self.run(async {
            let rows = self
                .query(
                    "SELECT n.id, n.addr, to_char(n.started_at, 'YYYY-MM-DD HH24:MI:SS TZ'),
                            extract(epoch FROM now() - n.heartbeat_at)::float8,
                            (SELECT count(*) FROM signed_in s WHERE s.node = n.id),
                            n.load
                     FROM nodes n ORDER BY n.started_at, n.id",
                    &[],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|row| NodeRow {
                    id: row.get(0),
                    addr: row.get(1),
                    started: row.get(2),
                    silent_for: Duration::from_secs_f64(row.get::<_, f64>(3).max(0.0)),
                    users: row.get::<_, i64>(4) as usize,
                    load: row.get(5),
                })
                .collect())
        })
    }

    /// Listens on the channel, on a connection of its own, for as long as
    /// the store lives: every event heard, and [`Heard::Listening`] each
    /// time listening (re)starts (what was missed meanwhile must be read
    /// again). A lost connection is made again after `retry`.
    pub fn listen(&self, retry: Duration) -> mpsc::UnboundedReceiver<Heard> {
        let (heard, events) = mpsc::unbounded_channel();
        let (config, tls) = (self.config().clone(), self.tls().cloned());
        self.spawn(async move {
            while !heard.is_closed() {
                let listened = match tls.clone() {
                    Some(tls) => listen_once(&config, tls, &heard).await,
                    None => listen_once(&config, NoTls, &heard).await,
                };
                if let Err(e) = listened {
                    tracing::warn!("cluster: not listening to the other nodes: {e}");
                }
                tokio::time::sleep(retry).await;
            }
        });
        events
    }
}

/// Listens until the connection breaks or nobody hears any more.
async fn listen_once<T>(
    config: &tokio_postgres::Config,
    tls: T,
    heard: &mpsc::UnboundedSender<Heard>,
) -> Result<(), tokio_postgres::Error>
where
    T: tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>,
    T::Stream: Send + 'static,
{
    let (client, mut connection) = config.connect(tls).await?;
    let (messages, mut incoming) = mpsc::unbounded_channel();
    // The connection is driven here; its notifications come out below.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if messages.send(n.payload().to_string()).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    if heard.send(Heard::Listening).is_err() {
        return Ok(());
    }
    while let Some(payload) = incoming.recv().await {
        match Event::decode(&payload) {
            Some(event) => {
                if heard.send(Heard::Event(event)).is_err() {
                    return Ok(());
                }
            }
            None => tracing::warn!(payload, "cluster: an event not understood"),
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
