//! The driver's last turns, once its link is stopped: nothing more is
//! read, what was taken in reaches its reader, and what the reader is done
//! with is acknowledged before the driver goes.

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Driver, ROOM_RETRY};
use crate::Op;

/// How long a stopping driver waits for its reader to take what the owner
/// holds.
const HELD_AT_STOP: std::time::Duration = std::time::Duration::from_secs(10);

impl Driver {
    /// Ends the driver once [`Driver::run`]'s loop saw the link stopped.
    pub(super) async fn stop(mut self, mut ops: mpsc::UnboundedReceiver<Op>) {
        // Stopped: nothing more is read, so no reply can come. A request
        // still waiting for one fails now, not when the driver goes: a
        // client leaving checks the sender of a message that came just
        // before with a request, and the message's acknowledgement waits
        // for that check (the soak saw a message shown, unacknowledged for
        // the hold limit below, and so kept for the next sign-in too).
        self.requests.clear();
        // What the owner holds goes to the reader before the driver does
        // (the reader reads until the inbox closes; a reader that is gone
        // lets the owner drop it). Bounded, for a reader that is there but
        // never reads.
        let give_up = Instant::now() + HELD_AT_STOP;
        loop {
            self.owner.make_room();
            if self.owner.has_room() {
                break;
            }
            if Instant::now() >= give_up {
                tracing::warn!("stopped with pushes its reader never took");
                break;
            }
            tokio::time::sleep(ROOM_RETRY).await;
        }
        // The pushes the owner is still handling are acknowledged once it
        // is done with them (a client's lines written), within the
        // transport's hold limit: what a client showed before it left is
        // not sent to it again, nor reported lost to its sender. Then every
        // acknowledgement due goes, and the socket and the inbox close with
        // the driver.
        let give_up = Instant::now() + self.endpoint.max_ack_hold();
        while self.holding > 0 {
            tokio::select! {
                op = ops.recv() => match op {
                    Some(op @ Op::ReleaseAck { .. }) => self.handle_op(op),
                    // The link has stopped: anything else is dropped, and
                    // whoever waits on it hears so.
                    Some(_) => {}
                    None => break,
                },
                () = tokio::time::sleep_until(give_up) => break,
            }
        }
        self.endpoint.acknowledge_now();
        self.flush().await;
        let stopped = self.stopped.take();
        drop(self);
        if let Some(done) = stopped {
            let _ = done.send(());
        }
    }
}
