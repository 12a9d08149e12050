//! A shell line split into words, with the last free-text argument kept
//! verbatim (a message keeps its own spacing).

use crate::error::CommandError;

/// The words after the command word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    line: String,
    /// Byte offsets of each word in `line`.
    spans: Vec<(usize, usize)>,
}

impl Args {
    /// Splits what follows the command word.
    pub fn parse(rest: &str) -> Args {
        let mut spans = Vec::new();
        let mut start = None;
        for (i, c) in rest.char_indices() {
            match (c.is_whitespace(), start) {
                (true, Some(s)) => {
                    spans.push((s, i));
                    start = None;
                }
                (false, None) => start = Some(i),
                _ => {}
            }
        }
        if let Some(s) = start {
            spans.push((s, rest.len()));
        }
        Args {
            line: rest.to_string(),
            spans,
        }
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The word at `index`, if present.
    pub fn get(&self, index: usize) -> Option<&str> {
        self.spans.get(index).map(|&(s, e)| &self.line[s..e])
    }

    /// The word at `index`, or a usage error.
    pub fn required(&self, index: usize, usage: &str) -> Result<&str, CommandError> {
        self.get(index).ok_or_else(|| CommandError::usage(usage))
    }

    /// Everything from word `index` to the end of the line, spacing kept
    /// (trailing whitespace trimmed); empty when there is nothing.
    pub fn rest(&self, index: usize) -> &str {
        match self.spans.get(index) {
            Some(&(s, _)) => self.line[s..].trim_end(),
            None => "",
        }
    }

    /// Refuses words beyond `count`.
    pub fn at_most(&self, count: usize, usage: &str) -> Result<(), CommandError> {
        if self.len() > count {
            Err(CommandError::usage(usage))
        } else {
            Ok(())
        }
    }
}

/// Splits a shell line into its command word and the rest.
pub fn split_command(line: &str) -> Option<(&str, &str)> {
    let line = line.trim_start();
    if line.is_empty() {
        return None;
    }
    match line.find(char::is_whitespace) {
        Some(i) => Some((&line[..i], &line[i..])),
        None => Some((line, "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_text_keeps_its_spacing() {
        let (cmd, rest) = split_command("  send bob  Hello   there  ").unwrap();
        assert_eq!(cmd, "send");
        let args = Args::parse(rest);
        assert_eq!(args.get(0), Some("bob"));
        assert_eq!(args.rest(1), "Hello   there");
        assert_eq!(args.rest(5), "");
        assert!(split_command("   ").is_none());
    }
}
