//! `help` is generated from the registry: snapshot the overview, so a
//! command that vanishes or changes its usage line is noticed. After a
//! change on purpose, refresh it with
//! `UPDATE_SNAPSHOTS=1 cargo test -p udpchat-commands --test help`.

use udpchat_core::registry::Registry;

#[test]
fn overview_snapshot() {
    udpchat_commands::link();
    let text = udpchat_commands::help::overview(Registry::global());
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/help.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(path, &text).unwrap();
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(
        text, expected,
        "`help` changed; if on purpose, refresh commands/tests/snapshots/help.txt \
         (UPDATE_SNAPSHOTS=1 cargo test -p udpchat-commands --test help)"
    );
}
