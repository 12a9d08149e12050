//! The IRC side of `fanout`: M plain IRC clients (TCP, RFC 2812 lines) in
//! one channel of a real IRC server (ngircd, started by
//! `bench/peers/ngircd.sh`), one of them sending `PRIVMSG #channel` lines
//! that the server relays to the others. The sender becomes an IRC
//! operator and sets user mode `+F` (ngircd's "relaxed flood
//! protection"), or ngircd would hold it to a few lines a second: that
//! limit protects a public server from a flooding user, and udpchat has no
//! such limit, so measuring it would compare policies, not servers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};

use crate::fanout_track::Tracker;

/// The operator block `ngircd.sh` writes into its config.
pub const OPER_NAME: &str = "bench";
pub const OPER_PASSWORD: &str = "bench";

/// How long registration, joining and becoming operator may take.
const STEP_WAIT: Duration = Duration::from_secs(30);

/// One connection; lines the server sends that are not PRIVMSGs to the
/// channel come out of `control`.
pub struct IrcClient {
    pub nick: String,
    writer: Arc<Mutex<OwnedWriteHalf>>,
    control: mpsc::UnboundedReceiver<String>,
}

impl IrcClient {
    /// Connects and registers as `nick`; PRIVMSGs to `channel` go to
    /// `tracker`, PINGs are answered.
    pub async fn connect(
        addr: SocketAddr,
        nick: &str,
        channel: &str,
        tracker: Arc<Tracker>,
    ) -> anyhow::Result<IrcClient> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot reach the IRC server at {addr}"))?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let writer = Arc::new(Mutex::new(write));
        let (control_tx, control) = mpsc::unbounded_channel();
        {
            let writer = writer.clone();
            let privmsg = format!(" PRIVMSG {channel} :");
            tokio::spawn(async move {
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(at) = line.find(&privmsg) {
                        tracker.arrived(&line[at + privmsg.len()..]);
                    } else if let Some(token) = line.strip_prefix("PING ") {
                        let pong = format!("PONG {token}\r\n");
                        let _ = writer.lock().await.write_all(pong.as_bytes()).await;
                    } else if control_tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut client = IrcClient {
            nick: nick.to_string(),
            writer,
            control,
        };
        client
            .send(&format!(
                "NICK {nick}\r\nUSER {nick} 0 * :udpchat-bench\r\n"
            ))
            .await?;
        client.expect(" 001 ").await.context("IRC registration")?;
        Ok(client)
    }

    pub async fn send(&self, lines: &str) -> anyhow::Result<()> {
        self.writer
            .lock()
            .await
            .write_all(lines.as_bytes())
            .await
            .context("IRC write")
    }

    /// Waits for a line containing `needle`; an `ERROR` line or a closed
    /// connection fails.
    async fn expect(&mut self, needle: &str) -> anyhow::Result<String> {
        let wait = async {
            while let Some(line) = self.control.recv().await {
                if line.contains(needle) {
                    return Ok(line);
                }
                if line.starts_with("ERROR") || is_error_numeric(&line) {
                    bail!("the IRC server said: {line}");
                }
            }
            Err(anyhow!("the IRC server closed the connection"))
        };
        tokio::time::timeout(STEP_WAIT, wait).await.map_err(|_| {
            anyhow!(
                "no {needle:?} from the IRC server in {}s",
                STEP_WAIT.as_secs()
            )
        })?
    }

    /// Joins `channel` and waits until the server confirms it (end of the
    /// NAMES list).
    pub async fn join(&mut self, channel: &str) -> anyhow::Result<()> {
        self.send(&format!("JOIN {channel}\r\n")).await?;
        self.expect(" 366 ").await.map(|_| ())
    }

    /// Becomes operator and sets `+F`, so ngircd does not throttle it.
    pub async fn unthrottle(&mut self) -> anyhow::Result<()> {
        self.send(&format!("OPER {OPER_NAME} {OPER_PASSWORD}\r\n"))
            .await?;
        self.expect(" 381 ").await.context("OPER")?;
        self.send(&format!("MODE {} +F\r\n", self.nick)).await?;
        let line = self.expect(" MODE ").await.context("MODE +F")?;
        if !line.contains('F') {
            bail!("ngircd did not set +F: {line}");
        }
        Ok(())
    }

    /// Drains control lines from now on (NOTICEs and the like), so the
    /// channel does not grow.
    pub fn ignore_control(mut self) -> IrcSender {
        let writer = self.writer.clone();
        tokio::spawn(async move { while self.control.recv().await.is_some() {} });
        IrcSender { writer }
    }
}

/// Numerics 400-599 are errors (RFC 2812 section 5.2).
fn is_error_numeric(line: &str) -> bool {
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .is_some_and(|code| (400..600).contains(&code))
}

/// A joined client that only writes from now on.
#[derive(Clone)]
pub struct IrcSender {
    writer: Arc<Mutex<OwnedWriteHalf>>,
}

impl IrcSender {
    pub async fn privmsg(&self, channel: &str, text: &str) -> anyhow::Result<()> {
        let line = format!("PRIVMSG {channel} :{text}\r\n");
        self.writer
            .lock()
            .await
            .write_all(line.as_bytes())
            .await
            .context("IRC write")
    }

    /// Leaves the server (it then closes the connection).
    pub async fn quit(&self) -> anyhow::Result<()> {
        self.writer
            .lock()
            .await
            .write_all(b"QUIT :bench done\r\n")
            .await
            .context("IRC write")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_numerics_are_recognised() {
        assert!(is_error_numeric(":srv 433 * bob :Nickname already in use"));
        assert!(!is_error_numeric(":srv 001 bob :Welcome"));
        assert!(!is_error_numeric(":bob!b@h PRIVMSG #c :433 words"));
    }
}
