//! How `tests/fixtures/schema7/` was written: the schema-7 store of commit 983ae13 (`SledStore` with its write-ahead log, chunks and watermark), kept as a record and compiled out.
//!
//! The fixture is a data directory of the layout liftlab wrote up to schema 7, which
//! `liftlab_store::legacy` reads for migration. This program wrote it through the public
//! `Store` API of that store and dumped what the store answered into `expected.json`, so the
//! migration tests compare with what the old code said, not with what the new code reads.
//!
//! Its body is compiled only with every `any()` in a `cfg` below turned into `all()`, and only
//! makes sense on a commit where `SledStore` still writes schema 7 (the commit that added this
//! file). A later store with the same names would write another layout, so the body stays out
//! of the build instead of being kept compiling. To write the fixture again there:
//!
//! ```text
//! cargo run -p liftlab-store --example write_schema7_fixture -- crates/store/tests/fixtures/schema7
//! ```
//!
//! It writes `clean/` (a directory closed cleanly: sled's files, the audit watermark and an empty
//! write-ahead log), `expected.json` (every experiment, version, epoch, period, assignment,
//! task binding, outcome, unit row, aggregate, counter, assignment count, bandit state and
//! drift monitor, and the whole audit chain), then runs itself again as a child that writes
//! `crashed/` and aborts without closing, so its write-ahead log still holds the last group
//! commits and sled has not flushed them all (`crashed.json` is the chain that child read back
//! before aborting).

#[cfg(any())]
mod generator {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use liftlab_domain::assign::{decide, AssignRequest};
    use liftlab_domain::{Assignment, ExperimentSpec, HandledBy, Millis, Outcome, Transition};
    use liftlab_store::{Recorded, SledStore, Store};
    use liftlab_testkit::spec;
    use serde_json::{json, Value};

    /// 2025-11-24T16:00:00Z: every time in the fixture counts from here.
    const T0: Millis = 1_764_000_000_000;
    const MINUTE: Millis = 60_000;

    const AB: &str = "triage-ab";
    const BANDIT: &str = "routing-bandit";

    fn parse(doc: &Value) -> ExperimentSpec {
        ExperimentSpec::parse(doc).unwrap_or_else(|e| panic!("the fixture spec is valid: {e}"))
    }

    /// The fixed A/B: paired metrics (a covariate and a ratio), `region` as segment, drift on
    /// `resolved`, and a coverage below 1 so some units fall outside.
    fn ab_spec(weights: Option<(f64, f64)>, coverage: f64) -> ExperimentSpec {
        let mut doc = spec::paired(AB);
        doc["hash_seed"] = json!("fixture-seed");
        doc["coverage"] = json!(coverage);
        doc["drift"] = json!({"metrics": ["resolved"]});
        if let Some((human, ai)) = weights {
            doc["allocation"] = json!({"policy": "fixed", "weights": {"human": human, "ai": ai}});
        }
        parse(&doc)
    }

    fn bandit_spec() -> ExperimentSpec {
        parse(&spec::thompson(BANDIT, 3, 5))
    }

    /// Assigns a unit as the server does: the stored answer if any, else a decision on the
    /// current version, epoch and period, recorded (first write wins).
    fn assign(
        store: &dyn Store,
        exp: &str,
        unit: &str,
        task: Option<&str>,
        attributes: &[(&str, &str)],
        now: Millis,
    ) -> Assignment {
        let attributes: BTreeMap<String, String> = attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let req = AssignRequest::new(unit, task.map(str::to_string), attributes)
            .expect("a valid request");
        let current = store.experiment(exp).expect("the experiment exists");
        let epoch = store
            .epochs(exp)
            .expect("epochs")
            .last()
            .expect("epoch 0")
            .epoch;
        let period = store.current_period(exp).expect("a period");
        let decided = decide(
            &current.spec,
            current.status,
            current.version,
            epoch,
            &period,
            &req,
            format!("asg-{exp}-{unit}"),
            now,
        );
        store.record_assignment(decided).expect("recorded")
    }

    struct Report<'a> {
        exp: &'a str,
        unit: &'a str,
        event: &'a str,
        metrics: &'a [(&'a str, f64)],
        handled_by: Option<HandledBy>,
        model_version: Option<&'a str>,
        ts: Millis,
    }

    /// Records an outcome for the unit's stored assignment in the current epoch.
    fn report(store: &dyn Store, r: Report<'_>) -> Recorded {
        let a = store
            .assignment(r.exp, r.unit)
            .expect("reads")
            .expect("the unit is assigned");
        let current = store.experiment(r.exp).expect("exists");
        let epoch = store
            .epochs(r.exp)
            .expect("epochs")
            .last()
            .expect("epoch 0")
            .epoch;
        let outcome = Outcome {
            event_id: r.event.to_string(),
            experiment: r.exp.to_string(),
            task_id: a.task_id.clone(),
            unit_id: r.unit.to_string(),
            arm: a.arm.clone(),
            epoch,
            ts: r.ts,
            metrics: r.metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            handled_by: r.handled_by,
            model_version: r.model_version.map(str::to_string),
            attributes: BTreeMap::new(),
        };
        store
            .record_outcome(&current.spec, outcome)
            .expect("recorded or duplicate")
    }

    fn handled(i: usize) -> Option<HandledBy> {
        match i % 4 {
            0 => Some(HandledBy::Human),
            1 => Some(HandledBy::Ai),
            2 => Some(HandledBy::Hybrid),
            _ => None,
        }
    }

    fn region(i: usize) -> &'static str {
        if i % 3 == 0 {
            "us"
        } else {
            "eu"
        }
    }

    /// A deterministic "random" number in [0, 1) for unit `i` and stream `s`.
    fn noise(i: usize, s: usize) -> f64 {
        let x = (i as u64).wrapping_mul(2_654_435_761) ^ (s as u64).wrapping_mul(40_503);
        (x % 1000) as f64 / 1000.0
    }

    /// The A/B's history: draft changes, a unit outside, start, units (some with their own
    /// task ids and one returning under a new task id), outcomes (some sent twice), a pause
    /// with a change of weights (a new period), a restart, a re-baseline, more outcomes, stop.
    fn write_ab(store: &dyn Store) -> Vec<String> {
        let mut units = Vec::new();
        store
            .create_experiment(ab_spec(None, 1.0), T0)
            .expect("created");
        store
            .update_experiment(ab_spec(None, 0.9), Some(1), T0 + MINUTE)
            .expect("a draft change of coverage");
        let early = assign(
            store,
            AB,
            "u-early",
            None,
            &[("region", "eu")],
            T0 + 2 * MINUTE,
        );
        assert!(!early.in_experiment, "a draft places nobody");
        units.push("u-early".to_string());
        store
            .transition(AB, Transition::Start, Some("launch"), T0 + 3 * MINUTE)
            .expect("started");
        let mut t = T0 + 10 * MINUTE;
        for i in 1..=24 {
            let unit = format!("u{i:02}");
            let task = (i % 5 == 0).then(|| format!("task-{i:02}"));
            let estimate = format!("{}", 10 + (i * 7) % 30);
            assign(
                store,
                AB,
                &unit,
                task.as_deref(),
                &[("region", region(i)), ("estimate", &estimate)],
                t,
            );
            units.push(unit);
            t += MINUTE;
        }
        // A returning unit under a new task id: bound to it (a `task_bound` record).
        let again = assign(store, AB, "u03", Some("task-03-b"), &[("region", "us")], t);
        assert_eq!(again.unit_id, "u03");
        t += MINUTE;
        for i in 1..=20 {
            let unit = format!("u{i:02}");
            let resolved = if noise(i, 1) < 0.6 { 1.0 } else { 0.0 };
            let minutes = 5.0 + 40.0 * noise(i, 2);
            let event = format!("ev-ab-{i:02}");
            let r = Report {
                exp: AB,
                unit: &unit,
                event: &event,
                metrics: &[("resolved", resolved), ("minutes", minutes)],
                handled_by: handled(i),
                model_version: (i % 2 == 1).then_some("m-1"),
                ts: t,
            };
            assert_eq!(report(store, r), Recorded::Accepted);
            if i % 6 == 0 {
                // Sent twice: the second is a duplicate and changes nothing.
                let r = Report {
                    exp: AB,
                    unit: &unit,
                    event: &event,
                    metrics: &[("resolved", resolved), ("minutes", minutes)],
                    handled_by: handled(i),
                    model_version: None,
                    ts: t + 1,
                };
                assert_eq!(report(store, r), Recorded::Duplicate);
            }
            t += MINUTE;
        }
        // A second outcome of one unit, and one of the unit outside the experiment.
        for (unit, event) in [("u02", "ev-ab-02-b"), ("u-early", "ev-ab-early")] {
            let r = Report {
                exp: AB,
                unit,
                event,
                metrics: &[("resolved", 1.0), ("minutes", 12.5)],
                handled_by: Some(HandledBy::Hybrid),
                model_version: None,
                ts: t,
            };
            assert_eq!(report(store, r), Recorded::Accepted);
            t += MINUTE;
        }
        store
            .transition(AB, Transition::Pause, Some("review the weights"), t)
            .expect("paused");
        t += MINUTE;
        store
            .update_experiment(ab_spec(Some((0.3, 0.7)), 0.9), None, t)
            .expect("new weights");
        t += MINUTE;
        store
            .transition(AB, Transition::Start, None, t)
            .expect("resumed");
        t += MINUTE;
        for i in 25..=32 {
            let unit = format!("u{i:02}");
            let estimate = format!("{}", 10 + (i * 7) % 30);
            assign(
                store,
                AB,
                &unit,
                None,
                &[("region", region(i)), ("estimate", &estimate)],
                t,
            );
            units.push(unit);
            t += MINUTE;
        }
        for i in 21..=30 {
            let unit = format!("u{i:02}");
            let event = format!("ev-ab-{i:02}");
            let r = Report {
                exp: AB,
                unit: &unit,
                event: &event,
                metrics: &[
                    ("resolved", f64::from(u8::from(noise(i, 3) < 0.5))),
                    ("minutes", 3.0 + 30.0 * noise(i, 4)),
                ],
                handled_by: handled(i),
                model_version: Some("m-2"),
                ts: t,
            };
            assert_eq!(report(store, r), Recorded::Accepted);
            t += MINUTE;
        }
        store
            .rebaseline(AB, "the new model went live", t)
            .expect("re-baselined");
        t += MINUTE;
        for i in 33..=36 {
            let unit = format!("u{i:02}");
            assign(
                store,
                AB,
                &unit,
                None,
                &[("region", region(i)), ("estimate", "20")],
                t,
            );
            units.push(unit);
            t += MINUTE;
        }
        for i in [1, 2, 33, 34, 35] {
            let unit = format!("u{i:02}");
            let event = format!("ev-ab-e1-{i:02}");
            let r = Report {
                exp: AB,
                unit: &unit,
                event: &event,
                metrics: &[
                    ("resolved", 1.0),
                    ("minutes", 8.0 + f64::from(u8::try_from(i).expect("small"))),
                ],
                handled_by: handled(i),
                model_version: Some("m-2"),
                ts: t,
            };
            assert_eq!(report(store, r), Recorded::Accepted);
            t += MINUTE;
        }
        store
            .transition(AB, Transition::Stop, Some("enough data"), t)
            .expect("stopped");
        units.push("u03".to_string());
        units.sort();
        units.dedup();
        units
    }

    /// The bandit: a unit outside (assigned before the start), then units and rewards enough
    /// for the warm-up and two recomputations, each of which opens an allocation period.
    fn write_bandit(store: &dyn Store) -> Vec<String> {
        let mut units = Vec::new();
        let t = T0 + 3 * 60 * MINUTE;
        store.create_experiment(bandit_spec(), t).expect("created");
        let early = assign(store, BANDIT, "b-early", None, &[], t + MINUTE);
        assert!(!early.in_experiment);
        units.push("b-early".to_string());
        store
            .transition(BANDIT, Transition::Start, None, t + 2 * MINUTE)
            .expect("started");
        let mut t = t + 3 * MINUTE;
        for i in 1..=36 {
            let unit = format!("b{i:02}");
            let task = (i % 7 == 0).then(|| format!("bt-{i:02}"));
            assign(store, BANDIT, &unit, task.as_deref(), &[], t);
            units.push(unit.clone());
            t += MINUTE;
            if i <= 32 {
                let a = store
                    .assignment(BANDIT, &unit)
                    .expect("reads")
                    .expect("assigned");
                let p = match a.arm.as_str() {
                    "ai" => 0.8,
                    "hybrid" => 0.6,
                    _ => 0.4,
                };
                let resolved = f64::from(u8::from(noise(i, 5) < p));
                let event = format!("ev-b-{i:02}");
                let r = Report {
                    exp: BANDIT,
                    unit: &unit,
                    event: &event,
                    metrics: &[("resolved", resolved)],
                    handled_by: handled(i),
                    model_version: None,
                    ts: t,
                };
                assert_eq!(report(store, r), Recorded::Accepted);
                t += MINUTE;
            }
        }
        let periods = store.periods(BANDIT).expect("periods");
        assert!(
            periods.len() >= 3,
            "the bandit opened {} periods",
            periods.len()
        );
        units
    }

    /// Everything the store answers about one experiment.
    fn dump_experiment(store: &dyn Store, exp: &str, units: &[String]) -> Value {
        let epochs = store.epochs(exp).expect("epochs");
        let assignments: Vec<Assignment> = units
            .iter()
            .filter_map(|u| store.assignment(exp, u).expect("reads"))
            .collect();
        let mut tasks: Vec<String> = assignments.iter().map(|a| a.task_id.clone()).collect();
        tasks.extend(
            store
                .audit(exp, 0, liftlab_store::MAX_AUDIT_PAGE)
                .expect("audit")
                .into_iter()
                .filter(|r| r.kind == liftlab_store::AuditKind::TaskBound)
                .map(|r| {
                    serde_json::from_str::<liftlab_store::TaskBinding>(&r.payload)
                        .expect("a binding")
                        .task_id
                }),
        );
        let task_index: BTreeMap<String, String> = tasks
            .into_iter()
            .map(|t| {
                let a = store
                    .assignment_by_task(exp, &t)
                    .expect("reads")
                    .expect("the task is indexed");
                (t, a.unit_id)
            })
            .collect();
        let outcomes: Vec<Outcome> = store
            .outcomes(exp)
            .expect("the log")
            .collect::<Result<_, _>>()
            .expect("reads");
        let per_epoch: Vec<Value> = epochs
            .iter()
            .map(|e| {
                let aggregates: Vec<Value> = store
                    .aggregates(exp, e.epoch)
                    .expect("aggregates")
                    .into_iter()
                    .map(|(k, a)| json!([k, a]))
                    .collect();
                json!({
                    "epoch": e.epoch,
                    "unit_rows": store.unit_rows(exp, e.epoch).expect("rows"),
                    "aggregates": aggregates,
                    "arm_counters": store.arm_counters(exp, e.epoch).expect("counters"),
                    "assignment_counts": store.assignment_counts(exp, e.epoch).expect("counts"),
                    "drift_monitor": store.drift_monitor(exp, e.epoch).expect("drift"),
                })
            })
            .collect();
        json!({
            "key": exp,
            "current": store.experiment(exp).expect("exists"),
            "versions": store.versions(exp).expect("versions"),
            "epochs": epochs,
            "periods": store.periods(exp).expect("periods"),
            "assignments": assignments,
            "task_index": task_index,
            "outcomes": outcomes,
            "bandit_state": store.bandit_state(exp).expect("bandit"),
            "per_epoch": per_epoch,
        })
    }

    fn whole_chain(store: &dyn Store) -> Vec<liftlab_store::AuditRecord> {
        let mut chain = Vec::new();
        loop {
            let after = chain
                .last()
                .map_or(0, |r: &liftlab_store::AuditRecord| r.seq);
            let page = store
                .audit_log(after, liftlab_store::MAX_AUDIT_PAGE)
                .expect("the chain");
            if page.is_empty() {
                return chain;
            }
            chain.extend(page);
        }
    }

    fn write_json(path: &Path, value: &impl serde::Serialize) {
        let mut text = serde_json::to_string_pretty(value).expect("serializes");
        text.push('\n');
        std::fs::write(path, text).expect("writes");
    }

    fn write_clean(out: &Path) {
        let dir = out.join("clean");
        assert!(!dir.exists(), "{} exists: remove it first", dir.display());
        let store = SledStore::open(&dir).expect("opens");
        let ab_units = write_ab(&store);
        let bandit_units = write_bandit(&store);
        let verify = store.verify().expect("verifies");
        assert!(verify.ok, "{verify:?}");
        let expected = json!({
            "written_by": "crates/store/examples/write_schema7_fixture.rs, the store of commit 983ae13",
            "schema": 7,
            "experiments": [
                dump_experiment(&store, AB, &ab_units),
                dump_experiment(&store, BANDIT, &bandit_units),
            ],
            "experiment_keys": store
                .experiments()
                .expect("experiments")
                .iter()
                .map(|v| v.key.clone())
                .collect::<Vec<_>>(),
            "verify": verify,
            "audit": whole_chain(&store),
        });
        store.close().expect("closes");
        drop(store);
        write_json(&out.join("expected.json"), &expected);
    }

    /// The child: writes a small history and aborts without closing.
    fn write_crashed(out: &Path) -> ! {
        let dir = out.join("crashed");
        let store = SledStore::open(&dir).expect("opens");
        let t = T0 + 24 * 60 * MINUTE;
        store
            .create_experiment(ab_spec(None, 1.0), t)
            .expect("created");
        store
            .transition(AB, Transition::Start, None, t + MINUTE)
            .expect("started");
        for i in 1..=12 {
            let unit = format!("c{i:02}");
            assign(
                &store,
                AB,
                &unit,
                None,
                &[("region", region(i)), ("estimate", "15")],
                t + 2 * MINUTE,
            );
            let event = format!("ev-c-{i:02}");
            let r = Report {
                exp: AB,
                unit: &unit,
                event: &event,
                metrics: &[("resolved", 1.0), ("minutes", 10.0)],
                handled_by: handled(i),
                model_version: None,
                ts: t + 3 * MINUTE,
            };
            report(&store, r);
            if i == 6 {
                // sled flushes on its own twice a second: let it hold the first half.
                std::thread::sleep(std::time::Duration::from_millis(1_500));
            }
        }
        // Every write above was acknowledged, hence in the write-ahead log.
        write_json(&out.join("crashed.json"), &whole_chain(&store));
        std::process::abort();
    }

    /// The records sled itself holds in the audit tree of `dir` (without the log's).
    fn records_in_sled(dir: &Path) -> usize {
        let db = sled::open(dir).expect("sled opens");
        let audit = db.open_tree("audit").expect("the audit tree");
        audit
            .iter()
            .map(|e| {
                let (_, v) = e.expect("reads");
                let (n, _) = postcard::take_from_bytes::<u64>(&v[1..]).expect("a list length");
                usize::try_from(n).expect("small")
            })
            .sum()
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("creates");
        for entry in std::fs::read_dir(from).expect("lists") {
            let entry = entry.expect("lists");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("a type").is_dir() {
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).expect("copies");
            }
        }
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if let [flag, out] = args.as_slice() {
            if flag == "--crash" {
                write_crashed(Path::new(out));
            }
        }
        let [out] = args.as_slice() else {
            panic!("usage: write_schema7_fixture <output directory>");
        };
        let out = PathBuf::from(out);
        std::fs::create_dir_all(&out).expect("creates the output directory");
        write_clean(&out);
        // The crashed directory: retried until sled itself holds some acknowledged records but
        // not all, so that only sled and the write-ahead log together give the whole chain.
        for attempt in 1..=5 {
            let dir = out.join("crashed");
            if dir.exists() {
                std::fs::remove_dir_all(&dir).expect("removes");
            }
            let status = std::process::Command::new(std::env::current_exe().expect("self"))
                .arg("--crash")
                .arg(&out)
                .status()
                .expect("the child runs");
            assert!(!status.success(), "the child aborts");
            let acknowledged: Vec<Value> = serde_json::from_str(
                &std::fs::read_to_string(out.join("crashed.json")).expect("reads"),
            )
            .expect("a chain");
            let probe = tempfile::tempdir().expect("a temporary directory");
            copy_dir(&dir, probe.path());
            let in_sled = records_in_sled(probe.path());
            eprintln!(
                "attempt {attempt}: {} records acknowledged, {in_sled} of them in sled",
                acknowledged.len()
            );
            if 0 < in_sled && in_sled < acknowledged.len() {
                return;
            }
        }
        panic!("sled held none or all of the chain at the abort in every attempt");
    }
}

#[cfg(any())]
fn main() {
    generator::main();
}

#[cfg(not(any()))]
fn main() {
    eprintln!(
        "write_schema7_fixture records how tests/fixtures/schema7 was written by the schema-7 \
         store; it is compiled out (see its source)"
    );
}
