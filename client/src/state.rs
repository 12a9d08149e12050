//! The client as command handlers see it: the session, the link, the
//! printer and the background tasks it must wait for before leaving.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::task::JoinHandle;
use udpchat_core::context::{BoxFuture, ClientContext, Reply, Session};
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;
use udpchat_net::Link;

use crate::render::Printer;

pub struct ClientState {
    session: Mutex<Session>,
    link: Link,
    printer: Printer,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    quitting: AtomicBool,
}

impl ClientState {
    pub fn new(server: SocketAddr, link: Link, printer: Printer) -> ClientState {
        ClientState {
            session: Mutex::new(Session { server, user: None }),
            link,
            printer,
            tasks: Mutex::new(Vec::new()),
            quitting: AtomicBool::new(false),
        }
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    pub fn printer(&self) -> &Printer {
        &self.printer
    }

    pub fn quitting(&self) -> bool {
        self.quitting.load(Ordering::SeqCst)
    }

    /// Waits, at most `patience`, for background tasks (deliveries).
    pub async fn settle(&self, patience: Duration) {
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        let waited = tokio::time::timeout(patience, async {
            for task in tasks {
                let _ = task.await;
            }
        })
        .await;
        if waited.is_err() {
            self.printer.emit(Output::error(&CommandError::new(
                "timeout",
                "gave up waiting for outstanding deliveries",
            )));
        }
    }
}

impl ClientContext for ClientState {
    fn session(&self) -> &Mutex<Session> {
        &self.session
    }

    fn request(&self, cmd: &'static str, body: Vec<u8>) -> BoxFuture<'static, Reply> {
        let server = self.session.lock().expect("session lock").server;
        Box::pin(self.link.request(server, cmd, body))
    }

    fn push_to(
        &self,
        addr: SocketAddr,
        cmd: &'static str,
        body: Vec<u8>,
    ) -> BoxFuture<'static, Result<(), CommandError>> {
        Box::pin(self.link.push(addr, cmd, body))
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        tasks.retain(|t| !t.is_finished());
        tasks.push(tokio::spawn(task));
    }

    fn emit(&self, output: Output) {
        self.printer.emit(output);
    }

    fn quit(&self) {
        self.quitting.store(true, Ordering::SeqCst);
    }
}
