//! Architecture invariants checked from `cargo metadata` and the sources: dependencies point one
//! way, and the binary neither does statistics nor re-declares the domain's types.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
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

/// The workspace's `cargo metadata`, without its dependencies' packages.
fn metadata() -> serde_json::Value {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "cargo metadata failed");
    serde_json::from_slice(&out.stdout).expect("metadata is JSON")
}

fn workspace_edges() -> BTreeMap<String, Vec<String>> {
    let meta = metadata();
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
    let meta = metadata();
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
    let meta = metadata();
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
    for (path, text) in rust_sources("crates/cli") {
        assert!(
            !text.contains("statrs::"),
            "{} uses statrs directly: the binary calls the crates for its statistics",
            path.display()
        );
    }
}

/// The binary uses the domain's types; it does not declare its own under their names (a second
/// `Transition` or `Status` would be a second meaning of one name, and a place where the two
/// drift apart).
#[test]
fn the_binary_declares_no_type_the_domain_has() {
    let domain: BTreeSet<String> = rust_sources("crates/domain/src")
        .iter()
        .flat_map(|(_, text)| declared_types(text, true))
        .collect();
    assert!(
        domain.contains("ExperimentSpec") && domain.contains("Transition"),
        "the scan finds the domain's public types"
    );
    for (path, text) in rust_sources("crates/cli") {
        for name in declared_types(&text, false) {
            assert!(
                !domain.contains(&name),
                "{} declares `{name}`, a type liftlab-domain already has: use the domain's",
                path.display()
            );
        }
    }
}

#[test]
fn declared_types_reads_declarations_only() {
    let text = "pub struct A;\npub(crate) enum B { X }\n    struct C(u8);\npub type D = u8;\n\
                pub trait E {}\n// struct F\nlet struct_g = 1;\npub use x::H;\n";
    assert_eq!(declared_types(text, false), ["A", "B", "C", "D", "E"]);
    assert_eq!(declared_types(text, true), ["A", "D", "E"]);
}

/// The `.rs` files under `dir` (relative to the workspace root) with their text.
fn rust_sources(dir: &str) -> Vec<(PathBuf, String)> {
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)];
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a readable source directory") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                files.push((path, text));
            }
        }
    }
    files
}

/// The names of the structs, enums, type aliases and traits a file declares at the start of a
/// line; with `public_only`, only those declared `pub` (not `pub(crate)` or private).
fn declared_types(text: &str, public_only: bool) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        let (public, rest) = if let Some(rest) = line.strip_prefix("pub ") {
            (true, rest)
        } else if line.starts_with("pub(") {
            (false, line.split_once(") ").map_or("", |(_, rest)| rest))
        } else {
            (false, line)
        };
        if public_only && !public {
            continue;
        }
        let Some((keyword, rest)) = rest.split_once(' ') else {
            continue;
        };
        if !matches!(keyword, "struct" | "enum" | "type" | "trait") {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.push(name);
        }
    }
    names
}
