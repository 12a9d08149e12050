//! `send <user> <message...>` (`msg`): looks the user up on the server, then
//! sends the message straight to that user's client, not through the
//! server. `delivered to bob` follows once bob's client acknowledged it.
//!
//! The first message to a user opens an end-to-end session with their
//! client on the path a meeting finds (see `lookup`): direct where the
//! NATs between allow it, else through the server's relay, which cannot
//! read it (`delivered to bob (relayed)`). A user who is not signed in, or
//! whose client does not answer, gets it sealed and kept on the server
//! (`queued`, then `delivered to bob (stored)` when they are back).

use udpchat_core::args::Args;
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, Path};
use udpchat_core::error::{code, CommandError};
use udpchat_core::names::check_user_name;
use udpchat_core::output::Output;
use udpchat_core::registry::{ArgKind, Command};

use crate::message::{check_text, Message};

const USAGE: &str = "send <user> <message...>";

inventory::submit! {
    Command {
        name: "send",
        aliases: &["msg"],
        usage: USAGE,
        summary: "Send a message directly to a signed-in user.",
        examples: &["send carole Hello this is Alice.", "msg bob see you at 5"],
        args: &[ArgKind::User, ArgKind::Text],
        module: module_path!(),
        shell: Some(shell),
        serve: None,
        on_push: None,
    }
}

fn shell(client: Client, args: Args) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        let to = args.required(0, USAGE)?.to_string();
        check_user_name(&to)?;
        let text = args.rest(1).to_string();
        check_text(&text)?;
        let from = client.user()?;
        let meet = client.needs_meeting(&to);
        let whereabouts = match crate::lookup::lookup(&client, &to, meet).await {
            Ok(found) => found,
            // Not signed in: seal it and leave it on the server (an unknown
            // user gets the error from there).
            Err(e) if e.code == code::NO_SUCH_USER => {
                return crate::deposit::queue(&client, &from, &to, &text).await;
            }
            Err(e) => return Err(e),
        };
        let body = cbor::encode(&Message {
            from: from.clone(),
            text: text.clone(),
        });
        let delivery = client.push_to(whereabouts, "message", body).await;
        let reporter = client.clone();
        client.spawn(Box::pin(async move {
            let fate = match delivery {
                Ok(delivery) => delivery.await,
                Err(e) => Err(e),
            };
            let outcome = match fate {
                Ok(path) => {
                    reporter.emit(delivered(&to, path));
                    Ok(())
                }
                // Their client stopped answering: keep it for them instead.
                Err(_) => crate::deposit::queue(&reporter, &from, &to, &text).await,
            };
            if let Err(e) = outcome {
                reporter.emit(
                    Output::error(&CommandError::new(
                        code::DELIVERY_FAILED,
                        format!("message to {to} was not delivered: {}", e.message),
                    ))
                    .with("to", to),
                );
            }
        }));
        Ok(())
    })
}

/// `delivered to bob`, saying how when it was not straight to their client.
pub fn delivered(to: &str, path: Path) -> Output {
    let how = match path {
        Path::Direct => "",
        Path::Relay => " (relayed)",
        Path::Stored => " (stored)",
    };
    Output::new("delivered", format!("delivered to {to}{how}"))
        .with("to", to.to_string())
        .with("path", path.word())
}
