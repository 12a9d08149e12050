//! Keeping the session with the server alive, noticing when the server is
//! gone, and coming back by itself: the client sends the server a
//! keepalive (an empty transport message the server acknowledges at once:
//! no request, no reply) three times per presence timeout; after a whole
//! timeout without an acknowledgement it says the server is lost, then
//! keeps trying (backing off) and, once the server answers again, asks it
//! who this session is (`ping`) and signs back in with the password it
//! kept in memory.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use udpchat_commands::ping::Ping;
use udpchat_core::context::Client;
use udpchat_core::output::Output;

use crate::state::ClientState;

/// The longest wait between tries while the server is gone.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub async fn run(client: Client, state: Arc<ClientState>, timeout: Duration) {
    let every = timeout / 3;
    let mut last_answer = Instant::now();
    let mut lost = false;
    let mut wait = every;
    loop {
        // Moved to another server (the last one said it is going down):
        // sign in there now.
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = state.connector().moved() => {}
        }
        if state.quitting() {
            return;
        }
        let signed_in = client.session().lock().user.is_some();
        let wanted = state.connector().remembered();
        if !signed_in && wanted.is_none() && !lost {
            last_answer = Instant::now();
            continue;
        }
        let kept = tokio::time::timeout(every, state.connector().keep_alive()).await;
        if matches!(kept, Ok(Ok(()))) {
            last_answer = Instant::now();
            wait = every;
            if !lost && signed_in {
                continue;
            }
            let back = lost;
            lost = false;
            // Back after the server was lost, or signed out here: who does
            // the server think this session is?
            let pong = tokio::time::timeout(every, client.server().request::<Ping>(&()))
                .await
                .ok()
                .and_then(Result::ok);
            let Some(pong) = pong else { continue };
            if signed_in && pong.user.is_none() {
                client.session().lock().user = None;
            }
            if pong.user.is_none() {
                if let Some((user, password)) = wanted {
                    if back {
                        client.emit(Output::new(
                            "server-back",
                            "the server is back: signing in again",
                        ));
                    }
                    // Shown if it failed; the next answer tries again.
                    let _ = crate::start::sign_in(&client, &user, Some(password), false).await;
                }
            }
            continue;
        }
        if !lost && last_answer.elapsed() >= timeout {
            lost = true;
            client.session().lock().user = None;
            let server = client.session().lock().server;
            client.emit(
                Output::new(
                    "server-lost",
                    format!("lost the server at {server}: retrying"),
                )
                .with("server", server.to_string()),
            );
        }
        if lost {
            // Whatever session there was, the next try starts a new one:
            // with the next server of the deployment, if there are others
            // (tried at once), or with this one again (backing off).
            match state.connector().next_server() {
                // Each of the others at once; after a whole round, waiting
                // longer each time, as with one server.
                Some(next) if !state.connector().is_first(next) => wait = every,
                Some(_) => wait = (wait * 2).min(MAX_BACKOFF),
                None => {
                    state.connector().reset();
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}
