//! The result pages of a real `liftlab serve`, loaded in headless Chromium: rendered content and a screenshot of each page.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use liftlab_domain::report::text::decision_interval;
use liftlab_domain::report::Report;
use serde_json::{json, Value};

use crate::liftlab;
use liftlab_testkit::process::{create_running, keys_file, Server};
use liftlab_testkit::spec::{support_desk, with};
use liftlab_testkit::unit_random;

const CHROMIUM: &str = "/usr/bin/chromium";
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 2000;

/// Runs headless Chromium with a fresh profile on `url` plus `args`; returns its stdout.
fn chromium(url: &str, args: &[String]) -> Vec<u8> {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{CHROMIUM} could not start: {e}"));
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut out).map(|_| out)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match child.try_wait().expect("chromium status") {
            Some(status) => {
                assert!(status.success(), "chromium failed on {url}: {status}");
                break;
            }
            None if Instant::now() > deadline => {
                let _ = child.kill();
                panic!("chromium did not finish on {url} within two minutes");
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    reader.join().expect("reader").expect("chromium output")
}

/// Checks a PNG's signature and size (from its IHDR chunk) and that it is not a blank image.
fn check_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().expect("4 bytes"));
    let height = u32::from_be_bytes(bytes[20..24].try_into().expect("4 bytes"));
    assert_eq!((width, height), (WIDTH, HEIGHT));
    // A blank 1280×2000 page compresses to a few kilobytes; text, tables and charts do not.
    assert!(
        bytes.len() > 40_000,
        "{} is only {} bytes",
        path.display(),
        bytes.len()
    );
}

/// Where the screenshots are kept for people to look at.
fn shots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pages");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

/// A support-desk experiment with ROI, segments, a guardrail and a drift monitor.
fn desk_spec() -> Value {
    with(
        support_desk(),
        json!({
            "name": "Support desk: AI-drafted replies",
            "hypothesis": "AI-drafted first replies cut handling time without more escalations",
            "owner": "support-ops",
            "arms": [
                {"key": "human", "role": "baseline", "description": "agents write every reply"},
                {"key": "ai_assist", "role": "treatment", "description": "agents edit an AI draft"}
            ],
            "drift": {"metrics": ["cycle_time"]},
            "roi": {"volume_per_month": 12000, "human_cost_per_hour": 45}
        }),
    )
}

fn feed(server: &Server, units: u64) {
    let regions = ["emea", "amer", "apac"];
    let mut events = Vec::new();
    for i in 0..units {
        let unit = format!("t{i}");
        let region = regions[usize::try_from(i % 3).expect("small")];
        let r = server.ok(
            "POST",
            "/v1/experiments/support-ai/assign",
            Some(&json!({"unit_id": unit, "attributes": {"region": region}})),
        );
        let arm = r.json()["arm"].as_str().expect("arm").to_string();
        let ai = arm == "ai_assist";
        let minutes = if ai { 24.0 } else { 30.0 } + 12.0 * unit_random(i, 1);
        let escalated = unit_random(i, 2) < 0.1;
        let cost = if ai { 4.2 } else { 6.0 } + 2.0 * unit_random(i, 3);
        let day = 1 + i % 9;
        events.push(json!({
            "event_id": format!("e{i}"), "experiment": "support-ai", "task_id": unit,
            "ts": format!("2026-03-{day:02}T10:00:00Z"),
            "metrics": {"cycle_time": minutes, "escalated": escalated, "cost": cost},
            "handled_by": if ai && unit_random(i, 4) < 0.7 { "ai" } else { "human" }
        }));
    }
    for chunk in events.chunks(200) {
        server.ok("POST", "/v1/outcomes", Some(&json!({"events": chunk})));
    }
}

#[test]
fn both_pages_render_in_headless_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium package"
    );
    let data = tempfile::tempdir().expect("data dir");
    let server = liftlab().serve(data.path(), &[]);
    create_running(&server, None, &desk_spec());
    feed(&server, 600);

    let pages = [
        ("index", format!("{}/", server.base)),
        (
            "experiment",
            format!("{}/experiments/support-ai", server.base),
        ),
    ];
    // The headline's interval is the primary metric's decision, as the results JSON gives it.
    let results = server.call("GET", "/v1/experiments/support-ai/results", None, None);
    assert_eq!(results.status, 200, "{}", results.body);
    let report: Report = serde_json::from_str(&results.body).expect("results JSON");
    let primary = report
        .metrics
        .iter()
        .find(|m| m.key == "cycle_time")
        .expect("primary metric");
    let decision = primary.comparisons[0]
        .decision
        .expect("a decision at 600 units");
    let headline_interval = decision_interval(&decision);
    assert!(
        report.verdict.contains(&headline_interval),
        "{} / {headline_interval}",
        report.verdict
    );
    let dir = shots_dir();
    for (name, url) in &pages {
        let dom = String::from_utf8(chromium(url, &["--dump-dom".to_string()])).expect("utf-8 DOM");
        assert!(
            dom.contains("Support desk: AI-drafted replies"),
            "{name}: {dom}"
        );
        assert!(
            !dom.contains("<script"),
            "{name}: the pages carry no script"
        );
        if *name == "experiment" {
            for text in [
                "AI assist cuts cycle time by",
                "Key results",
                "Lifts at a glance",
                "Cycle time over time",
                "Return on investment",
                "Segments",
                "Change history",
                "Forest plot of relative lifts",
            ] {
                assert!(dom.contains(text), "{name} lacks {text:?}");
            }
            let verdict = dom
                .split("<p class=\"verdict\">")
                .nth(1)
                .and_then(|rest| rest.split("</p>").next())
                .expect("the verdict paragraph");
            assert!(
                verdict.contains(&headline_interval),
                "the page's headline shows the decision's interval: {verdict} / {headline_interval}"
            );
        } else {
            assert!(dom.contains("href=\"/experiments/support-ai\""), "{dom}");
        }
        let shot = dir.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&shot);
        chromium(
            url,
            &[
                format!("--screenshot={}", shot.display()),
                format!("--window-size={WIDTH},{HEIGHT}"),
            ],
        );
        check_png(&shot);
    }
    server.stop();
}

/// Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
/// JSON messages ended by a NUL byte, read from fd 3 and written to fd 4), so a test can fill
/// in and submit a form and read cookies as a person's browser would. The two descriptors are
/// named pipes that `sh` opens for Chromium.
struct Browser {
    child: std::process::Child,
    to: std::fs::File,
    from: std::io::BufReader<std::fs::File>,
    next_id: u64,
    /// The page's session with the browser (flat mode).
    session: String,
    _dir: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        let dir = tempfile::tempdir().expect("browser dir");
        let (to_path, from_path) = (dir.path().join("to"), dir.path().join("from"));
        for fifo in [&to_path, &from_path] {
            let made = Command::new("mkfifo")
                .arg(fifo)
                .status()
                .expect("mkfifo runs");
            assert!(made.success(), "mkfifo {}", fifo.display());
        }
        let profile = dir.path().join("profile");
        let child = Command::new("sh")
            .arg("-c")
            .arg("exec \"$0\" \"$@\" 3<\"$LIFTLAB_TO\" 4>\"$LIFTLAB_FROM\"")
            .arg(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--remote-debugging-pipe",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .env("LIFTLAB_TO", &to_path)
            .env("LIFTLAB_FROM", &from_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{CHROMIUM} could not start: {e}"));
        // Each open waits for the other end, which `sh` opens in the same order.
        let to = std::fs::OpenOptions::new()
            .write(true)
            .open(&to_path)
            .expect("the pipe to the browser");
        let from = std::io::BufReader::new(
            std::fs::File::open(&from_path).expect("the pipe from the browser"),
        );
        let mut browser = Browser {
            child,
            to,
            from,
            next_id: 0,
            session: String::new(),
            _dir: dir,
        };
        let target = browser.send("Target.createTarget", json!({"url": "about:blank"}), false);
        let target = target["targetId"].as_str().expect("a target").to_string();
        let attached = browser.send(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
            false,
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        browser.call("Page.enable", json!({}));
        browser.call("Network.enable", json!({}));
        browser
    }

    /// Sends one command (to the page's session when `page`) and returns its result.
    fn send(&mut self, method: &str, params: Value, page: bool) -> Value {
        use std::io::{BufRead, Write};
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if page {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.to.write_all(&bytes).expect("a command to the browser");
        loop {
            let mut reply = Vec::new();
            let n = self
                .from
                .read_until(0, &mut reply)
                .expect("a message from the browser");
            assert!(n > 0, "the browser closed its pipe during {method}");
            reply.pop();
            let reply: Value = serde_json::from_slice(&reply).expect("a JSON message");
            if reply["id"] == json!(id) {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.send(method, params, true)
    }

    /// Evaluates `expression` in the page and returns its value.
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Runs `script` in the current page after marking it stale, so that [`Browser::wait_for`]
    /// waits for the document the script navigates to, not this one.
    fn act(&mut self, script: &str) {
        self.eval(&format!("window.liftlabStale = true; {script}; true"));
    }

    /// Waits until a fresh page at `path` has loaded; returns its HTML.
    fn wait_for(&mut self, path: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let state = self.eval(
                "(window.liftlabStale ? 'stale ' : '') + location.pathname + ' ' + document.readyState",
            );
            if state == json!(format!("{path} complete")) {
                return self
                    .eval("document.documentElement.outerHTML")
                    .as_str()
                    .expect("HTML")
                    .to_string();
            }
            assert!(Instant::now() < deadline, "never reached {path}: {state}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn go(&mut self, url: &str) {
        self.act("0");
        self.call("Page.navigate", json!({"url": url}));
    }

    /// The browser's cookies for `url`.
    fn cookies(&mut self, url: &str) -> Vec<Value> {
        let r = self.call("Network.getCookies", json!({"urls": [url]}));
        r["cookies"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// On a server started with `--keys`, a viewer opens a page in Chromium: sent to sign in, types
/// the key into the form, reads the page, signs out, and is sent to sign in again after.
#[test]
fn a_viewer_signs_in_reads_a_page_and_signs_out_in_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's chromium package"
    );
    let data = tempfile::tempdir().expect("data dir");
    let (admin, admin_line) = liftlab().new_key("admin", "ops");
    let (viewer, viewer_line) = liftlab().new_key("viewer", "leader");
    let keys = keys_file(data.path(), &[admin_line, viewer_line]);
    let server = liftlab().serve(
        &data.path().join("data"),
        &["--keys", keys.to_str().expect("UTF-8 path")],
    );
    create_running(&server, Some(&admin), &desk_spec());
    let page = format!("{}/experiments/support-ai", server.base);

    // Without a key the page is closed to a script, and a browser is sent to sign in.
    assert_eq!(
        server
            .call("GET", "/experiments/support-ai", None, None)
            .status,
        401
    );
    let mut browser = Browser::start();
    browser.go(&page);
    let form = browser.wait_for("/signin");
    assert!(form.contains("name=\"key\""), "{form}");

    // A wrong key: the form again, with the reason and without the key.
    browser.act(
        "document.querySelector('input[name=key]').value = 'not-a-key-42'; \
         document.querySelector('form.signin').submit()",
    );
    let again = browser.wait_for("/signin");
    assert!(again.contains("That key is not recognised"), "{again}");
    assert!(!again.contains("not-a-key-42"), "the key is echoed");

    browser.act(&format!(
        "document.querySelector('input[name=key]').value = '{viewer}'; \
         document.querySelector('form.signin').submit()"
    ));
    let read = browser.wait_for("/experiments/support-ai");
    assert!(read.contains("Support desk: AI-drafted replies"), "{read}");
    assert!(read.contains("signed in as leader"), "{read}");
    let cookies = browser.cookies(&page);
    let session = cookies
        .iter()
        .find(|c| c["name"] == json!("liftlab_session"))
        .unwrap_or_else(|| panic!("no session cookie in {cookies:?}"));
    assert_eq!(session["httpOnly"], json!(true), "{session}");
    assert_eq!(session["secure"], json!(true), "{session}");
    assert_eq!(session["sameSite"], json!("Strict"), "{session}");
    assert!(
        !session.to_string().contains(&viewer),
        "the cookie holds no key"
    );
    let value = session["value"].as_str().expect("a value").to_string();
    // The cookie opens the pages, not the API.
    let cookie = format!("liftlab_session={value}");
    let api = server
        .send_raw_with(
            "GET",
            "/v1/experiments/support-ai/results",
            &[("Cookie", &cookie)],
        )
        .expect("an answer");
    api.problem(401);

    // Sign out: the cookie is gone and the page sends the browser to sign in again.
    browser.act("document.querySelector('form.signout').submit()");
    browser.wait_for("/signin");
    assert!(
        browser
            .cookies(&page)
            .iter()
            .all(|c| c["name"] != json!("liftlab_session")),
        "the session cookie is cleared"
    );
    browser.go(&page);
    browser.wait_for("/signin");
    // A copy of the signed-out cookie opens nothing either.
    let copy = server
        .send_raw_with("GET", "/experiments/support-ai", &[("Cookie", &cookie)])
        .expect("an answer");
    copy.problem(401);
    drop(browser);
    server.stop();
}
