//! Architecture invariants checked from `cargo metadata`: dependencies point one way.

use std::collections::BTreeMap;
use std::process::Command;

/// The layers from the top down; a crate may depend only on crates after it.
/// `liftlab-testkit` is last: it knows no liftlab crate, so every crate's tests can use it.
const LAYERS: [&str; 8] = [
    "liftlab",
    "liftlab-lab",
    "liftlab-server",
    "liftlab-store-pg",
    "liftlab-store",
    "liftlab-domain",
    "liftlab-stats",
    "liftlab-testkit",
];

fn workspace_edges() -> BTreeMap<String, Vec<String>> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata failed");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let mut edges = BTreeMap::new();
    for pkg in meta["packages"].as_array().expect("packages") {
        let name = pkg["name"].as_str().expect("name").to_string();
        let deps = pkg["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str())
            .filter(|d| d.starts_with("liftlab"))
            .map(str::to_string)
            .collect();
        edges.insert(name, deps);
    }
    edges
}

fn layer(name: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| *l == name)
        .unwrap_or_else(|| panic!("crate {name} is not in the layer list"))
}

#[test]
fn dependencies_point_down_the_layers() {
    let edges = workspace_edges();
    assert_eq!(
        edges.len(),
        LAYERS.len(),
        "every workspace crate has a layer"
    );
    for (krate, deps) in &edges {
        for dep in deps {
            assert!(
                layer(krate) < layer(dep),
                "{krate} depends on {dep}, against the direction cli → lab → server → store-pg → store → domain → stats"
            );
        }
    }
}

#[test]
fn pure_crates_know_nothing_of_io() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let forbidden = ["sled", "actix-web", "tokio", "ureq", "time"];
    for pkg in meta["packages"].as_array().expect("packages") {
        let name = pkg["name"].as_str().expect("name");
        if name != "liftlab-stats" && name != "liftlab-domain" {
            continue;
        }
        for dep in pkg["dependencies"].as_array().expect("deps") {
            let dep = dep["name"].as_str().expect("dep name");
            assert!(
                !forbidden.contains(&dep),
                "{name} must not depend on {dep}: it does no IO"
            );
        }
    }
}

/// The binary parses arguments and calls crates: statistics come from liftlab-stats (or the lab),
/// never from statrs directly.
#[test]
fn the_binary_does_no_statistics_of_its_own() {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let binary = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "liftlab")
        .expect("the liftlab package");
    for dep in binary["dependencies"].as_array().expect("deps") {
        assert!(
            !(dep["name"] == "statrs" && dep["kind"].is_null()),
            "liftlab (crates/cli) must not depend on statrs: its statistics live in the library crates"
        );
    }
    let cli = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/cli");
    let mut dirs = vec![cli];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("crates/cli is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                assert!(
                    !text.contains("statrs::"),
                    "{} uses statrs directly: the binary calls the crates for its statistics",
                    path.display()
                );
            }
        }
    }
}
