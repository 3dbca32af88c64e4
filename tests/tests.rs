//! Black-box tests of the real `liftlab` binary; one module per area.

mod access;
mod architecture;
mod calibration;
mod cli;
mod durability;
mod fuzz;
mod pages;
mod reliability;
mod replicas;
mod serve;
mod simulate;
mod tamper;

/// The binary under test, driven by the test kit's process harness.
fn liftlab() -> liftlab_testkit::Liftlab {
    liftlab_testkit::Liftlab::at(env!("CARGO_BIN_EXE_liftlab"))
}

/// Every outcome event id in an experiment's audit records, in chain order: `page(after)`
/// fetches one `GET /v1/experiments/{exp}/audit?after={after}&limit=1000` answer.
fn audited_outcome_ids(mut page: impl FnMut(u64) -> serde_json::Value) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = 0u64;
    loop {
        let page = page(after);
        for record in page["records"].as_array().expect("records") {
            if record["kind"] == "outcome_recorded" {
                let payload: serde_json::Value =
                    serde_json::from_str(record["payload"].as_str().expect("text"))
                        .expect("the payload is JSON");
                ids.push(payload["event_id"].as_str().expect("event id").to_string());
            }
        }
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => return ids,
        }
    }
}
