//! Smoke test: `udpchat-bench --quick` runs the baseline, the `rpc`
//! scenario and the attack scenarios (`flood`, `fragments`, `bare`) against
//! the real `udpchat-server` and writes their JSON with the documented
//! fields. It checks that the tool works, never how fast anything is. A
//! short `soak` also checks what users would notice: no message lost or
//! shown twice while clients come and go.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// `udpchat-server`, built next to this test's binaries.
fn server_binary() -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_udpchat-bench"));
    let path = bench.with_file_name(format!("udpchat-server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace`)",
        path.display()
    );
    path
}

/// Runs a quick scenario (with `extra` arguments of its own) and returns
/// its JSON report.
fn run_quick(scenario: &str, extra: &[&str], out: &Path) -> Value {
    quick(scenario, extra, out).1
}

/// The same, with the table it printed.
fn quick(scenario: &str, extra: &[&str], out: &Path) -> (String, Value) {
    let mut args = vec!["--duration", "0.5", "--warmup", "0.1", "--clients", "4"];
    args.extend_from_slice(extra);
    run(scenario, &args, out)
}

/// Runs `udpchat-bench --quick SCENARIO ARGS` against the server built
/// beside it, writing to `out`; its stdout and its JSON report.
fn run(scenario: &str, args: &[&str], out: &Path) -> (String, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_udpchat-bench"))
        .args(["--quick", scenario, "--no-progress", "--out"])
        .arg(out)
        .arg("--server-bin")
        .arg(server_binary())
        .args(args)
        .output()
        .expect("run udpchat-bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "udpchat-bench {scenario} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(&format!("== {scenario} ==")), "{stdout}");
    let path = out.join(format!("{scenario}.json"));
    let text = std::fs::read_to_string(&path).expect("the scenario's JSON");
    (stdout, serde_json::from_str(&text).expect("valid JSON"))
}

fn check_row(row: &Value) {
    for key in ["name", "ops", "errors", "seconds", "rate", "unit", "extra"] {
        assert!(row.get(key).is_some(), "row without {key}: {row}");
    }
    assert!(row["ops"].as_u64().unwrap() > 0, "nothing completed: {row}");
    let latency = &row["latency_us"];
    for key in ["p50", "p99", "p999", "max", "count"] {
        assert!(latency[key].is_u64(), "latency without {key}: {row}");
    }
    let server = &row["server"];
    for key in ["cpu_s", "rss_kib", "peak_rss_kib"] {
        assert!(server[key].is_number(), "server usage without {key}: {row}");
    }
}

/// A row of a closed-loop load also says what the bench itself used over
/// the measured stretch, so a reader sees when the load generator, not the
/// server, sets the rate.
fn check_generator(row: &Value) {
    let generator = &row["generator"];
    for key in ["cpu_s", "rss_kib", "peak_rss_kib"] {
        assert!(
            generator[key].is_number(),
            "generator usage without {key}: {row}"
        );
    }
    assert!(
        generator["cpu_s"].as_f64().unwrap() > 0.0,
        "a load generator that used no CPU: {row}"
    );
}

#[test]
fn quick_udp_echo_and_rpc_write_their_reports() {
    let out = tempfile::tempdir().expect("temp dir");

    let echo = run_quick("udp-echo", &[], out.path());
    assert_eq!(echo["scenario"], "udp-echo");
    assert_eq!(echo["available"], true);
    assert!(echo["machine"]["cpus"].as_u64().unwrap() >= 1);
    let baseline = &echo["baseline"];
    check_row(baseline);
    check_generator(baseline);
    assert_eq!(baseline["ratio"], 1.0);

    let (table, rpc) = quick("rpc", &[], out.path());
    assert!(table.contains("gen us/op"), "{table}");
    assert_eq!(rpc["scenario"], "rpc");
    check_row(&rpc["baseline"]);
    let rows = rpc["rows"].as_array().expect("rows");
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["list", "lookup"]);
    for row in rows {
        check_row(row);
        check_generator(row);
        assert_eq!(row["errors"], 0, "{row}");
        assert!(row["ratio"].is_f64(), "no ratio to the baseline: {row}");
    }
}

fn row_names(report: &Value) -> Vec<&str> {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect()
}

#[test]
fn quick_flood_and_fragments_write_their_reports() {
    let out = tempfile::tempdir().expect("temp dir");

    let flood = run_quick("flood", &["--rate", "2000"], out.path());
    assert_eq!(flood["scenario"], "flood");
    assert_eq!(flood["available"], true);
    let mut names = Vec::new();
    for phase in ["calm", "spoofed flood", "cookie flood", "KEY REQUEST flood"] {
        names.push(format!("list, {phase}"));
        names.push(format!("sign-in, {phase}"));
        if phase != "calm" {
            names.push(format!("junk, {phase}"));
        }
    }
    assert_eq!(row_names(&flood), names);
    for row in flood["rows"].as_array().unwrap() {
        let name = row["name"].as_str().unwrap();
        if name.starts_with("list") {
            check_row(row);
        } else if name.starts_with("junk") {
            assert!(row["ops"].as_u64().unwrap() > 0, "no junk sent: {row}");
            assert!(row["extra"]["bytes_out"].as_u64().unwrap() > 0, "{row}");
            assert!(row["extra"]["bytes_in_per_out"].is_number(), "{row}");
        } else {
            assert!(row["extra"]["started"].as_u64().unwrap() > 0, "{row}");
        }
    }

    let fragments = run_quick("fragments", &["--hold", "0.5"], out.path());
    assert_eq!(fragments["scenario"], "fragments");
    assert_eq!(
        row_names(&fragments),
        [
            "wave 1: fragments sent",
            "hold, nothing sent",
            "wave 2: fresh sessions"
        ]
    );
    let rows = fragments["rows"].as_array().unwrap();
    for wave in [&rows[0], &rows[2]] {
        assert!(wave["ops"].as_u64().unwrap() > 0, "nothing sent: {wave}");
        assert_eq!(wave["errors"], 0, "{wave}");
        assert!(wave["extra"]["rss_growth_kib"].is_u64(), "{wave}");
    }
}

#[test]
fn quick_bare_handshakes_write_their_report() {
    let out = tempfile::tempdir().expect("temp dir");
    let bare = run_quick("bare", &["--handshakes", "50"], out.path());
    assert_eq!(bare["scenario"], "bare");
    assert_eq!(row_names(&bare), ["bare handshakes"]);
    let row = &bare["rows"][0];
    assert_eq!(row["ops"], 50, "{row}");
    assert_eq!(row["errors"], 0, "{row}");
    assert!(row["extra"]["rss_growth_kib"].is_u64(), "{row}");
}

/// Ten seconds of the soak: real `udpchat` clients sign in, write to each
/// other and sign out, again and again. Every message reaches its
/// recipient once (directly, or from the mailbox when the recipient had
/// gone), none is lost, failed or shown twice, and no client reports an
/// error. (The hour-long run's figures are in docs/PERFORMANCE.md.)
#[test]
fn a_short_soak_loses_no_message_and_shows_none_twice() {
    let out = tempfile::tempdir().expect("temp dir");
    let logs = out.path().join("logs");
    let logs = logs.to_str().expect("a UTF-8 temp dir");
    let (stdout, soak) = run("soak", &["--duration", "10", "--logs", logs], out.path());
    assert_eq!(row_names(&soak), ["messages", "sign-ins", "server"]);
    let messages = &soak["rows"][0]["extra"];
    assert!(messages["sent"].as_u64().unwrap() > 0, "{stdout}");
    assert_eq!(messages["received"], messages["sent"], "{stdout}");
    for none in [
        "lost",
        "failed",
        "failed_not_received",
        "duplicated",
        "misdelivered",
        "no_outcome",
    ] {
        assert_eq!(messages[none], 0, "{none}: {stdout}");
    }
    assert_eq!(messages["errors"], serde_json::json!({}), "{stdout}");
    let signins = &soak["rows"][1];
    assert!(signins["ops"].as_u64().unwrap() > 0, "{stdout}");
    assert_eq!(signins["errors"], 0, "{stdout}");
}

#[test]
fn quick_p2p_through_the_servers_relay_delivers_every_size() {
    let out = tempfile::tempdir().expect("temp dir");
    let p2p = run_quick("p2p", &["--through-server"], out.path());
    assert_eq!(p2p["params"]["through_server"], true, "{p2p}");
    let rows = p2p["rows"].as_array().expect("rows");
    assert_eq!(row_names(&p2p), ["100 B", "16384 B"]);
    for row in rows {
        assert!(row["ops"].as_u64().unwrap() > 0, "nothing arrived: {row}");
        assert_eq!(row["errors"], 0, "{row}");
    }
}

#[test]
fn quick_conversation_between_two_real_clients_delivers_and_shows_every_message() {
    let out = tempfile::tempdir().expect("temp dir");
    let conversation = run_quick("conversation", &[], out.path());
    assert_eq!(row_names(&conversation), ["one at a time", "8 in flight"]);
    for row in conversation["rows"].as_array().expect("rows") {
        check_row(row);
        assert_eq!(row["errors"], 0, "{row}");
        // Every message delivered was also shown to its recipient.
        assert_eq!(row["latency_us"]["count"], row["ops"], "{row}");
    }
}

#[test]
fn quick_fanout_with_several_senders_delivers_everyones_messages_to_everyone_else() {
    let out = tempfile::tempdir().expect("temp dir");
    let fanout = run_quick("fanout", &["--members", "6", "--senders", "3"], out.path());
    assert_eq!(fanout["available"], true, "{fanout}");
    assert_eq!(fanout["params"]["senders"], 3);
    let rows = fanout["rows"].as_array().expect("rows");
    let row = rows
        .iter()
        .find(|r| r["name"] == "udpchat M=6 S=3")
        .unwrap_or_else(|| panic!("no udpchat row for 3 senders: {fanout}"));
    check_row(row);
    check_generator(row);
    assert_eq!(row["extra"]["senders"], 3);
    // A delivery is one member receiving one message: every message
    // reaches the 5 members who did not send it, whoever sent it.
    assert_eq!(row["errors"], 0, "{row}");
    assert!(
        row["extra"]["messages_per_s"].as_f64().unwrap() > 0.0,
        "{row}"
    );
}

/// `udpchat-bench --quick SCENARIO --nodes 2 ARGS` on the tests'
/// PostgreSQL: its report (`REPORT.json`); None without PostgreSQL.
fn quick_on_nodes(scenario: &str, extra: &[&str], report: &str) -> Option<Value> {
    let cluster = udpchat_tests::postgres::cluster()?;
    let out = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_udpchat-bench"))
        .args(["--quick", scenario, "--no-progress", "--out"])
        .arg(out.path())
        .arg("--server-bin")
        .arg(server_binary())
        .args(["--duration", "0.5", "--warmup", "0.1", "--clients", "4"])
        .args(["--nodes", "2"])
        .args(extra)
        .env("UDPCHAT_TEST_DATABASE", cluster)
        .output()
        .expect("run udpchat-bench");
    assert!(
        output.status.success(),
        "udpchat-bench {scenario} --nodes 2 failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let text =
        std::fs::read_to_string(out.path().join(format!("{report}.json"))).expect("the report");
    let report: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(report["available"], true, "{report}");
    Some(report)
}

/// Each of `what` on one SQLite node, one PostgreSQL node and two, with
/// its ratio to the SQLite row, and nothing else.
fn check_deployments(report: &Value, what: &[&str]) {
    let rows = report["rows"].as_array().expect("rows");
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(rows.len(), 3 * what.len(), "{names:?}");
    for deployment in ["sqlite 1 node", "postgres 1 node", "postgres 2 nodes"] {
        for what in what {
            let name = format!("{deployment}: {what}");
            let row = rows
                .iter()
                .find(|r| r["name"] == name.as_str())
                .unwrap_or_else(|| panic!("no row {name}: {names:?}"));
            check_row(row);
            assert_eq!(row["errors"], 0, "{row}");
            assert!(row["ratio"].as_f64().unwrap() > 0.0, "{row}");
        }
    }
}

#[test]
fn quick_rpc_fanout_and_nodes_measure_one_node_and_several_side_by_side() {
    let Some(rpc) = quick_on_nodes("rpc", &[], "rpc-nodes") else {
        return;
    };
    check_deployments(&rpc, &["list", "lookup"]);
    let fanout = quick_on_nodes("fanout", &["--members", "4"], "fanout-nodes").unwrap();
    check_deployments(&fanout, &["fanout M=4"]);
    let nodes = quick_on_nodes("nodes", &["--members", "4"], "nodes").unwrap();
    check_deployments(&nodes, &["list", "lookup", "sign-in at 5/s", "fanout M=4"]);
}
