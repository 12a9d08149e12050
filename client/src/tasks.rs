//! Deliveries running in the background: a `send` returns at once and its
//! delivery goes on; the client waits for them (bounded) before it signs
//! out or leaves, so no message is dropped by leaving.

use std::time::Duration;

use parking_lot::Mutex;
use tokio::task::JoinHandle;
use udpchat_core::context::{BoxFuture, Tasks};
use udpchat_core::error::{Code, CommandError};

#[derive(Default)]
pub struct Background {
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Tasks for Background {
    fn spawn(&self, task: BoxFuture<'static, ()>) {
        let mut tasks = self.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(tokio::spawn(task));
    }

    fn unfinished(&self) -> usize {
        let mut tasks = self.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.len()
    }

    fn settle(&self, patience: Duration) -> BoxFuture<'static, Result<(), CommandError>> {
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.tasks.lock());
        Box::pin(async move {
            let waited = tokio::time::timeout(patience, async {
                for task in tasks {
                    let _ = task.await;
                }
            })
            .await;
            waited.map_err(|_| {
                CommandError::new(
                    Code::Timeout,
                    format!(
                        "gave up after {}s waiting for messages still on their way",
                        patience.as_secs()
                    ),
                )
            })
        })
    }
}
