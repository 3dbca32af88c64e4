//! The floor probe: the least a durable assign can cost on this host, with no application logic.
//!
//! `liftlab-floor DIR MODE` serves `GET /healthz` and `POST /assign` (`{"unit_id": …}`) on a
//! loopback port it prints as `listening on URL`, with two actix-web workers and mimalloc, as
//! `liftlab serve` runs. An assign parses the body, hashes the unit into one of two arms, makes a
//! record of about 150 bytes and answers with an assignment in liftlab's shape. MODE says what
//! happens to the record before the answer:
//!
//! - `thread`: a writer thread takes batches off a channel, appends each with one `write` and
//!   one `fdatasync`, then answers (liftlab's group commit, without the store behind it);
//! - `thread-nosync`: the same hand-off, with no `fdatasync` (what the hand-off alone costs);
//! - `per-worker`: each worker gathers the assigns of one turn of its event loop, appends them
//!   to a log file of its own with one `write` and one `fdatasync` on its own thread, then
//!   answers (no hand-off between threads, and no shared order either);
//! - `inline`: nothing (the record is made and dropped): the HTTP and JSON work alone.
//!
//! `scripts/bench-floor.sh` runs each mode and liftlab under the same wrk load as
//! `scripts/bench-http.sh`, and BENCHMARKS.md says what the figures mean for issue #4's target.

use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A record to make durable, and who waits for it.
type Job = (Vec<u8>, oneshot::Sender<()>);

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Thread,
    ThreadNoSync,
    PerWorker,
    Inline,
}

struct Probe {
    mode: Mode,
    dir: PathBuf,
    writer: mpsc::Sender<Job>,
}

#[derive(Deserialize)]
struct AssignRequest {
    unit_id: String,
}

#[derive(Serialize)]
struct AssignView<'a> {
    experiment: &'a str,
    arm: &'a str,
    in_experiment: bool,
    version: u64,
    assignment_id: String,
    propensity: f64,
}

thread_local! {
    /// This worker's assigns waiting for its next append.
    static PENDING: RefCell<Vec<Job>> = const { RefCell::new(Vec::new()) };
    /// Whether this worker has an append scheduled.
    static SCHEDULED: Cell<bool> = const { Cell::new(false) };
    /// This worker's own log file.
    static LOG: RefCell<Option<File>> = const { RefCell::new(None) };
}

/// FNV-1a 32 of the unit id: the arm, as liftlab's fixed policy buckets units.
fn fnv1a(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// Appends `jobs` as length-prefixed records with one write, and syncs if asked.
fn append(file: &mut File, jobs: &[Job], sync: bool) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(jobs.iter().map(|(r, _)| r.len() + 4).sum());
    for (record, _) in jobs {
        let len = u32::try_from(record.len()).expect("records are small");
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(record);
    }
    file.write_all(&buf)?;
    if sync {
        file.sync_data()?;
    }
    Ok(())
}

fn open_log(path: PathBuf) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()))
}

/// The writer thread of `thread` and `thread-nosync`: group commit over a channel.
fn run_writer(jobs: &mpsc::Receiver<Job>, mut file: File, sync: bool) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        batch.extend(jobs.try_iter());
        append(&mut file, &batch, sync).expect("the log append failed");
        for (_, done) in batch {
            let _ = done.send(());
        }
    }
}

/// `per-worker`: queue the record on this worker; the first of a turn schedules the append,
/// which runs after the worker has polled every other ready request.
fn commit_on_this_worker(dir: PathBuf, record: Vec<u8>) -> oneshot::Receiver<()> {
    let (done, wait) = oneshot::channel();
    PENDING.with(|p| p.borrow_mut().push((record, done)));
    if !SCHEDULED.with(|s| s.replace(true)) {
        actix_web::rt::spawn(async move {
            tokio::task::yield_now().await;
            let batch = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
            SCHEDULED.with(|s| s.set(false));
            LOG.with(|log| {
                let mut log = log.borrow_mut();
                let file = log.get_or_insert_with(|| {
                    let name = format!("{:?}.log", std::thread::current().id());
                    open_log(dir.join(name.replace(['(', ')'], "")))
                });
                append(file, &batch, true).expect("the log append failed");
            });
            for (_, done) in batch {
                let _ = done.send(());
            }
        });
    }
    wait
}

async fn assign(probe: web::Data<Probe>, body: web::Json<AssignRequest>) -> HttpResponse {
    let arm = if fnv1a(&body.unit_id) % 10_000 < 5_000 {
        "human"
    } else {
        "ai"
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let view = AssignView {
        experiment: "bench-fixed",
        arm,
        in_experiment: true,
        version: 1,
        assignment_id: format!("{:032x}", nanos ^ u128::from(fnv1a(&body.unit_id)) << 64),
        propensity: 0.5,
    };
    let mut record = body.unit_id.as_bytes().to_vec();
    record.push(0);
    record.extend_from_slice(&serde_json::to_vec(&view).expect("a plain struct serializes"));
    let wait = match probe.mode {
        Mode::Inline => None,
        Mode::PerWorker => Some(commit_on_this_worker(probe.dir.clone(), record)),
        Mode::Thread | Mode::ThreadNoSync => {
            let (done, wait) = oneshot::channel();
            probe
                .writer
                .send((record, done))
                .expect("the writer thread runs");
            Some(wait)
        }
    };
    if let Some(wait) = wait {
        if wait.await.is_err() {
            return HttpResponse::ServiceUnavailable().finish();
        }
    }
    HttpResponse::Ok().json(view)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(mode)) = (args.next(), args.next()) else {
        eprintln!("usage: liftlab-floor DIR thread|thread-nosync|per-worker|inline");
        std::process::exit(2);
    };
    let mode = match mode.as_str() {
        "thread" => Mode::Thread,
        "thread-nosync" => Mode::ThreadNoSync,
        "per-worker" => Mode::PerWorker,
        "inline" => Mode::Inline,
        other => {
            eprintln!("unknown mode {other:?}");
            std::process::exit(2);
        }
    };
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir)?;
    let (writer, jobs) = mpsc::channel::<Job>();
    let file = open_log(dir.join("writer.log"));
    std::thread::spawn(move || run_writer(&jobs, file, mode != Mode::ThreadNoSync));
    let probe = web::Data::new(Probe { mode, dir, writer });
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(probe.clone())
                .route("/healthz", web::get().to(healthz))
                .route("/assign", web::post().to(assign))
        })
        .workers(2)
        .bind(("127.0.0.1", 0))?;
        println!("listening on http://{}", server.addrs()[0]);
        server.run().await
    })
}
