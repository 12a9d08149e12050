//! `udpchat-server status`: what the database holds and, on PostgreSQL,
//! every node sharing it with its load as of its last heartbeat.

use super::EXPIRE;
use crate::metrics::NodeLoad;
use crate::store::PgStore;

/// `udpchat-server status`: the nodes sharing the database and who is
/// signed in on each, as lines to print.
pub fn status(
    store: &dyn crate::store::Backend,
    postgres: Option<&PgStore>,
) -> anyhow::Result<Vec<String>> {
    let mut lines = vec![format!(
        "{}: schema version {}",
        store.describe(),
        store.schema_version()?
    )];
    lines.push(describe_totals(&store.totals()?, crate::mailbox::now_ms()));
    let Some(postgres) = postgres else {
        lines.push(
            "one node: its sessions and queues are in its memory; start it with --metrics ADDR to watch them"
                .to_string(),
        );
        return Ok(lines);
    };
    let nodes = postgres.nodes()?;
    let mut total = 0;
    for node in &nodes {
        total += node.users;
        let state = if node.silent_for > EXPIRE {
            "  SILENT: taken for dead at the next heartbeat of another node"
        } else {
            ""
        };
        lines.push(format!(
            "node {} at {}: up since {}, heartbeat {:.1} s ago, {} signed in{state}",
            node.id,
            node.addr,
            node.started,
            node.silent_for.as_secs_f64(),
            node.users
        ));
        match node.load.as_deref().map(serde_json::from_str::<NodeLoad>) {
            Some(Ok(load)) => lines.push(format!("  {}", load.describe())),
            Some(Err(_)) => lines.push("  load not understood (a node of another version?)".into()),
            None => lines.push("  no load written yet".into()),
        }
    }
    lines.push(format!("{} nodes, {total} users signed in", nodes.len()));
    Ok(lines)
}

/// What the database holds, as one line of `status`.
fn describe_totals(totals: &crate::store::Totals, now_ms: u64) -> String {
    let mut line = format!(
        "{} accounts, {} groups, {} messages waiting for {} offline users",
        totals.accounts, totals.groups, totals.mail, totals.mail_recipients
    );
    if let Some(oldest) = totals.oldest_mail_ms {
        let secs = now_ms.saturating_sub(oldest) / 1000;
        let age = match secs {
            0..120 => format!("{secs} s"),
            120..7_200 => format!("{} min", secs / 60),
            7_200..172_800 => format!("{} h", secs / 3_600),
            _ => format!("{} days", secs / 86_400),
        };
        line.push_str(&format!(" (the oldest sent {age} ago)"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_totals_line_says_how_old_the_oldest_mail_is() {
        let mut totals = crate::store::Totals {
            accounts: 5,
            groups: 1,
            mail: 0,
            mail_recipients: 0,
            oldest_mail_ms: None,
        };
        assert_eq!(
            describe_totals(&totals, 100_000_000),
            "5 accounts, 1 groups, 0 messages waiting for 0 offline users"
        );
        totals.mail = 3;
        totals.mail_recipients = 2;
        totals.oldest_mail_ms = Some(100_000_000 - 3 * 3_600_000);
        assert_eq!(
            describe_totals(&totals, 100_000_000),
            "5 accounts, 1 groups, 3 messages waiting for 2 offline users (the oldest sent 3 h ago)"
        );
    }
}
