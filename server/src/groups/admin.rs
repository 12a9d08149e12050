//! `udpchat-server group add|remove|list`: groups provisioned by the
//! operator (the seeds shipped a configured `group1`), on the same store
//! the server uses; the server may be running. A group the operator makes
//! has no owner: only the operator changes its members. A running server
//! delivers to a member added here from the group's next message on.

use anyhow::bail;
use clap::Subcommand;
use udpchat_core::group::{GroupInfo, Kind, MAX_MEMBERS};
use udpchat_core::names::{check_group_name, check_user_name};

use crate::store::Backend;

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Add users to a group, making the group if it does not exist.
    Add {
        name: String,
        #[arg(required = true)]
        users: Vec<String>,
        /// Make the group not private: its messages go through the server
        /// in the clear (by default they are end-to-end encrypted).
        #[arg(long)]
        plain: bool,
    },
    /// Remove users from a group (the last one out deletes it).
    Remove {
        name: String,
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// List the groups and their members.
    List,
}

/// Runs outside any async runtime: store calls block here.
pub fn run(store: &dyn Backend, command: GroupCommand) -> anyhow::Result<()> {
    match command {
        GroupCommand::Add { name, users, plain } => {
            check_names(&name, &users)?;
            let info = match store.group(&name)? {
                Some(info) => {
                    let new = users.iter().filter(|u| !info.members.contains(u)).count();
                    if info.members.len() + new > MAX_MEMBERS {
                        bail!("{name} would have more than {MAX_MEMBERS} members");
                    }
                    store.add_members(&name, &users)?.0
                }
                None if users.len() > MAX_MEMBERS => {
                    bail!("a group has at most {MAX_MEMBERS} members")
                }
                None => {
                    let kind = Kind {
                        open: false,
                        private: !plain,
                    };
                    store.create_group(&name, None, kind, &users)?
                }
            };
            println!("{}", line(&info));
        }
        GroupCommand::Remove { name, users } => {
            check_names(&name, &users)?;
            let (info, removed) = store.remove_members(&name, &users)?;
            if removed.is_empty() {
                bail!("none of them is in {name}");
            }
            if info.members.is_empty() {
                println!("{name}: deleted (no members left)");
            } else {
                println!("{}", line(&info));
            }
        }
        GroupCommand::List => {
            for info in store.groups()? {
                println!("{}", line(&info));
            }
        }
    }
    Ok(())
}

fn check_names(group: &str, users: &[String]) -> anyhow::Result<()> {
    check_group_name(group).map_err(|e| anyhow::anyhow!(e.message))?;
    for user in users {
        check_user_name(user).map_err(|e| anyhow::anyhow!(e.message))?;
    }
    Ok(())
}

/// `group1: alice, bob, charlie, eve` (and who owns it, if anyone does).
fn line(info: &GroupInfo) -> String {
    let owner = match &info.owner {
        Some(owner) => format!(" (owner {owner})"),
        None => String::new(),
    };
    let plain = if info.private { "" } else { " (not private)" };
    format!("{}{owner}{plain}: {}", info.name, info.members.join(", "))
}
