//! The fuzz targets in the normal test run, deterministically: each over
//! its checked-in corpus, and over a few thousand inputs proptest makes
//! from the seeds (mutated bytes, mutated CBOR trees, made-up ACK ranges)
//! and from nothing (random bytes). A regression in a decoder shows up
//! here without running a fuzzer; docs/FUZZING.md has the long runs.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use ciborium::Value;
use proptest::prelude::*;
use proptest::sample::Index;
use udpchat_core::registry::Registry;
use udpchat_fuzz::seeds::{self, Seed};
use udpchat_fuzz::targets::{self, bodies, exchange, Record};
use udpchat_fuzz::TARGETS;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target)
}

fn run(target: &str, bytes: &[u8]) -> bool {
    let target = TARGETS
        .iter()
        .find(|t| t.name == target)
        .unwrap_or_else(|| panic!("no target {target}"));
    (target.run)(bytes)
}

fn seeds_of(target: &str) -> Vec<Seed> {
    seeds::all()
        .into_iter()
        .filter(|s| s.target == target)
        .collect()
}

#[test]
fn the_checked_in_seeds_are_the_generated_ones() {
    let write = std::env::var_os("UDPCHAT_FUZZ_WRITE_SEEDS").is_some();
    let mut stale = Vec::new();
    for seed in seeds::all() {
        let path = corpus_dir(seed.target).join(&seed.name);
        if write {
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, &seed.bytes).unwrap();
        } else if fs::read(&path).ok().as_ref() != Some(&seed.bytes) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "seed files missing or out of date (write them with \
         UDPCHAT_FUZZ_WRITE_SEEDS=1 cargo test -p udpchat-fuzz --test targets): {stale:#?}"
    );
}

#[test]
fn every_seed_is_accepted_all_the_way_through() {
    for seed in seeds::all() {
        assert!(
            run(seed.target, &seed.bytes),
            "{}/{} is refused",
            seed.target,
            seed.name
        );
    }
}

#[test]
fn every_target_runs_over_its_checked_in_corpus() {
    let names: BTreeSet<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(names.len(), TARGETS.len(), "two targets share a name");
    for target in TARGETS {
        let dir = corpus_dir(target.name);
        let mut files = 0;
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            (target.run)(&fs::read(&path).unwrap());
            files += 1;
        }
        let seeds = seeds_of(target.name).len();
        assert!(
            seeds > 0 && files >= seeds,
            "{}: {files} files, {seeds} seeds",
            target.name
        );
    }
    // Every corpus directory belongs to a target (a renamed target leaves none behind).
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for entry in fs::read_dir(root).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(names.contains(name.as_str()), "corpus/{name} has no target");
    }
}

#[test]
fn every_body_a_handler_takes_is_fuzzed_and_every_example_is_of_one() {
    let fuzzed: BTreeSet<&str> = bodies().iter().map(|b| b.name).collect();
    // A request's body and reply, a push's body: from the descriptors.
    for command in Registry::global().all() {
        let wires = [
            command.serve.map(|w| w.bodies),
            command.answer.map(|w| w.bodies),
            command.on_push.map(|w| w.bodies),
        ];
        for body in wires.into_iter().flatten().flatten() {
            assert!(
                fuzzed.contains((body.name)()),
                "`{}` takes {}, which is not fuzzed",
                command.words(),
                (body.name)()
            );
        }
    }
    assert!(fuzzed.contains("udpchat_core::error::CommandError"));
    for (name, _) in seeds::command_body_examples() {
        assert!(
            fuzzed.contains(name),
            "an example of {name}, which no handler takes"
        );
    }
}

#[test]
fn the_record_format_reads_back_what_it_wrote() {
    let mut bytes = Vec::new();
    let written = [
        Record {
            to_b: true,
            step: 127,
            datagram: b"abc",
        },
        Record {
            to_b: false,
            step: 0,
            datagram: b"",
        },
    ];
    for record in &written {
        record.write(&mut bytes);
    }
    assert_eq!(targets::records(&bytes).collect::<Vec<_>>(), written);
    // A record cut short keeps what is there.
    let cut: Vec<_> = targets::records(&bytes[..5]).collect();
    assert_eq!(cut[0].datagram, b"ab");
}

/// Why the CBOR targets check the round trip by value: the same envelope
/// has more than one encoding that decodes (here, its map keys in another
/// order), and only one of them is what `encode` writes.
#[test]
fn an_envelope_has_more_than_one_encoding_so_its_round_trip_is_by_value() {
    use udpchat_commands::ping::Ping;
    use udpchat_core::envelope::{Envelope, Kind};
    use udpchat_core::packet::Packet;
    let envelope = Envelope::new(Ping::TAG, 7, Kind::Request, vec![0xf6]);
    let reordered = encode(&Value::Map(vec![
        (Value::Text("b".into()), Value::Bytes(vec![0xf6])),
        (Value::Text("k".into()), Value::Integer(0.into())),
        (Value::Text("i".into()), Value::Integer(7.into())),
        (Value::Text("c".into()), Value::Text(Ping::TAG.into())),
    ]));
    assert_ne!(reordered, envelope.encode());
    assert_eq!(Envelope::decode(&reordered), Ok(envelope));
    assert!(targets::envelope(&reordered));
}

// -- mutated seeds ------------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Set(Index, u8),
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Remove(Index, u8),
    /// A byte set to a value decoders treat specially.
    Boundary(Index, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, bit)| Mutation::Flip(i, bit)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        (
            any::<Index>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, bytes)| Mutation::Insert(i, bytes)),
        (any::<Index>(), 1u8..32).prop_map(|(i, n)| Mutation::Remove(i, n)),
        (
            any::<Index>(),
            prop::sample::select(vec![0u8, 1, 0x7f, 0x80, 0xfe, 0xff])
        )
            .prop_map(|(i, b)| Mutation::Boundary(i, b)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len();
        match m {
            Mutation::Flip(i, bit) if len > 0 => bytes[i.index(len)] ^= 1 << bit,
            Mutation::Set(i, b) | Mutation::Boundary(i, b) if len > 0 => bytes[i.index(len)] = *b,
            Mutation::Truncate(i) => bytes.truncate(i.index(len + 1)),
            Mutation::Insert(i, new) => {
                let at = i.index(len + 1);
                bytes.splice(at..at, new.iter().copied());
            }
            Mutation::Remove(i, n) if len > 0 => {
                let at = i.index(len);
                bytes.drain(at..(at + usize::from(*n)).min(len));
            }
            _ => {}
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn mutated_seeds_never_break_a_target(
        seed in any::<Index>(),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let all = seeds::all_cached();
        let seed = &all[seed.index(all.len())];
        run(seed.target, &mutate(seed.bytes.clone(), &mutations));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn random_bytes_never_break_a_target(
        target in any::<Index>(),
        bytes in proptest::collection::vec(any::<u8>(), 0..1300),
    ) {
        (TARGETS[target.index(TARGETS.len())].run)(&bytes);
    }
}

// -- structure-aware: CBOR trees ----------------------------------------

/// Field names and enum words of the CBOR formats, so generated maps hit
/// real fields; the registry's command names (wire tags and subcommands'
/// `op`s) are added to them in [`words`].
const FIELDS: &[&str] = &[
    "c",
    "i",
    "k",
    "b",
    "user",
    "users",
    "text",
    "from",
    "to",
    "id",
    "outcome",
    "op",
    "group",
    "open",
    "members",
    "count",
    "prefix",
    "total",
    "addr",
    "identity",
    "password",
    "seq",
    "time_ms",
    "messages",
    "omitted",
    "groups",
    "note",
    "one_time",
    "signed",
    "public",
    "signature",
    "sealed",
    "message",
    "from_identity",
    "sent_at_ms",
    "changes",
    "online",
    "sender_identity",
    "ephemeral",
    "signed_prekey_id",
    "one_time_prekey_id",
    "ciphertext",
    "code",
    "name",
    "owner",
    "delivered",
    "expired",
];

/// [`FIELDS`] and every command's name.
fn words() -> Vec<&'static str> {
    udpchat_commands::link();
    let names = Registry::global().all().map(|c| c.name);
    let mut words: Vec<&'static str> = FIELDS.iter().copied().chain(names).collect();
    words.sort_unstable();
    words.dedup();
    words
}

fn leaf() -> impl Strategy<Value = Value> {
    let key = udpchat_fuzz::fixtures::fixture().alice.public().to_bytes();
    prop_oneof![
        any::<u64>().prop_map(|n| Value::Integer(n.into())),
        any::<i64>().prop_map(|n| Value::Integer(n.into())),
        (0u64..300).prop_map(|n| Value::Integer(n.into())),
        any::<bool>().prop_map(Value::Bool),
        Just(Value::Null),
        any::<f64>().prop_map(Value::Float),
        prop::sample::select(words()).prop_map(|w| Value::Text(w.to_string())),
        ".{0,12}".prop_map(Value::Text),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Bytes),
        Just(Value::Bytes(key)),
        (any::<u64>(), Just(Value::Null)).prop_map(|(t, v)| Value::Tag(t, Box::new(v))),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop::sample::select(words()).prop_map(|w| Value::Text(w.to_string())),
                    inner
                ),
                0..6
            )
            .prop_map(Value::Map),
        ]
    })
}

fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(value, &mut out).unwrap();
    out
}

/// Nodes of a tree in preorder, each as a mutable reference, and replaces
/// the `n`th with `new`.
fn replace_node(tree: &mut Value, n: &mut usize, new: &Value) -> bool {
    if *n == 0 {
        *tree = new.clone();
        return true;
    }
    *n -= 1;
    let children: Vec<&mut Value> = match tree {
        Value::Array(items) => items.iter_mut().collect(),
        Value::Map(entries) => entries.iter_mut().flat_map(|(k, v)| [k, v]).collect(),
        Value::Tag(_, inner) => vec![inner.as_mut()],
        _ => Vec::new(),
    };
    children
        .into_iter()
        .any(|child| replace_node(child, n, new))
}

fn node_count(tree: &Value) -> usize {
    1 + match tree {
        Value::Array(items) => items.iter().map(node_count).sum(),
        Value::Map(entries) => entries
            .iter()
            .map(|(k, v)| node_count(k) + node_count(v))
            .sum(),
        Value::Tag(_, inner) => node_count(inner),
        _ => 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// A made-up CBOR tree through the envelope and every body type.
    #[test]
    fn made_up_cbor_never_breaks_a_cbor_decoder(tree in value()) {
        let bytes = encode(&tree);
        targets::envelope(&bytes);
        targets::sealed(&bytes);
        for body in bodies() {
            (body.check)(&bytes);
        }
    }

    /// A real body or envelope with one node of its tree replaced.
    #[test]
    fn real_cbor_with_one_node_replaced_never_breaks_its_decoder(
        example in any::<Index>(),
        node in any::<Index>(),
        new in value(),
    ) {
        let examples: Vec<(usize, Vec<u8>)> = seeds::all_cached()
            .iter()
            .filter(|s| matches!(s.target, "command_body" | "envelope" | "sealed"))
            .map(|s| match s.target {
                "command_body" => (usize::from(s.bytes[0]), s.bytes[1..].to_vec()),
                "envelope" => (usize::MAX, s.bytes.clone()),
                _ => (usize::MAX - 1, s.bytes.clone()),
            })
            .collect();
        let (kind, bytes) = &examples[example.index(examples.len())];
        let mut tree: Value = ciborium::de::from_reader(&bytes[..]).unwrap();
        let mut n = node.index(node_count(&tree));
        prop_assert!(replace_node(&mut tree, &mut n, &new));
        let bytes = encode(&tree);
        match *kind {
            usize::MAX => { targets::envelope(&bytes); }
            k if k == usize::MAX - 1 => { targets::sealed(&bytes); }
            k => { (bodies()[k].check)(&bytes); }
        }
    }
}

// -- structure-aware: transport datagrams ---------------------------------

fn ranges() -> impl Strategy<Value = Vec<(u64, u64)>> {
    let bound = prop_oneof![0u64..16, any::<u64>(), Just(u64::MAX), Just(u64::MAX - 1)];
    proptest::collection::vec((bound.clone(), bound), 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// ACKs of A's real session with made-up ranges (in any order, empty,
    /// overlapping, at the ends of u64), fed to A and through the decoder;
    /// plus the same ranges sorted into the well-formed shape.
    #[test]
    fn made_up_ack_ranges_never_break_the_transport(
        ranges in ranges(),
        count in prop::option::of(any::<u8>()),
        step in 0u8..128,
    ) {
        let ex = exchange();
        // Version, kind, incarnation, acked incarnation, ack delay.
        let header = &ex.b_to_a[0][..22];
        let ack = |ranges: &[(u64, u64)]| {
            let mut out = header.to_vec();
            out.push(count.unwrap_or(ranges.len().min(255) as u8));
            for (start, end) in ranges.iter().take(255) {
                out.extend_from_slice(&start.to_be_bytes());
                out.extend_from_slice(&end.to_be_bytes());
            }
            out
        };
        // Largest first, with gaps: the shape the decoder accepts.
        let mut sorted: Vec<(u64, u64)> = Vec::new();
        let mut flat: Vec<u64> = ranges.iter().flat_map(|&(s, e)| [s, e]).collect();
        flat.sort_unstable_by(|a, b| b.cmp(a));
        flat.dedup();
        for pair in flat.chunks_exact(2) {
            if sorted.last().is_none_or(|&(start, _)| pair[0] < start.saturating_sub(1)) {
                sorted.push((pair[1], pair[0]));
            }
        }
        for datagram in [ack(&ranges), ack(&sorted)] {
            targets::transport_packet(&datagram);
            let mut records = Vec::new();
            Record { to_b: false, step, datagram: &datagram }.write(&mut records);
            targets::transport_endpoint(&records);
        }
        if count.is_none() && !sorted.is_empty() && sorted.len() <= 255 {
            prop_assert!(targets::transport_packet(&ack(&sorted)), "{:?}", sorted);
        }
    }

    /// DATA headers with made-up fields, for A's real session, to B.
    #[test]
    fn made_up_data_headers_never_break_the_transport(
        pn in prop_oneof![0u64..8, any::<u64>()],
        msg_seq in prop_oneof![0u32..4, any::<u32>()],
        base_seq in prop_oneof![0u32..4, any::<u32>()],
        frag_index in prop_oneof![0u16..4, any::<u16>()],
        frag_count in prop_oneof![0u16..4, any::<u16>()],
        payload in proptest::collection::vec(any::<u8>(), 0..1200),
        step in 0u8..128,
    ) {
        let ex = exchange();
        let mut datagram = ex.a_to_b[0][..10].to_vec();
        datagram.extend_from_slice(&pn.to_be_bytes());
        datagram.extend_from_slice(&msg_seq.to_be_bytes());
        datagram.extend_from_slice(&base_seq.to_be_bytes());
        datagram.extend_from_slice(&frag_index.to_be_bytes());
        datagram.extend_from_slice(&frag_count.to_be_bytes());
        datagram.extend_from_slice(&payload);
        targets::transport_packet(&datagram);
        let mut records = Vec::new();
        Record { to_b: true, step, datagram: &datagram }.write(&mut records);
        Record { to_b: true, step: 0, datagram: &datagram }.write(&mut records);
        targets::transport_endpoint(&records);
    }
}
