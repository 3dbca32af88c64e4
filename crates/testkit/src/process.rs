//! The real `liftlab serve` process on 127.0.0.1 (port 0) over a data directory, with a small blocking HTTP client.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

/// The `liftlab` binary under test, by its path.
///
/// `CARGO_BIN_EXE_liftlab` is set only while compiling the binary package's own integration
/// tests, so those pass it in: `Liftlab::at(env!("CARGO_BIN_EXE_liftlab"))`. Tests of another
/// crate use [`Liftlab::from_env`], which reads `LIFTLAB_BIN` (build the binary first).
#[derive(Clone, Debug)]
pub struct Liftlab {
    bin: PathBuf,
}

/// A running server; killed (SIGKILL) when dropped if still alive.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub data: PathBuf,
    stderr: Arc<Mutex<Vec<u8>>>,
    client: Client,
}

/// An HTTP client of one server; cheap to clone and to send to other threads.
#[derive(Clone)]
pub struct Client {
    pub base: String,
    agent: ureq::Agent,
}

/// A server that would not start: its exit status and everything it wrote on stderr.
#[derive(Debug)]
pub struct StartFailure {
    pub status: Option<ExitStatus>,
    pub stderr: String,
}

/// One HTTP answer of the process, read whole.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts an RFC 9457 problem with `status` and returns its body.
    #[track_caller]
    pub fn problem(&self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.body);
        crate::client::check_problem(self.header("content-type"), &self.json(), status)
    }
}

impl Liftlab {
    pub fn at(bin: impl Into<PathBuf>) -> Liftlab {
        Liftlab { bin: bin.into() }
    }

    /// The binary named by the `LIFTLAB_BIN` environment variable.
    pub fn from_env() -> Liftlab {
        let bin =
            std::env::var_os("LIFTLAB_BIN").expect("LIFTLAB_BIN names the liftlab binary to test");
        Liftlab::at(bin)
    }

    /// A command running the binary.
    pub fn command(&self) -> Command {
        Command::new(&self.bin)
    }

    /// Starts `liftlab serve` on `data` with `extra` arguments; panics with its stderr if it fails.
    pub fn serve(&self, data: &Path, extra: &[&str]) -> Server {
        self.try_serve(data, extra)
            .unwrap_or_else(|f| panic!("the server did not start ({:?}): {}", f.status, f.stderr))
    }

    /// [`Liftlab::serve`] with extra environment variables (`RUST_LOG` is `info` unless given).
    pub fn serve_with_env(&self, data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        self.try_serve_with_env(data, extra, env)
            .unwrap_or_else(|f| panic!("the server did not start ({:?}): {}", f.status, f.stderr))
    }

    /// Starts `liftlab serve`; waits for its `listening on` line, or for it to exit.
    pub fn try_serve(&self, data: &Path, extra: &[&str]) -> Result<Server, StartFailure> {
        self.try_serve_with_env(data, extra, &[])
    }

    /// [`Liftlab::try_serve`] with extra environment variables.
    pub fn try_serve_with_env(
        &self,
        data: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Server, StartFailure> {
        let mut child = self
            .command()
            .arg("serve")
            .arg("--addr")
            .arg("127.0.0.1:0")
            .arg("--data")
            .arg(data)
            .arg("--workers")
            .arg("2")
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the liftlab binary starts");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut err_pipe = child.stderr.take().expect("piped");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .expect("stderr buffer")
                    .extend_from_slice(&buf[..n]);
            }
        });
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let mut base = None;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("listening on ") {
                base = Some(addr.trim().to_string());
                break;
            }
        }
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let Some(base) = base else {
            let status = child.wait().ok();
            // The stderr thread ends once the process has exited and the pipe is closed.
            std::thread::sleep(Duration::from_millis(50));
            let stderr =
                String::from_utf8_lossy(&stderr.lock().expect("stderr buffer")).into_owned();
            return Err(StartFailure { status, stderr });
        };
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .max_idle_connections_per_host(16)
            .build();
        Ok(Server {
            child: Some(child),
            base: base.clone(),
            data: data.to_path_buf(),
            stderr,
            client: Client { base, agent },
        })
    }

    /// A fresh API key made by `liftlab keys new ROLE NAME`: the key, and its keys-file line.
    pub fn new_key(&self, role: &str, name: &str) -> (String, String) {
        let out = run_ok(
            self.command().args(["keys", "new", role, name]),
            "liftlab keys new",
        );
        let stdout = String::from_utf8(out.stdout).expect("text");
        let mut lines = stdout.lines();
        let key = lines.next().expect("the key").trim().to_string();
        let line = lines.next().expect("the keys-file line").trim().to_string();
        assert!(line.starts_with(role), "{line}");
        assert!(
            !line.contains(&key),
            "the keys-file line never holds the key itself"
        );
        (key, line)
    }
}

impl Server {
    /// A client of this server for other threads.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Everything the server wrote on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("stderr buffer")).into_owned()
    }

    /// SIGKILL: no flush, no destructor, no goodbye. Returns the server's stderr.
    pub fn kill9(mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stderr()
    }

    /// SIGTERM and wait for a clean exit (the store is flushed and closed). Returns its stderr.
    pub fn stop(mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .expect("kill runs");
            assert!(status.success(), "SIGTERM was delivered");
            let exit = child.wait().expect("the server is reaped");
            assert!(
                exit.success(),
                "the server exits cleanly on SIGTERM: {exit:?}\n{}",
                self.stderr()
            );
        }
        // Let the stderr thread take the last lines.
        std::thread::sleep(Duration::from_millis(50));
        self.stderr()
    }
}

impl Client {
    /// Sends one request; `key` becomes `Authorization: Bearer KEY`.
    pub fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<&Value>) -> Reply {
        self.try_call(method, path, key, body)
            .unwrap_or_else(|e| panic!("{method} {path} failed to complete: {e}"))
    }

    /// [`Client::call`] without a key, which must answer 200; otherwise the test fails with the
    /// answer's body.
    pub fn ok(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let r = self.call(method, path, None, body);
        assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
        r
    }

    /// Sends one request; `Err` when no HTTP answer came back (refused, reset, timed out).
    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Reply, String> {
        self.send_raw(
            method,
            path,
            key,
            body.map(|b| ("application/json", b.to_string())),
        )
    }

    /// Sends a request without a body with extra headers and no API key.
    pub fn send_raw_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let mut req = self.agent.request(method, &format!("{}{path}", self.base));
        for (name, value) in headers {
            req = req.set(name, value);
        }
        Self::reply(req.call())
    }

    /// Sends a body of any content type.
    pub fn send_raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<(&str, String)>,
    ) -> Result<Reply, String> {
        let mut req = self.agent.request(method, &format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.set("Authorization", &format!("Bearer {key}"));
        }
        let result = match body {
            Some((ct, text)) => req.set("Content-Type", ct).send_string(&text),
            None => req.call(),
        };
        Self::reply(result)
    }

    /// Reads an answer whole, whatever its status; `Err` when none came back.
    fn reply(result: Result<ureq::Response, ureq::Error>) -> Result<Reply, String> {
        let res = match result {
            Ok(res) => res,
            Err(ureq::Error::Status(_, res)) => res,
            Err(e) => return Err(e.to_string()),
        };
        let status = res.status();
        let headers = res
            .headers_names()
            .into_iter()
            .map(|n| {
                let v = res.header(&n).unwrap_or_default().to_string();
                (n, v)
            })
            .collect();
        let body = res.into_string().map_err(|e| e.to_string())?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// A server answers the calls of its own client: `server.call(...)`.
impl std::ops::Deref for Server {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Creates and starts an experiment, asserting both succeed.
pub fn create_running(server: &Server, key: Option<&str>, spec: &Value) {
    let name = spec["key"].as_str().expect("a key");
    let r = server.call("POST", "/v1/experiments", key, Some(spec));
    assert_eq!(r.status, 201, "{}", r.body);
    let r = server.call("POST", &format!("/v1/experiments/{name}/start"), key, None);
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Runs `command` to its end and returns its output; a failure fails the test with the
/// command's stderr.
pub fn run_ok(command: &mut Command, what: &str) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what} does not run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Writes a keys file of `lines` into `dir` and returns its path.
pub fn keys_file(dir: &Path, lines: &[String]) -> PathBuf {
    let path = dir.join("keys");
    std::fs::write(&path, lines.join("\n") + "\n").expect("keys file written");
    path
}
