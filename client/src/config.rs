//! Settings people keep: a TOML file with the default server, user,
//! colours and bell (and the data dir, the server's key, the presence
//! timeout). Flags override it; `udpchat config` shows what is in force and
//! where each setting came from.
//!
//! The file is `--config FILE` if given; else `$XDG_CONFIG_HOME/udpchat/
//! config.toml` (`~/.config/udpchat/config.toml`) if it exists; else
//! `config.toml` in the data dir, if it exists. No password is read from
//! it: a password belongs in no file.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::parser::ValueSource;
use clap::ArgMatches;
use serde::Deserialize;

/// When to colour the shell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Colour {
    // On a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    Always,
    Never,
}

impl Colour {
    pub fn word(self) -> &'static str {
        match self {
            Colour::Auto => "auto",
            Colour::Always => "always",
            Colour::Never => "never",
        }
    }
}

/// What the file may say; every setting may be left out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: Option<String>,
    pub server_key: Option<PathBuf>,
    pub user: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub colour: Option<Colour>,
    pub bell: Option<bool>,
    pub presence_timeout: Option<u64>,
}

/// The file found (if any) and what it says.
#[derive(Debug, Default)]
pub struct Found {
    pub path: Option<PathBuf>,
    pub settings: Settings,
}

/// The user's own config file, where it would be.
fn in_home() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
    Some(base.join("udpchat").join("config.toml"))
}

/// Reads the file: `explicit` (which must exist), else the user's own,
/// else the one in `data_dir`; none found is no settings.
pub fn find(explicit: Option<&Path>, data_dir: &Path) -> anyhow::Result<Found> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => {
            let candidates = [in_home(), Some(data_dir.join("config.toml"))];
            match candidates.into_iter().flatten().find(|p| p.exists()) {
                Some(path) => path,
                None => return Ok(Found::default()),
            }
        }
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let settings: Settings = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message().trim()))?;
    if settings.data_dir.is_some() && path.starts_with(data_dir) {
        bail!(
            "{}: data_dir cannot be set from inside the data dir",
            path.display()
        );
    }
    Ok(Found {
        path: Some(path),
        settings,
    })
}

/// Where a setting in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    CommandLine,
    File,
    Default,
}

impl Source {
    fn word(self) -> &'static str {
        match self {
            Source::CommandLine => "command line",
            Source::File => "config file",
            Source::Default => "default",
        }
    }
}

/// Takes `file`'s value for the setting `id` unless the command line gave
/// one; where the value in force came from.
pub fn merge<T>(matches: &ArgMatches, ids: &[&str], value: &mut T, file: Option<T>) -> Source {
    let typed = ids
        .iter()
        .any(|id| matches.value_source(id) == Some(ValueSource::CommandLine));
    match (typed, file) {
        (true, _) => Source::CommandLine,
        (false, Some(file)) => {
            *value = file;
            Source::File
        }
        (false, None) => Source::Default,
    }
}

/// What `udpchat config` shows: every setting in force as a line of TOML,
/// with where it came from, under the file's name.
pub fn shown(file: Option<&Path>, settings: &[(&str, Option<String>, Source)]) -> String {
    let mut lines = vec![match file {
        Some(path) => format!("# settings in force; config file: {}", path.display()),
        None => format!(
            "# settings in force; no config file (it would be {}, or config.toml in the data dir)",
            in_home().map_or("~/.config/udpchat/config.toml".into(), |p| p
                .display()
                .to_string())
        ),
    }];
    let line = |name: &str, value: &Option<String>| match value {
        Some(value) => format!("{name} = {value}"),
        None => format!("# {name} is not set"),
    };
    let width = settings
        .iter()
        .map(|(name, value, _)| line(name, value).len())
        .max()
        .unwrap_or(0);
    for (name, value, from) in settings {
        lines.push(format!("{:width$}  # {}", line(name, value), from.word()));
    }
    lines.join("\n")
}

/// A value as TOML writes it.
pub fn toml_value(value: impl Into<toml::Value>) -> String {
    value.into().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_names_what_it_sets_and_refuses_what_it_does_not_know() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "server = \"chat.example:4590\"\nuser = \"alice\"\nbell = false\ncolour = \"never\"\n",
        )
        .unwrap();
        let found = find(Some(&path), Path::new("/nowhere")).unwrap();
        assert_eq!(found.settings.server.as_deref(), Some("chat.example:4590"));
        assert_eq!(found.settings.bell, Some(false));
        assert_eq!(found.settings.colour, Some(Colour::Never));

        std::fs::write(&path, "sever = \"typo\"\n").unwrap();
        let error = find(Some(&path), Path::new("/nowhere"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `sever`"), "{error}");
        std::fs::write(&path, "password = \"no\"\n").unwrap();
        assert!(
            find(Some(&path), Path::new("/nowhere")).is_err(),
            "no password in a file"
        );
        let missing = find(Some(&dir.path().join("gone.toml")), Path::new("/nowhere"));
        assert!(missing
            .unwrap_err()
            .to_string()
            .contains("cannot read the config file"));
    }

    #[test]
    fn the_data_dirs_file_is_found_and_cannot_move_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let found = find(None, dir.path());
        // The home's file may exist on this machine: only the data dir's is
        // checked when it does not.
        if in_home().is_some_and(|p| p.exists()) {
            return;
        }
        assert!(found.unwrap().path.is_none());
        std::fs::write(dir.path().join("config.toml"), "user = \"bob\"\n").unwrap();
        let found = find(None, dir.path()).unwrap();
        assert_eq!(found.settings.user.as_deref(), Some("bob"));
        std::fs::write(dir.path().join("config.toml"), "data_dir = \"x\"\n").unwrap();
        assert!(find(None, dir.path()).is_err());
    }
}
