//! `liftlab serve` and `liftlab keys` as a user runs them: keys files, loopback-only open mode,
//! startup errors, JSON logs without credentials, and a clean SIGTERM that keeps the data.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

fn liftlab() -> Command {
    crate::liftlab().command()
}

/// A running server whose stderr is collected in a file; SIGKILLed when dropped.
struct Running {
    child: Child,
    base: String,
    log: std::path::PathBuf,
}

impl Running {
    fn start(data: &Path, extra: &[&str]) -> Running {
        let log = data.with_extension("log");
        let file = std::fs::File::create(&log).expect("a log file");
        let mut child = liftlab()
            .args(["serve", "--addr", "127.0.0.1:0", "--workers", "1", "--data"])
            .arg(data)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("the liftlab binary starts");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let base = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix("listening on ").map(str::to_string));
        std::thread::spawn(move || lines.for_each(drop));
        let Some(base) = base else {
            let _ = child.kill();
            panic!(
                "the server did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Running { child, base, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status once the server has drained and flushed.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        self.child.wait().expect("the server exits")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn call(method: &str, url: &str, key: Option<&str>, body: Option<&Value>) -> (u16, String) {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let mut req = agent.request(method, url);
    if let Some(key) = key {
        req = req.set("Authorization", &format!("Bearer {key}"));
    }
    let result = match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => req.call(),
    };
    let res = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = res.status();
    (status, res.into_string().unwrap_or_default())
}

fn spec(key: &str) -> Value {
    json!({
        "key": key,
        "arms": [{"key": "human", "role": "baseline"}, {"key": "ai", "role": "treatment"}],
        "allocation": {"policy": "fixed", "weights": {"human": 0.5, "ai": 0.5}},
        "metrics": [{"key": "minutes", "kind": "duration", "direction": "decrease", "role": "primary"}]
    })
}

#[test]
fn keys_from_keys_new_admit_their_role_and_never_reach_the_logs() {
    let (scientist, scientist_line) = crate::liftlab().new_key("scientist", "alice");
    let (viewer, viewer_line) = crate::liftlab().new_key("viewer", "dashboards");
    assert_ne!(scientist, viewer);
    assert!(
        !scientist_line.contains(&scientist),
        "the line holds only a hash"
    );
    assert!(scientist_line.starts_with("scientist ") && scientist_line.ends_with(" alice"));
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        format!("# liftlab keys\n\n{scientist_line}\n{viewer_line}\n"),
    )
    .expect("keys file written");
    let keys_arg = keys.to_str().expect("UTF-8 path");
    let server = Running::start(
        &dir.path().join("data"),
        &["--keys", keys_arg, "--log-format", "json"],
    );
    let url = format!("{}/v1/experiments", server.base);
    assert_eq!(
        call("POST", &url, Some(&scientist), Some(&spec("keyed"))).0,
        201
    );
    assert_eq!(
        call("POST", &url, Some(&viewer), Some(&spec("other"))).0,
        403
    );
    assert_eq!(call("POST", &url, None, Some(&spec("other"))).0, 401);
    assert_eq!(call("GET", &url, Some("llk_guessed"), None).0, 401);
    assert_eq!(call("GET", &url, Some(&viewer), None).0, 200);
    assert_eq!(
        call("GET", &format!("{}/healthz", server.base), None, None).0,
        200
    );

    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(dir.path().join("data.log")).expect("log");
    assert!(
        !log.contains(&scientist) && !log.contains(&viewer),
        "a key reached the log"
    );
    let requests: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "request")
        .collect();
    assert!(requests.len() >= 6, "{log}");
    assert!(
        requests
            .iter()
            .all(|r| r["span"]["id"].as_str().is_some_and(|id| id.len() == 32)),
        "{log}"
    );
}

#[test]
fn sigterm_drains_flushes_and_keeps_the_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let server = Running::start(&data, &[]);
    let base = server.base.clone();
    assert_eq!(
        call(
            "POST",
            &format!("{base}/v1/experiments"),
            None,
            Some(&spec("kept"))
        )
        .0,
        201
    );
    let log = server.log();
    assert!(log.contains("open"), "the open mode is announced");
    assert!(
        !log.contains('\u{1b}'),
        "text logs to a file carry no ANSI colour codes: {log:?}"
    );
    assert!(server.terminate().success());
    let server = Running::start(&data, &[]);
    let (status, body) = call(
        "GET",
        &format!("{}/v1/experiments/kept", server.base),
        None,
        None,
    );
    assert_eq!(status, 200, "{body}");
}

fn refused(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = liftlab()
        .arg("serve")
        .arg("--data")
        .arg(dir.path().join("data"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the liftlab binary starts");
    let status = child.wait().expect("it exits by itself");
    let mut stderr = Vec::new();
    child
        .stderr
        .take()
        .expect("piped")
        .read_to_end(&mut stderr)
        .expect("stderr readable");
    Output {
        status,
        stdout: Vec::new(),
        stderr,
    }
}

#[test]
fn an_open_server_refuses_a_non_loopback_address() {
    let out = refused(&["--addr", "0.0.0.0:0"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing") && stderr.contains("--keys"),
        "{stderr}"
    );
    assert!(
        stderr.contains("liftlab keys new"),
        "the refusal says how to make a key: {stderr}"
    );
}

#[test]
fn a_bad_keys_file_names_every_bad_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join("keys");
    let (_, good) = crate::liftlab().new_key("admin", "root");
    std::fs::write(
        &keys,
        format!("# comment\n{good}\nsuperuser abc bob\n\nviewer 1234 carol\n"),
    )
    .expect("written");
    let out = refused(&[
        "--addr",
        "127.0.0.1:0",
        "--keys",
        keys.to_str().expect("UTF-8"),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 3") && stderr.contains("superuser"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 5") && stderr.contains("64 hexadecimal"),
        "both bad lines are reported: {stderr}"
    );

    let out = refused(&["--addr", "127.0.0.1:0", "--keys", "/nonexistent/keys"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("keys file"));
}

#[test]
fn a_busy_port_fails_without_creating_the_data_directory() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = taken.local_addr().expect("bound").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let out = liftlab()
        .args(["serve", "--addr", &addr, "--data"])
        .arg(&data)
        .stdin(Stdio::null())
        .output()
        .expect("the liftlab binary runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&addr), "{stderr}");
    assert!(!data.exists(), "{} was created: {stderr}", data.display());
}

#[test]
fn keys_new_rejects_unknown_roles_and_bad_names() {
    for args in [
        ["keys", "new", "root", "x"],
        ["keys", "new", "admin", "two words"],
    ] {
        let out = liftlab().args(args).output().expect("runs");
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty(), "no key is printed on failure");
    }
}
