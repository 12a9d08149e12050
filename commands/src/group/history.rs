//! `group history <group> [N]`: the group's last N messages (20 unless
//! told), for its members, oldest first, as they were shown live. The
//! server keeps the last `HISTORY_LIMIT` messages of each group; of a
//! private group it keeps only ciphertext, so there the history is what
//! this client read and sent, kept in its data dir.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::{Client, Origin, Server};
use udpchat_core::error::CommandError;
use udpchat_core::group::{GroupMessage, DEFAULT_HISTORY, HISTORY_LIMIT};
use udpchat_core::history::Conversation;
use udpchat_core::names::check_group_name;
use udpchat_core::output::Output;
use udpchat_core::packet::{Packet, Request};
use udpchat_core::register;
use udpchat_core::registry::{Command, Serve, Shell};

use super::{group_name, GROUP};

/// A reply must fit one envelope: older messages past this many bytes of
/// text are left out (and counted).
const REPLY_BUDGET: usize = 80 * 1024;

/// `group history`: the request, its shell command and its handler.
pub struct GroupHistory;

impl Packet for GroupHistory {
    const TAG: &'static str = GROUP;
}

impl Request for GroupHistory {
    const OP: Option<&'static str> = Some("history");
    type Body = HistoryRequest;
    type Reply = History;
}

/// The request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRequest {
    pub group: String,
    pub count: u32,
}

/// The reply body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    /// Oldest first.
    pub messages: Vec<GroupMessage>,
    /// Older messages that were asked for but did not fit the reply.
    pub omitted: u32,
}

register! {
    Command::sub(GROUP, "history", "Show a group's last N messages (20 unless told).")
        .args(&[Arg::one("group", ArgKind::Group), Arg::optional("N", ArgKind::Number)])
        .examples(&["group history group1 50"])
        .shell::<GroupHistory>()
        .serve::<GroupHistory>()
}

impl Shell for GroupHistory {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        let group = group_name(args.word(0))?;
        let count = crate::history::count(&args, 1, DEFAULT_HISTORY, HISTORY_LIMIT)?;
        let history = if crate::private::is_private(&client, &group).await? {
            let kept = client
                .history()
                .last(&Conversation::Group(group.clone()), count)?;
            History {
                messages: kept
                    .into_iter()
                    .map(|k| GroupMessage {
                        group: group.clone(),
                        seq: k.line.number.unwrap_or_default(),
                        from: k.line.from,
                        text: k.line.text,
                        sealed: None,
                        time_ms: k.line.time_ms,
                    })
                    .collect(),
                omitted: 0,
            }
        } else {
            let request = HistoryRequest {
                group: group.clone(),
                count: count as u32,
            };
            client.server().request::<GroupHistory>(&request).await?
        };
        client.emit(render(&group, &history));
        Ok(())
    }
}

impl Serve for GroupHistory {
    async fn serve(
        server: Server,
        origin: Origin,
        body: HistoryRequest,
    ) -> Result<History, CommandError> {
        let user = crate::signed_in_user(&server, origin)?;
        let HistoryRequest { group, count } = body;
        check_group_name(&group)?;
        let count = (count as usize).clamp(1, HISTORY_LIMIT);
        let mut messages = server.groups().history(&user, &group, count).await?;
        // Keep the newest that fit (a single message always does).
        let mut bytes = 0;
        let fit = messages
            .iter()
            .rev()
            .take_while(|m| {
                bytes += m.text.len() + m.sealed.as_ref().map_or(0, Vec::len) + m.from.len() + 32;
                bytes <= REPLY_BUDGET
            })
            .count()
            .max(messages.len().min(1));
        let omitted = messages.len() - fit;
        messages.drain(..omitted);
        Ok(History {
            messages,
            omitted: omitted as u32,
        })
    }
}

fn render(group: &str, history: &History) -> Output {
    let mut lines = Vec::new();
    if history.omitted > 0 {
        lines.push(format!(
            "({} older messages left out: too long to show at once)",
            history.omitted
        ));
    }
    if history.messages.is_empty() {
        lines.push(format!("No messages in {group} yet"));
    }
    lines.extend(
        history
            .messages
            .iter()
            .map(|m| crate::group_message::line(m, &m.text)),
    );
    let messages: Vec<Value> = history
        .messages
        .iter()
        .map(|m| {
            serde_json::json!({
                "seq": m.seq,
                "from": m.from,
                "text": m.text,
                "time": m.time_ms,
            })
        })
        .collect();
    Output::new("group-history", lines.join("\n"))
        .with("group", group.to_string())
        .with("messages", messages)
        .with("omitted", history.omitted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, from: &str, text: &str) -> GroupMessage {
        GroupMessage {
            group: "group1".into(),
            seq,
            from: from.into(),
            text: text.into(),
            sealed: None,
            time_ms: 1_700_000_000_000 + seq,
        }
    }

    #[test]
    fn renders_each_message_as_it_was_shown_live() {
        let history = History {
            messages: vec![
                message(3, "alice", "hi"),
                message(7, "bob", "hello everyone"),
            ],
            omitted: 0,
        };
        let out = render("group1", &history);
        assert_eq!(
            out.text,
            "[group1] <alice>: hi\n[group1] <bob>: hello everyone"
        );
        assert_eq!(out.data["messages"][1]["seq"], 7);
        assert_eq!(
            render(
                "group1",
                &History {
                    messages: vec![],
                    omitted: 0
                }
            )
            .text,
            "No messages in group1 yet"
        );
    }
}
