//! The `liftlab` subcommands beyond serve: spec validate, apply, start/pause/stop, results, audit verify and rebuild, against a real server and its data directory.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{json, Value};

use crate::liftlab;
use liftlab_testkit::process::{keys_file, Server};

/// The repository's example specs.
fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("api-spec/examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the examples directory exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "there are example specs");
    files
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("api-spec/examples")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    liftlab()
        .command()
        .args(args)
        .output()
        .expect("liftlab runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts success and returns standard output.
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

#[test]
fn spec_validate_accepts_every_example() {
    let files = examples();
    let mut args = vec!["spec".to_string(), "validate".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let out = liftlab()
        .command()
        .args(&args)
        .output()
        .expect("liftlab runs");
    let stdout = ok(&out);
    assert_eq!(out.status.code(), Some(0));
    for file in &files {
        let line = format!("{}: ok", file.display());
        assert!(stdout.contains(&line), "{line} missing from:\n{stdout}");
    }
}

#[test]
fn spec_validate_lists_every_problem_with_its_pointer_and_exits_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.json");
    let spec = json!({
        "key": "Not A Slug",
        "arms": [
            {"key": "human", "role": "baseline"},
            {"key": "ai", "role": "champion"}
        ],
        "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai": 0.5}},
        "metrics": [{"key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary"}]
    });
    std::fs::write(&bad, spec.to_string()).expect("written");
    let good = example("support-triage.json");
    let out = run(&[
        "spec",
        "validate",
        &good.display().to_string(),
        &bad.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let name = bad.display().to_string();
    assert!(stdout.contains(&format!("{name}: /key: ")), "{stdout}");
    assert!(
        stdout.contains(&format!("{name}: /arms/1/role: ")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{}: ok", good.display())),
        "the valid file is still reported: {stdout}"
    );

    // Text that is not JSON is an invalid spec, reported at the document root.
    std::fs::write(&bad, "{ not json").expect("written");
    let out = run(&["spec", "validate", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains(&format!("{name}: (document): ")),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn spec_validate_exits_2_when_a_file_cannot_be_read() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.json");
    let out = run(&[
        "spec",
        "validate",
        &example("model-bandit.json").display().to_string(),
        &missing.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(&format!("{}: cannot read", missing.display())));
}

/// Assigns `units` units and posts one outcome each (minutes and escalated); returns the
/// number of in-experiment outcomes per arm, as the server told us the arms.
fn traffic(server: &Server, key: &str, units: usize) -> Vec<(String, u64)> {
    let mut per_arm: Vec<(String, u64)> = Vec::new();
    let mut events = Vec::new();
    for i in 0..units {
        let unit = format!("unit-{i}");
        let r = server.ok(
            "POST",
            &format!("/v1/experiments/{key}/assign"),
            Some(&json!({"unit_id": unit, "attributes": {"region": "emea"}})),
        );
        let answer = r.json();
        let arm = answer["arm"].as_str().expect("an arm").to_string();
        if answer["in_experiment"] == json!(true) {
            match per_arm.iter_mut().find(|(a, _)| *a == arm) {
                Some((_, n)) => *n += 1,
                None => per_arm.push((arm.clone(), 1)),
            }
        }
        // Values differ by unit so that every arm has a spread.
        let minutes = 20.0 + f64::from(u32::try_from(i % 17).expect("small")) * 3.0;
        events.push(json!({
            "event_id": format!("e-{i}"),
            "experiment": key,
            "task_id": unit,
            "metrics": {"cycle_time_minutes": minutes, "escalated": i % 9 == 0}
        }));
    }
    let r = server.ok("POST", "/v1/outcomes", Some(&json!({ "events": events })));
    assert_eq!(r.json()["accepted"], json!(units), "{}", r.body);
    per_arm
}

#[test]
fn apply_lifecycle_results_then_rebuild_and_verify_offline() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = liftlab().serve(&data, &[]);
    let base = server.base.clone();
    let spec = example("support-triage.json");
    let spec_path = spec.display().to_string();
    let key = "support-triage-ai-assist";

    let created = ok(&run(&["apply", &spec_path, "--server", &base]));
    assert!(
        created.starts_with(&format!("created experiment {key}: version 1, draft")),
        "{created}"
    );
    let updated = ok(&run(&["apply", &spec_path, "--server", &base]));
    assert!(
        updated.starts_with(&format!("updated experiment {key}: version 2, draft")),
        "{updated}"
    );
    // An invalid spec comes back from the server with every problem and its pointer.
    let bad = dir.path().join("bad.json");
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&spec).expect("spec")).expect("JSON");
    doc["key"] = json!("another-experiment");
    doc["arms"][1]["role"] = json!("champion");
    std::fs::write(&bad, doc.to_string()).expect("written");
    let refused = run(&["apply", &bad.display().to_string(), "--server", &base]);
    assert!(!refused.status.success());
    let err = text(&refused.stderr);
    assert!(err.contains("422") && err.contains("/arms/1/role"), "{err}");
    assert_eq!(
        err.matches("/arms/1/role").count(),
        1,
        "each problem is printed once: {err}"
    );

    let started = ok(&run(&[
        "start", key, "--server", &base, "--reason", "launch",
    ]));
    assert!(started.contains("running"), "{started}");

    let per_arm = traffic(&server, key, 300);

    let json_out = ok(&run(&[
        "results", key, "--server", &base, "--format", "json",
    ]));
    let results: Value = serde_json::from_str(&json_out).expect("results JSON");
    assert_eq!(results["experiment"], json!(key));
    let primary = results["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .find(|m| m["key"] == json!("cycle_time_minutes"))
        .expect("the primary metric");
    for (arm, n) in &per_arm {
        let row = primary["arms"]
            .as_array()
            .expect("arms")
            .iter()
            .find(|a| a["arm"] == json!(arm))
            .expect("every arm that got units is reported");
        assert_eq!(row["n"], json!(n), "{arm}: the units we sent outcomes for");
    }

    let table = ok(&run(&["results", key, "--server", &base]));
    assert!(table.contains("cycle_time_minutes (primary"), "{table}");
    assert!(table.contains("ai-assist vs human: lift"), "{table}");
    let csv = ok(&run(&[
        "results", key, "--server", &base, "--format", "csv",
    ]));
    assert!(csv.lines().count() > 1 && csv.contains(','), "{csv}");

    assert!(ok(&run(&["pause", key, "--server", &base])).contains("paused"));
    assert!(ok(&run(&["stop", key, "--server", &base])).contains("stopped"));
    // A stopped experiment cannot start again: the server's problem is printed, exit non-zero.
    let refused = run(&["start", key, "--server", &base]);
    assert!(!refused.status.success());
    let err = text(&refused.stderr);
    assert!(
        err.contains(&format!("cannot start experiment {key}")) && err.contains("409"),
        "{err}"
    );
    let missing = run(&["results", "no-such-experiment", "--server", &base]);
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("404"),
        "{}",
        text(&missing.stderr)
    );

    // What the server says about its chain, to compare with the offline check.
    let online = ok(&run(&["audit", "verify", "--server", &base]));
    assert!(online.starts_with("audit chain ok: "), "{online}");
    let online_records =
        server.call("GET", "/v1/audit/verify", None, None).json()["records"].clone();
    server.stop();

    let data_arg = data.display().to_string();
    let rebuilt = ok(&run(&["rebuild", "--data", &data_arg]));
    assert!(rebuilt.contains("replayed 300 outcomes"), "{rebuilt}");
    assert!(rebuilt.contains("no mismatch"), "{rebuilt}");
    let offline = ok(&run(&["audit", "verify", "--data", &data_arg]));
    assert_eq!(
        offline.trim(),
        format!("audit chain ok: {online_records} records verified"),
        "offline and online verification agree"
    );
}

#[test]
fn offline_commands_refuse_a_missing_data_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nothing-here").display().to_string();
    for args in [
        vec!["rebuild", "--data", &missing],
        vec!["audit", "verify", "--data", &missing],
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains("is not a liftlab data directory"),
            "{}",
            text(&out.stderr)
        );
        assert!(
            !Path::new(&missing).exists(),
            "no data directory is created by a check"
        );
    }
}

/// Copies a directory tree (the schema-7 fixture) into place.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("creates");
    for entry in std::fs::read_dir(from).expect("lists") {
        let entry = entry.expect("lists");
        if entry.file_type().expect("a type").is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copies");
        }
    }
}

#[test]
fn an_older_data_directory_is_refused_with_advice_then_migrated_in_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/store/tests/fixtures/schema7/clean"),
        &data,
    );
    let data_arg = data.display().to_string();
    let refused = run(&["audit", "verify", "--data", &data_arg]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains(&format!("liftlab migrate --data {data_arg}")),
        "{}",
        text(&refused.stderr)
    );
    let migrated = ok(&run(&["migrate", "--data", &data_arg]));
    assert!(migrated.contains("162 records"), "{migrated}");
    assert!(
        dir.path().join("data.schema7").join("db").is_file(),
        "the old files are kept"
    );
    let verified = ok(&run(&["audit", "verify", "--data", &data_arg]));
    assert_eq!(verified.trim(), "audit chain ok: 162 records verified");
    let again = run(&["migrate", "--data", &data_arg]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("nothing to migrate"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn rebuild_without_data_looks_where_serve_keeps_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = liftlab()
        .command()
        .arg("rebuild")
        .current_dir(dir.path())
        .output()
        .expect("liftlab runs");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("./liftlab-data is not a liftlab data directory"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn keys_come_from_the_environment_and_auth_failures_are_readable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, line) = liftlab().new_key("scientist", "ci");
    let keys = keys_file(dir.path(), &[line]);
    let server = liftlab().serve(
        &dir.path().join("data"),
        &["--keys", &keys.display().to_string()],
    );
    let spec = example("model-bandit.json").display().to_string();

    let refused = liftlab()
        .command()
        .args(["apply", &spec, "--server", &server.base])
        .env_remove("LIFTLAB_KEY")
        .output()
        .expect("liftlab runs");
    assert!(!refused.status.success());
    let err = text(&refused.stderr);
    assert!(
        err.contains("401") && err.contains("pass --key or set LIFTLAB_KEY"),
        "the advice names what a CLI user can do: {err}"
    );
    assert!(!err.contains("Authorization"), "{err}");

    let wrong = liftlab()
        .command()
        .args([
            "apply",
            &spec,
            "--server",
            &server.base,
            "--key",
            "llk_wrong",
        ])
        .env_remove("LIFTLAB_KEY")
        .output()
        .expect("liftlab runs");
    assert!(!wrong.status.success());
    let err = text(&wrong.stderr);
    assert!(
        err.contains("401")
            && err.contains("not recognised")
            && err.contains("--key or LIFTLAB_KEY"),
        "{err}"
    );

    let accepted = liftlab()
        .command()
        .args(["apply", &spec, "--server", &server.base])
        .env("LIFTLAB_KEY", &key)
        .output()
        .expect("liftlab runs");
    assert!(ok(&accepted).contains("created experiment resolver-model-bandit"));
}

#[test]
fn an_unreachable_server_is_reported_with_advice() {
    // Port 9 (discard) on loopback is closed in test environments; nothing listens there.
    let out = run(&["start", "anything", "--server", "http://127.0.0.1:9"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot reach the liftlab server at http://127.0.0.1:9"),
        "{err}"
    );
}

#[test]
fn a_user_error_is_one_line_even_with_rust_backtrace_set() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = liftlab().serve(&dir.path().join("data"), &[]);
    // Developer machines often export these; a user error is still not a crash.
    let out = liftlab()
        .command()
        .args(["results", "no-such-exp", "--server", &server.base])
        .env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .expect("liftlab runs");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        vec![
            "error: cannot get the results of no-such-exp: the server answered 404 Not found: experiment \"no-such-exp\" not found"
        ],
        "{err}"
    );
}
