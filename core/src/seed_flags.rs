//! The seeds' own command lines keep working: seed B runs `server.py -sp
//! PORT` and `client.py -u USER -sip IP -sp PORT`, single dash and all.
//! The binaries take `--sp` and `--sip`; this rewrites the single-dash
//! forms to them before the command line is parsed (where `-sp` would
//! otherwise read as `-s p`).

use std::ffi::OsString;

/// The arguments with `-sip` and `-sp` (alone, or as `-sp=PORT`) written
/// with two dashes; everything else as it was.
pub fn rewritten(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|arg| {
            let Some(text) = arg.to_str() else {
                return arg;
            };
            for flag in ["-sip", "-sp"] {
                if text == flag || text.strip_prefix(flag).is_some_and(|r| r.starts_with('=')) {
                    return OsString::from(format!("-{text}"));
                }
            }
            arg
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(args: &[&str]) -> Vec<String> {
        rewritten(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn the_seeds_single_dash_flags_get_two() {
        assert_eq!(
            words(&["client", "-u", "Alice", "-sip", "10.0.0.5", "-sp", "9090"]),
            ["client", "-u", "Alice", "--sip", "10.0.0.5", "--sp", "9090"]
        );
        assert_eq!(words(&["server", "-sp=9090"]), ["server", "--sp=9090"]);
        assert_eq!(
            words(&[
                "client",
                "-s",
                "10.0.0.5:9090",
                "--sp",
                "1",
                "-spx",
                "send",
                "-sp"
            ]),
            [
                "client",
                "-s",
                "10.0.0.5:9090",
                "--sp",
                "1",
                "-spx",
                "send",
                "--sp"
            ],
            "only the flags themselves"
        );
    }
}
