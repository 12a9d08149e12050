//! `help [command]`: the command list, or one command's page, generated
//! from the registry.

use udpchat_core::args::Args;
use udpchat_core::context::{BoxFuture, Client};
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;
use udpchat_core::registry::{ArgKind, Command, Registry};

const USAGE: &str = "help [command]";

inventory::submit! {
    Command {
        name: "help",
        aliases: &["?"],
        usage: USAGE,
        summary: "Show the commands, or how to use one.",
        examples: &["help", "help send"],
        args: &[ArgKind::Command],
        module: module_path!(),
        shell: Some(shell),
        serve: None,
        on_push: None,
    }
}

fn shell(client: Client, args: Args) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        args.at_most(1, USAGE)?;
        let registry = Registry::global();
        let text = match args.get(0) {
            None => overview(registry),
            Some(word) => page(
                registry
                    .shell(word)
                    .ok_or_else(|| crate::unknown_command(registry, word))?,
            ),
        };
        client.emit(Output::new("help", text.clone()).with("text", text));
        Ok(())
    })
}

/// Every command a user can type, one line each.
pub fn overview(registry: &Registry) -> String {
    /// Usages wider than this put their summary on the next line, so one
    /// long usage does not push every summary off an 80-column screen.
    const WIDEST: usize = 26;
    let commands: Vec<&Command> = registry.shell_commands().collect();
    let width = commands
        .iter()
        .map(|c| c.usage.len())
        .filter(|&w| w <= WIDEST)
        .max()
        .unwrap_or(0);
    let mut text = String::from("Commands:\n");
    for command in commands {
        if command.usage.len() > width {
            text.push_str(&format!("  {}\n", command.usage));
            text.push_str(&format!("  {:width$}  {}\n", "", command.summary));
        } else {
            text.push_str(&format!(
                "  {:width$}  {}\n",
                command.usage, command.summary
            ));
        }
    }
    text.push_str("Type `help COMMAND` for more about one.");
    text
}

/// One command's page: usage, summary, aliases, examples.
pub fn page(command: &Command) -> String {
    let mut text = format!("usage: {}\n{}", command.usage, command.summary);
    if !command.aliases.is_empty() {
        text.push_str(&format!("\naliases: {}", command.aliases.join(", ")));
    }
    if !command.examples.is_empty() {
        text.push_str("\nexamples:");
        for example in command.examples {
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
        let text = page(Registry::global().shell("msg").unwrap());
        assert_eq!(
            text,
            "usage: send <user> <message...>\n\
             Send a message directly to a signed-in user.\n\
             aliases: msg\n\
             examples:\n  send carole Hello this is Alice.\n  msg bob see you at 5"
        );
    }
}
