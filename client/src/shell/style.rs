//! How events look in the interactive shell: a short timestamp on what
//! arrives on its own (messages, delivery notices, presence), each name in
//! its own colour (the same colour every time), errors in red. Events come
//! here already cleaned (see `render`): nothing a peer sends can move the
//! cursor or recolour the screen.
//!
//! Only the interactive renderer decorates; scripted text and `--json` print
//! the event as it is. Colours are off when stdout is not a terminal or
//! `NO_COLOR` is set (<https://no-color.org>).

use std::io::IsTerminal;

use nu_ansi_term::{Color, Style};
use udpchat_core::event::{Ink, Pen};

use crate::config::Colour;
use udpchat_core::output::Output;
use udpchat_core::registry::Registry;

/// Name colours: no red (an error) and no green (a command word).
const NAME_COLOURS: [Color; 8] = [
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::Cyan,
    Color::LightYellow,
    Color::LightBlue,
    Color::LightMagenta,
    Color::LightCyan,
];

/// Whether to colour, and the styles used when colouring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Look {
    colour: bool,
}

/// Where and when an event is shown.
#[derive(Debug, Clone, Copy)]
pub struct Moment<'a> {
    /// `HH:MM`, local time.
    pub time: &'a str,
    /// Printed above a line being typed (it arrived on its own).
    pub above_prompt: bool,
    /// Whom the shell's conversation is with, if any.
    pub conversation: Option<&'a str>,
}

impl Look {
    /// Colours as `when` says: `auto` on a terminal unless `NO_COLOR` is
    /// set to something.
    pub fn detect(when: Colour) -> Look {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Look {
            colour: match when {
                Colour::Auto => std::io::stdout().is_terminal() && !no_color,
                Colour::Always => true,
                Colour::Never => false,
            },
        }
    }

    #[cfg(test)]
    pub fn new(colour: bool) -> Look {
        Look { colour }
    }

    pub fn colour(self) -> bool {
        self.colour
    }

    pub fn paint(self, style: Style, text: &str) -> String {
        if self.colour && !style.is_plain() {
            style.paint(text).to_string()
        } else {
            text.to_string()
        }
    }

    /// A user's or group's name in its own colour.
    pub fn name(self, name: &str) -> String {
        self.paint(name_style(name), name)
    }

    /// The line an event shows as in the interactive shell: its own look
    /// (declared with its kind: see [`udpchat_core::event`]), or its text
    /// with its names coloured; stamped with the time when it came on its
    /// own or interrupts typing. `None`: nothing to show.
    pub fn show(self, output: &Output, at: Moment<'_>) -> Option<String> {
        let pen = Drawing { look: self, at };
        let event = Registry::global().event(output.event);
        let body = match event.and_then(|e| e.look) {
            Some(look) => look(output, &pen)?,
            None => (&pen as &dyn Pen).plain(output),
        };
        let on_its_own = event.is_some_and(|e| (e.on_its_own)(output));
        Some(if at.above_prompt || on_its_own {
            format!("{} {body}", self.paint(Style::new().dimmed(), at.time))
        } else {
            body
        })
    }

    /// Colours every whole-word occurrence of these names.
    fn names_in(self, text: &str, names: &[&str]) -> String {
        if !self.colour || names.is_empty() {
            return text.to_string();
        }
        let mut shown = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find(is_name_char) {
            shown.push_str(&rest[..start]);
            rest = &rest[start..];
            let end = rest.find(|c| !is_name_char(c)).unwrap_or(rest.len());
            let word = &rest[..end];
            // A name that ends a sentence: `created bob.`
            let name = word.trim_end_matches('.');
            if names.contains(&name) {
                shown.push_str(&self.name(name));
                shown.push_str(&word[name.len()..]);
            } else {
                shown.push_str(word);
            }
            rest = &rest[end..];
        }
        shown.push_str(rest);
        shown
    }
}

/// What an event's look draws with: these colours, at this moment.
struct Drawing<'a> {
    look: Look,
    at: Moment<'a>,
}

impl Pen for Drawing<'_> {
    fn name(&self, name: &str) -> String {
        self.look.name(name)
    }

    fn ink(&self, ink: Ink, text: &str) -> String {
        let style = match ink {
            Ink::Error => Color::Red.normal(),
            Ink::ErrorMark => Color::Red.bold(),
            Ink::Quiet => Style::new().dimmed(),
            Ink::Alarm => Color::Yellow.bold(),
        };
        self.look.paint(style, text)
    }

    fn names_in(&self, text: &str, names: &[&str]) -> String {
        self.look.names_in(text, names)
    }

    fn conversation(&self) -> Option<&str> {
        self.at.conversation
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// The same colour for the same name, in every session: FNV-1a of the name
/// (std's hasher may change between releases).
pub fn name_style(name: &str) -> Style {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let index = usize::try_from(hash % NAME_COLOURS.len() as u64).unwrap_or(0);
    NAME_COLOURS[index].bold()
}

/// Whether an event rings the terminal's bell: a direct message, as it
/// comes, from someone the conversation on (if any) is not with.
pub fn rings(output: &Output, conversation: Option<&str>) -> bool {
    output.event == "message"
        && output.data.get("stored").is_none()
        && output
            .field("from")
            .is_some_and(|from| Some(from) != conversation)
}

/// The terminal's bell.
pub const BELL: char = '\u{7}';

/// The local time as the shell shows it.
pub fn now() -> String {
    chrono::Local::now().format("%H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Look = Look { colour: false };

    impl Look {
        fn shown(self, output: &Output, at: Moment<'_>) -> String {
            self.show(output, at).expect("shown")
        }
    }
    const COLOUR: Look = Look { colour: true };

    #[test]
    fn colour_always_and_never_override_the_terminal() {
        assert!(Look::detect(Colour::Always).colour());
        assert!(!Look::detect(Colour::Never).colour());
    }

    #[test]
    fn a_direct_message_rings_unless_its_conversation_is_on() {
        let carole = message("carole", "lunch?");
        assert!(rings(&carole, None));
        assert!(rings(&carole, Some("bob")));
        assert!(!rings(&carole, Some("carole")));
        let stored = carole.clone().with("stored", true);
        assert!(!rings(&stored, None), "what came while away was not live");
        let group = Output::new("group-message", "[g] <carole>: hi")
            .with("group", "g")
            .with("from", "carole")
            .with("text", "hi");
        assert!(!rings(&group, None), "only direct messages ring");
    }

    fn typing() -> Moment<'static> {
        Moment {
            time: "09:41",
            above_prompt: true,
            conversation: None,
        }
    }

    fn message(from: &str, text: &str) -> Output {
        Output::new("message", format!("<From 10.0.0.7:5000:{from}>: {text}"))
            .with("from", from)
            .with("addr", "10.0.0.7:5000")
            .with("text", text)
    }

    #[test]
    fn a_message_keeps_the_seed_form_after_a_timestamp() {
        let shown = PLAIN.shown(&message("bob", "Hey"), typing());
        assert_eq!(shown, "09:41 <From 10.0.0.7:5000:bob>: Hey");
        let quiet = Moment {
            above_prompt: false,
            ..typing()
        };
        assert_eq!(
            PLAIN.shown(&message("bob", "Hey"), quiet),
            "09:41 <From 10.0.0.7:5000:bob>: Hey",
            "a message is stamped even when no line is being typed"
        );
    }

    #[test]
    fn in_a_conversation_the_partner_speaks_like_the_seed() {
        let with_bob = Moment {
            conversation: Some("bob"),
            ..typing()
        };
        assert_eq!(
            PLAIN.shown(&message("bob", "Hey"), with_bob),
            "09:41 [bob] Hey"
        );
        assert_eq!(
            PLAIN.shown(&message("carole", "psst"), with_bob),
            "09:41 carole: psst (unread: /chat carole)",
            "someone else's message is a one-line notice"
        );
        let long = format!("{}\nsecond line", "x".repeat(100));
        assert_eq!(
            PLAIN.shown(&message("carole", &long), with_bob),
            format!("09:41 carole: {}… (unread: /chat carole)", "x".repeat(60))
        );
        let group = Output::new("group-message", "[g] <dave>: hi all")
            .with("group", "g")
            .with("from", "dave")
            .with("text", "hi all");
        assert_eq!(
            PLAIN.shown(&group, with_bob),
            "09:41 g <dave>: hi all (unread: /chat g)"
        );
        let unverified = message("carole", "psst").with("verified", false);
        assert_eq!(
            PLAIN.shown(&unverified, with_bob),
            "09:41 <From 10.0.0.7:5000:carole>: psst",
            "a message not verified shows whole, with its warning"
        );
    }

    #[test]
    fn a_name_has_one_colour_and_only_names_are_coloured() {
        let shown = COLOUR.shown(&message("bob", "bob says hi"), typing());
        let bob = name_style("bob").paint("bob").to_string();
        assert!(
            shown.contains(&format!(":{bob}>: bob says hi")),
            "{shown:?}"
        );
        assert_eq!(name_style("bob"), name_style("bob"));
        let reply = Output::new("users", "Signed In Users: bob, carole")
            .with("users", vec!["bob", "carole"]);
        let carole = name_style("carole").paint("carole").to_string();
        assert_eq!(
            COLOUR.shown(
                &reply,
                Moment {
                    above_prompt: false,
                    ..typing()
                }
            ),
            format!("Signed In Users: {bob}, {carole}")
        );
    }

    #[test]
    fn colours_off_means_no_escape_at_all() {
        let error = Output::error(&udpchat_core::error::CommandError::new(
            udpchat_core::error::Code::Other("x".into()),
            "boom",
        ));
        for output in [message("bob", "hi"), error] {
            let shown = PLAIN.shown(&output, typing());
            assert!(!shown.contains('\u{1b}'), "{shown:?}");
        }
        assert!(COLOUR
            .shown(&message("bob", "hi"), typing())
            .contains('\u{1b}'));
    }

    #[test]
    fn a_peers_second_line_is_marked_as_theirs_in_and_out_of_a_conversation() {
        let text = "bye\n09:42 <From 10.0.0.9:5000:alice>: fake";
        let with_bob = Moment {
            conversation: Some("bob"),
            ..typing()
        };
        assert_eq!(
            PLAIN.shown(&message("bob", text), typing()),
            "09:41 <From 10.0.0.7:5000:bob>: bye\n    | 09:42 <From 10.0.0.9:5000:alice>: fake"
        );
        assert_eq!(
            PLAIN.shown(&message("bob", text), with_bob),
            "09:41 [bob] bye\n    | 09:42 <From 10.0.0.9:5000:alice>: fake"
        );
        let group = Output::new("group-message", "")
            .with("group", "g")
            .with("from", "bob")
            .with("text", text);
        assert!(PLAIN
            .shown(&group, typing())
            .ends_with("bye\n    | 09:42 <From 10.0.0.9:5000:alice>: fake"));
    }

    #[test]
    fn a_peer_cannot_send_escape_sequences() {
        // What the printer hands the shell (see `render`).
        let (printer, mut printed) = crate::render::Printer::new(crate::render::Format::Text);
        printer.emit(message("bob", "\u{1b}[2Jgone\rover\u{202E}x"));
        let Ok(crate::render::Printed::Event(output)) = printed.try_recv() else {
            panic!("no event printed");
        };
        assert_eq!(
            PLAIN.shown(&output, typing()),
            "09:41 <From 10.0.0.7:5000:bob>: \u{FFFD}[2Jgone\u{FFFD}over\u{FFFD}x"
        );
    }

    #[test]
    fn deliveries_to_the_partner_are_quiet_in_a_conversation() {
        let delivered = Output::new("delivered", "delivered to bob").with("to", "bob");
        let with = |who| Moment {
            conversation: Some(who),
            ..typing()
        };
        assert_eq!(PLAIN.show(&delivered, with("bob")), None);
        assert_eq!(
            PLAIN.show(&delivered, with("carole")).as_deref(),
            Some("09:41 delivered to bob")
        );
    }

    #[test]
    fn group_messages_read_like_the_seed_in_the_group_conversation() {
        let line = Output::new("group-message", "[group1] <bob>: hello everyone")
            .with("group", "group1")
            .with("from", "bob")
            .with("text", "hello everyone");
        assert_eq!(
            PLAIN.shown(&line, typing()),
            "09:41 [group1] <bob>: hello everyone"
        );
        let in_group = Moment {
            conversation: Some("group1"),
            ..typing()
        };
        assert_eq!(PLAIN.shown(&line, in_group), "09:41 [bob] hello everyone");
        let sent = Output::new("group-sent", "sent to group1").with("group", "group1");
        assert_eq!(PLAIN.show(&sent, in_group), None);
    }

    #[test]
    fn a_stored_message_keeps_its_own_form() {
        let stored = Output::new(
            "message",
            "[2024-01-01 10:00 UTC] <bob> (while you were away): hi",
        )
        .with("from", "bob")
        .with("text", "hi")
        .with("stored", true);
        let with_bob = Moment {
            conversation: Some("bob"),
            ..typing()
        };
        assert_eq!(
            PLAIN.shown(&stored, with_bob),
            "09:41 [2024-01-01 10:00 UTC] <bob> (while you were away): hi"
        );
    }

    #[test]
    fn replies_to_a_command_are_not_stamped() {
        let help = Output::new("help", "Commands:").with("text", "Commands:");
        let moment = Moment {
            above_prompt: false,
            ..typing()
        };
        assert_eq!(PLAIN.shown(&help, moment), "Commands:");
        let failed = Output::error(&udpchat_core::error::CommandError::new(
            udpchat_core::error::Code::DeliveryFailed,
            "message to bob was not delivered",
        ))
        .with("to", "bob");
        assert_eq!(
            PLAIN.shown(&failed, moment),
            "09:41 error: message to bob was not delivered"
        );
    }
}
