//! The shell's history: one file per user in the client's data dir
//! (`<data dir>/history/<user>.txt`, `_.txt` before signing in), searched
//! with Ctrl-R and used for hints. A line that holds a password never
//! reaches it: [`ChatHistory`] refuses to save one, whatever saves it.

use std::path::{Path, PathBuf};

use reedline::{
    FileBackedHistory, History, HistoryItem, HistoryItemId, HistorySessionId, ReedlineError,
    ReedlineErrorVariants, SearchQuery,
};
use udpchat_core::args::split_command;
use udpchat_core::args::{arg_at, ArgKind};
use udpchat_core::private_files;
use udpchat_core::registry::Registry;

/// Lines kept per user.
const CAPACITY: usize = 5000;

/// Why a line was not saved (reedline hands it back from `save`).
pub const REFUSED: &str = "a line holding a password is not kept in history";
/// Why a line that is no command was not saved: it may well be a password
/// typed at the wrong prompt. (One close to a command, `lsit`, is kept,
/// to be mended; so is a conversation's message.)
pub const NOT_A_COMMAND: &str = "a line that is no command is not kept in history";

/// Where `user`'s history lives.
pub fn file(data_dir: &Path, user: Option<&str>) -> PathBuf {
    data_dir
        .join("history")
        .join(format!("{}.txt", user.unwrap_or("_")))
}

/// Whether a conversation is on (a plain line is then a message).
pub type Conversing = Box<dyn Fn() -> bool + Send>;

/// A file-backed history that never keeps a password.
pub struct ChatHistory {
    inner: FileBackedHistory,
    registry: &'static Registry,
    conversing: Conversing,
}

impl ChatHistory {
    /// The history in `path`, a file only its owner can read (in a
    /// directory only its owner can enter: see
    /// `udpchat_core::private_files`); in memory only (with a warning) when
    /// the file cannot be used, since a shell without saved history still
    /// works.
    pub fn open(path: PathBuf, registry: &'static Registry, conversing: Conversing) -> ChatHistory {
        let private = path
            .parent()
            .map_or(Ok(()), private_files::dir)
            .and_then(|()| private_files::file(&path));
        let inner = private
            .and_then(|()| FileBackedHistory::with_file(CAPACITY, path.clone()).map_err(Into::into))
            .unwrap_or_else(|e: std::io::Error| {
                tracing::warn!("history is not saved: cannot use {}: {e}", path.display());
                FileBackedHistory::new(CAPACITY).expect("a small capacity is valid")
            });
        ChatHistory {
            inner,
            registry,
            conversing,
        }
    }
}

/// The byte offset of a password in a typed line (a command, or a `/command`
/// in conversation mode), if the line holds one. A mistyped command word
/// counts as the command it is closest to (`sigup bob hunter2`).
pub fn password_at(registry: &Registry, line: &str) -> Option<usize> {
    let trimmed = line.trim_start();
    let command_text = trimmed.strip_prefix('/').unwrap_or(trimmed);
    let offset = line.len() - command_text.len();
    let (word, _) = split_command(command_text)?;
    let command = registry
        .shell(word)
        .or_else(|| registry.mistyped(word).and_then(|w| registry.shell(w)))?;
    let words = crate::shell::completion::words(command_text);
    // The first word that fills a password argument (free text before it
    // would take it in: then it is no password).
    (1..words.len()).find_map(|i| {
        let arg = arg_at(command.args, i - 1)?;
        (arg.kind == ArgKind::Password).then(|| offset + words[i].0)
    })
}

/// Whether a typed line is neither a command (nor close to one) nor, in a
/// conversation, a message: a word typed at the wrong prompt.
pub fn is_stray(registry: &Registry, line: &str, conversing: bool) -> bool {
    let trimmed = line.trim_start();
    let command_text = match trimmed.strip_prefix('/') {
        Some(command) => command,
        None if conversing => return false,
        None => trimmed,
    };
    match split_command(command_text) {
        Some((word, _)) => registry.shell(word).is_none() && registry.mistyped(word).is_none(),
        None => false,
    }
}

/// The line with its password and everything after it taken off, for
/// recalling it with the up arrow.
pub fn without_password(registry: &Registry, line: &str) -> String {
    match password_at(registry, line) {
        Some(at) => line[..at].to_string(),
        None => line.to_string(),
    }
}

fn refused<T>() -> reedline::Result<T> {
    Err(ReedlineError(ReedlineErrorVariants::OtherHistoryError(
        REFUSED,
    )))
}

impl History for ChatHistory {
    fn save(&mut self, mut item: HistoryItem) -> reedline::Result<HistoryItem> {
        if password_at(self.registry, &item.command_line).is_some() {
            return refused();
        }
        if is_stray(self.registry, &item.command_line, (self.conversing)()) {
            return Err(ReedlineError(ReedlineErrorVariants::OtherHistoryError(
                NOT_A_COMMAND,
            )));
        }
        // Completion leaves a space at the end: `list ` is `list`.
        item.command_line
            .truncate(item.command_line.trim_end().len());
        self.inner.save(item)
    }

    fn load(&self, id: HistoryItemId) -> reedline::Result<HistoryItem> {
        self.inner.load(id)
    }

    fn count(&self, query: SearchQuery) -> reedline::Result<i64> {
        self.inner.count(query)
    }

    fn search(&self, query: SearchQuery) -> reedline::Result<Vec<HistoryItem>> {
        self.inner.search(query)
    }

    fn update(
        &mut self,
        id: HistoryItemId,
        updater: &dyn Fn(HistoryItem) -> HistoryItem,
    ) -> reedline::Result<()> {
        let registry = self.registry;
        self.inner.update(id, &|item| {
            let updated = updater(item.clone());
            if password_at(registry, &updated.command_line).is_some() {
                item
            } else {
                updated
            }
        })
    }

    fn clear(&mut self) -> reedline::Result<()> {
        self.inner.clear()
    }

    fn delete(&mut self, id: HistoryItemId) -> reedline::Result<()> {
        self.inner.delete(id)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        self.inner.sync()
    }

    fn session(&self) -> Option<HistorySessionId> {
        self.inner.session()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_core::args::Arg;
    use udpchat_core::registry::{Command, NoOp};

    const fn command(name: &'static str, args: &'static [Arg]) -> Command {
        Command::new(name, "test")
            .args(args)
            .module("test")
            .shell::<NoOp>()
    }

    static SIGNUP: Command = command(
        "signup",
        &[Arg::one("user", ArgKind::User), Arg::password()],
    );
    static SEND: Command = command(
        "send",
        &[Arg::one("user", ArgKind::User), Arg::text("message")],
    );

    fn registry() -> &'static Registry {
        static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        REGISTRY.get_or_init(|| Registry::build(vec![&SIGNUP, &SEND], Vec::new()))
    }

    fn saved(history: &ChatHistory) -> Vec<String> {
        history
            .search(SearchQuery::everything(
                reedline::SearchDirection::Forward,
                None,
            ))
            .unwrap()
            .into_iter()
            .map(|item| item.command_line)
            .collect()
    }

    #[test]
    fn a_line_with_a_password_never_reaches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), Some("alice"));
        let mut history = ChatHistory::open(path.clone(), registry(), Box::new(|| false));
        for line in [
            "signup alice",
            "signup alice hunter2",
            "  /signup alice hunter2",
            "sinup alice hunter2",
            // Too far from signin to suggest it, close enough to keep out.
            "sign alice hunter2",
            "SIGNUP alice hunter2",
            "send bob signup alice hunter2  ",
        ] {
            let result = history.save(HistoryItem::from_command_line(line));
            assert_eq!(
                result.is_err(),
                line.contains("hunter2") && !line.starts_with("send"),
                "{line}"
            );
        }
        assert_eq!(
            saved(&history),
            ["signup alice", "send bob signup alice hunter2"]
        );
        history.sync().unwrap();
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            on_disk.lines().collect::<Vec<_>>(),
            ["signup alice", "send bob signup alice hunter2"]
        );
    }

    #[test]
    fn a_refused_line_is_recalled_without_its_password() {
        assert_eq!(
            without_password(registry(), "/signup alice hunter2 more"),
            "/signup alice "
        );
        assert_eq!(without_password(registry(), "send bob x"), "send bob x");
    }

    #[test]
    fn a_word_that_is_no_command_is_not_kept_unless_it_is_a_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), Some("alice"));
        let talking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let on = talking.clone();
        let mut history = ChatHistory::open(
            path.clone(),
            registry(),
            Box::new(move || on.load(std::sync::atomic::Ordering::SeqCst)),
        );
        for line in ["Tr0ub4dor&3", "correct horse battery", "/hunter2"] {
            let refused = history.save(HistoryItem::from_command_line(line));
            assert!(refused.is_err(), "{line} was kept");
        }
        history
            .save(HistoryItem::from_command_line("sedn bob hi"))
            .expect("close to a command: kept, to be mended");
        talking.store(true, std::sync::atomic::Ordering::SeqCst);
        history
            .save(HistoryItem::from_command_line("see you at five"))
            .expect("a conversation's message");
        assert!(history
            .save(HistoryItem::from_command_line("/hunter2"))
            .is_err());
        history.sync().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "sedn bob hi\nsee you at five\n"
        );
    }

    #[test]
    fn the_history_file_and_its_dir_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), Some("alice"));
        let mut history = ChatHistory::open(path.clone(), registry(), Box::new(|| false));
        history
            .save(HistoryItem::from_command_line("send bob hi"))
            .unwrap();
        history.sync().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "send bob hi\n");
    }

    #[test]
    fn history_is_per_user() {
        let dir = Path::new("/data");
        assert_eq!(
            file(dir, Some("alice")),
            Path::new("/data/history/alice.txt")
        );
        assert_eq!(file(dir, None), Path::new("/data/history/_.txt"));
    }
}
