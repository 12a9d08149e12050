//! `peers`: the sessions this client has open with other clients, and the
//! path each takes: `direct` (straight to their client, over the LAN or
//! through the NATs a meeting opened) or `relay` (through the server,
//! still end-to-end encrypted, when no direct path could be found).

use serde_json::json;
use udpchat_core::args::Args;
use udpchat_core::context::{Client, Path, PeerPath};
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;
use udpchat_core::register;
use udpchat_core::registry::{Command, Shell};

/// `peers`: the shell command.
pub struct Peers;

register! {
    Command::new("peers", "Show the other clients this one talks to, and whether directly or relayed.")
        .shell::<Peers>()
}

impl Shell for Peers {
    async fn run(client: Client, _: Args) -> Result<(), CommandError> {
        client.emit(render(&client.peers().list()));
        Ok(())
    }
}

fn render(peers: &[PeerPath]) -> Output {
    let text = if peers.is_empty() {
        "No sessions with other clients (one opens with the first message)".to_string()
    } else {
        peers
            .iter()
            .map(|p| match p.path {
                Path::Relay => format!(
                    "{}: relayed by the server ({} as it sees them)",
                    p.user, p.addr
                ),
                _ => format!("{}: direct to {}", p.user, p.addr),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let list: Vec<_> = peers
        .iter()
        .map(|p| json!({"user": p.user, "addr": p.addr.to_string(), "path": p.path.word()}))
        .collect();
    Output::new("peers", text).with("peers", list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_shows_its_path() {
        let peers = [
            PeerPath {
                user: "bob".into(),
                addr: "10.0.1.3:40000".parse().unwrap(),
                path: Path::Direct,
            },
            PeerPath {
                user: "carole".into(),
                addr: "198.51.100.3:5000".parse().unwrap(),
                path: Path::Relay,
            },
        ];
        let out = render(&peers);
        assert_eq!(
            out.text,
            "bob: direct to 10.0.1.3:40000\ncarole: relayed by the server (198.51.100.3:5000 as it sees them)"
        );
        assert_eq!(out.data["peers"][1]["path"], "relay");
        assert!(render(&[]).text.starts_with("No sessions"));
    }
}
