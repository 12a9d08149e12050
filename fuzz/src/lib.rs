//! udpchat's fuzz targets: one function per decoder that bytes from the
//! network (or a key file) reach, in [`targets`]. The same function serves
//! two runners:
//!
//! - libFuzzer, coverage-guided, through the thin binaries in
//!   `fuzz_targets/` (feature `libfuzzer`; `fuzz/run.sh`, CI, and
//!   `cargo fuzz`);
//! - `cargo test`, deterministic: every target over its checked-in corpus
//!   (`fuzz/corpus/<target>/`) and over a few thousand inputs that
//!   proptest generates from the seeds and from the formats' structure.
//!
//! A target panics on a bug (a decoder that panics, or a round trip that
//! does not give its input back) and otherwise returns whether the input
//! was accepted all the way through. [`seeds`] makes the valid examples
//! the corpus starts from. How to run it all: `docs/FUZZING.md`.
#![forbid(unsafe_code)]

pub mod fixtures;
pub mod seeds;
pub mod targets;

/// One fuzz target: its name (the binary, the corpus directory) and its
/// function.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    /// Panics on a bug; returns whether the input was accepted.
    pub run: fn(&[u8]) -> bool,
}

/// Every target, in the order `fuzz/run.sh` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "wire_packet",
        run: targets::wire_packet,
    },
    Target {
        name: "transport_packet",
        run: targets::transport_packet,
    },
    Target {
        name: "transport_endpoint",
        run: targets::transport_endpoint,
    },
    Target {
        name: "envelope",
        run: targets::envelope,
    },
    Target {
        name: "command_body",
        run: targets::command_body,
    },
    Target {
        name: "sealed",
        run: targets::sealed,
    },
    Target {
        name: "group_line",
        run: targets::group_line,
    },
    Target {
        name: "handshake",
        run: targets::handshake,
    },
    Target {
        name: "meeting",
        run: targets::meeting,
    },
    Target {
        name: "keyfile",
        run: targets::keyfile,
    },
];
