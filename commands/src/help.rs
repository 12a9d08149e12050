//! `help [command]`: the command list, or one command's page, generated
//! from the registry.

use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::Client;
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;
use udpchat_core::register;
use udpchat_core::registry::{Command, Registry, Shell};

/// `help`: the shell command.
pub struct Help;

register! {
    Command::new("help", "Show the commands, or how to use one.")
        .aliases(&["?"])
        .args(&[Arg::optional("command", ArgKind::Command)])
        .examples(&["help", "help send"])
        .shell::<Help>()
}

impl Shell for Help {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        let registry = Registry::global();
        let text = match args.get(0) {
            None => overview(registry),
            Some(word) => page(
                registry,
                registry
                    .shell(word)
                    .ok_or_else(|| registry.unknown_command(word))?,
            ),
        };
        client.emit(Output::new("help", text.clone()).with("text", text));
        Ok(())
    }
}

/// A command's summary; for one with subcommands, followed by their names.
fn summary(registry: &Registry, command: &Command) -> String {
    if !command.has_subcommands {
        return command.summary.to_string();
    }
    let names: Vec<&str> = registry
        .subcommands(command.name)
        .iter()
        .map(|c| c.name)
        .collect();
    format!("{}: {}.", command.summary, names.join(", "))
}

/// Every command a user can type, one line each.
pub fn overview(registry: &Registry) -> String {
    /// Usages wider than this put their summary on the next line, so one
    /// long usage does not push every summary off an 80-column screen.
    const WIDEST: usize = 26;
    let lines: Vec<(String, String)> = registry
        .shell_commands()
        .map(|c| (c.usage(), summary(registry, c)))
        .collect();
    let width = lines
        .iter()
        .map(|(usage, _)| usage.len())
        .filter(|&w| w <= WIDEST)
        .max()
        .unwrap_or(0);
    let mut text = String::from("Commands:\n");
    for (usage, summary) in lines {
        if usage.len() > width {
            text.push_str(&format!("  {usage}\n"));
            text.push_str(&format!("  {:width$}  {summary}\n", ""));
        } else {
            text.push_str(&format!("  {usage:width$}  {summary}\n"));
        }
    }
    text.push_str("Type `help COMMAND` for more about one.");
    text
}

/// One command's page: usage, summary, aliases, subcommands, examples.
pub fn page(registry: &Registry, command: &Command) -> String {
    let mut text = format!("usage: {}\n{}", command.usage(), command.summary);
    if !command.aliases.is_empty() {
        text.push_str(&format!("\naliases: {}", command.aliases.join(", ")));
    }
    let subcommands = registry.subcommands(command.name);
    if !subcommands.is_empty() {
        text.push_str("\nsubcommands:");
        let usages: Vec<String> = subcommands.iter().map(|c| c.usage()).collect();
        let width = usages.iter().map(String::len).max().unwrap_or(0);
        for (usage, sub) in usages.iter().zip(&subcommands) {
            text.push_str(&format!("\n  {usage:width$}  {}", sub.summary));
        }
    }
    let examples: Vec<&str> = std::iter::once(command)
        .chain(subcommands)
        .flat_map(|c| c.examples.iter().copied())
        .collect();
    if !examples.is_empty() {
        text.push_str("\nexamples:");
        for example in examples {
            text.push_str(&format!("\n  {example}"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overview_lists_every_shell_command_and_no_packet() {
        let text = overview(Registry::global());
        for word in [
            "connect", "exit", "help", "list", "logout", "send", "signin",
        ] {
            assert!(
                text.lines().any(|l| l.trim_start().starts_with(word)),
                "{word} missing from:\n{text}"
            );
        }
        assert!(!text.contains("lookup") && !text.contains("going-down"));
    }

    #[test]
    fn send_page_snapshot() {
        let registry = Registry::global();
        let text = page(registry, registry.shell("msg").unwrap());
        assert_eq!(
            text,
            "usage: send <user> <message...>\n\
             Send a message directly to a signed-in user.\n\
             aliases: msg\n\
             examples:\n  send carole Hello this is Alice.\n  msg bob see you at 5"
        );
    }

    /// How the overview lays lines out, on commands of its own (the real
    /// ones are listed in `the_registry_holds_exactly_these_commands`).
    #[test]
    fn overview_layout_snapshot() {
        use udpchat_core::registry::NoOp;
        static LIST: Command = Command::new("list", "List the users.")
            .args(&[Arg::optional("prefix", ArgKind::User)])
            .shell::<NoOp>();
        static SEND: Command = Command::new("send", "Send a message.")
            .args(&[Arg::one("user", ArgKind::User), Arg::text("message")])
            .shell::<NoOp>();
        static GROUP: Command = Command::new("group", "Group chat").subcommands();
        static CREATE: Command = Command::sub("group", "create", "Make a group.")
            .args(&[
                Arg::one("group", ArgKind::Group),
                Arg::flag("--open"),
                Arg::any("user", ArgKind::User),
            ])
            .shell::<NoOp>();
        static JOIN: Command = Command::sub("group", "join", "Join a group.")
            .args(&[Arg::one("group", ArgKind::Group)])
            .shell::<NoOp>();
        static LONG: Command = Command::new("broadcast", "Say it to everyone, at length.")
            .args(&[Arg::many("recipient", ArgKind::User), Arg::text("message")])
            .shell::<NoOp>();
        let registry = Registry::build(vec![&LIST, &SEND, &GROUP, &CREATE, &JOIN, &LONG], vec![]);
        insta::assert_snapshot!(overview(&registry), @r"
        Commands:
          broadcast <recipient...> <message...>
                                    Say it to everyone, at length.
          group <subcommand> ...    Group chat: create, join.
          list [prefix]             List the users.
          send <user> <message...>  Send a message.
        Type `help COMMAND` for more about one.
        ");
        insta::assert_snapshot!(page(&registry, &GROUP), @r"
        usage: group <subcommand> ...
        Group chat
        subcommands:
          group create <group> [--open] [user...]  Make a group.
          group join <group>                       Join a group.
        ");
    }
}
