//! Counting a fanout the same way whatever carries it (udpchat groups or an
//! IRC channel): every message text starts with `ID SENT_NS `; each
//! member's receiving task calls [`Tracker::arrived`]; the sender waits in
//! [`Tracker::sent`] until every member has the message, so "a message in
//! flight" means the same thing on both systems.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::load::histogram;

/// How long a message may take to reach every member before it counts as
/// failed.
const ALL_ARRIVED_WAIT: Duration = Duration::from_secs(30);

/// Per message in flight: receivers still to get it, and who waits.
type Waiting = HashMap<u64, (usize, Option<oneshot::Sender<()>>)>;

pub struct Tracker {
    base: Instant,
    /// Receivers per message.
    receivers: usize,
    next: AtomicU64,
    waiting: Mutex<Waiting>,
    /// Deliveries of messages sent in the measured stretch.
    pub deliveries: AtomicU64,
    pub latency: Mutex<Histogram<u64>>,
    from_ns: AtomicU64,
    until_ns: AtomicU64,
}

impl Tracker {
    pub fn new(receivers: usize) -> Arc<Tracker> {
        Arc::new(Tracker {
            base: Instant::now(),
            receivers,
            next: AtomicU64::new(0),
            waiting: Mutex::new(HashMap::new()),
            deliveries: AtomicU64::new(0),
            latency: Mutex::new(histogram()),
            from_ns: AtomicU64::new(u64::MAX),
            until_ns: AtomicU64::new(u64::MAX),
        })
    }

    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// Counts only messages sent between `warmup` and `warmup + measure`
    /// from now.
    pub fn measure(&self, warmup: Duration, measure: Duration) {
        let now = self.now_ns();
        self.from_ns
            .store(now + warmup.as_nanos() as u64, Ordering::Relaxed);
        self.until_ns.store(
            now + (warmup + measure).as_nanos() as u64,
            Ordering::Relaxed,
        );
    }

    /// A new message's text, `size` bytes, and its id.
    pub fn text(&self, size: usize) -> (u64, String) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut text = format!("{id} {} ", self.now_ns());
        let pad = size.saturating_sub(text.len());
        text.push_str(&"x".repeat(pad));
        (id, text)
    }

    /// Registers message `id` just before it is sent; the future resolves
    /// once every receiver has it.
    pub fn sent(&self, id: u64) -> impl std::future::Future<Output = anyhow::Result<()>> {
        let (done, all_arrived) = oneshot::channel();
        self.waiting.lock().insert(id, (self.receivers, Some(done)));
        async move {
            match tokio::time::timeout(ALL_ARRIVED_WAIT, all_arrived).await {
                Ok(Ok(())) => Ok(()),
                _ => Err(anyhow::anyhow!(
                    "a message did not reach every member within {}s",
                    ALL_ARRIVED_WAIT.as_secs()
                )),
            }
        }
    }

    /// One member received `text`.
    pub fn arrived(&self, text: &str) {
        let mut words = text.split(' ');
        let (Some(Ok(id)), Some(Ok(sent))) = (
            words.next().map(str::parse::<u64>),
            words.next().map(str::parse::<u64>),
        ) else {
            return;
        };
        let now = self.now_ns();
        if sent >= self.from_ns.load(Ordering::Relaxed)
            && sent < self.until_ns.load(Ordering::Relaxed)
        {
            self.deliveries.fetch_add(1, Ordering::Relaxed);
            self.latency
                .lock()
                .saturating_record((now.saturating_sub(sent) / 1000).max(1));
        }
        let mut waiting = self.waiting.lock();
        if let Some((left, done)) = waiting.get_mut(&id) {
            *left = left.saturating_sub(1);
            if *left == 0 {
                if let Some(done) = done.take() {
                    let _ = done.send(());
                }
                waiting.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_message_completes_when_every_receiver_has_it() {
        let tracker = Tracker::new(2);
        tracker.measure(Duration::ZERO, Duration::from_secs(60));
        let (id, text) = tracker.text(100);
        assert_eq!(text.len(), 100);
        let all = tracker.sent(id);
        tracker.arrived(&text);
        tracker.arrived("garbage");
        tracker.arrived(&text);
        all.await.unwrap();
        assert_eq!(tracker.deliveries.load(Ordering::Relaxed), 2);
    }
}
