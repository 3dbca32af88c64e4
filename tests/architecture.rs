//! Architecture invariants checked from `cargo metadata`: dependencies point one way.

use std::collections::BTreeMap;
use std::process::Command;

/// The layers from the top down; a crate may depend only on crates after it.
const LAYERS: [&str; 5] = [
    "liftlab",
    "liftlab-server",
    "liftlab-store",
    "liftlab-domain",
    "liftlab-stats",
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
                "{krate} depends on {dep}, against the direction cli → server → store → domain → stats"
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
