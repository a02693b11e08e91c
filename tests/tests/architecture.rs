//! The dependency direction of `shared/ARCHITECTURE.md`, read from
//! `cargo metadata`: a crate may depend only on the workspace crates the
//! architecture allows.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Workspace package → the workspace packages it may depend on.
fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    BTreeMap::from([
        (
            "switchboard",
            [
                "switchboard-channel",
                "switchboard-telegram",
                "switchboard-discord",
                "switchboard-slack",
                "switchboard-agents",
                "switchboard-memory",
                "switchboard-sandbox",
            ]
            .into(),
        ),
        ("switchboard-channel", BTreeSet::new()),
        ("switchboard-telegram", ["switchboard-channel"].into()),
        ("switchboard-discord", ["switchboard-channel"].into()),
        ("switchboard-slack", ["switchboard-channel"].into()),
        (
            "switchboard-agents",
            ["switchboard-sandbox", "switchboard-memory"].into(),
        ),
        ("switchboard-memory", BTreeSet::new()),
        ("switchboard-sandbox", BTreeSet::new()),
        ("switchboard-tray", BTreeSet::new()),
        // The end-to-end tests drive the binary from outside; they may not
        // link the gateway's internals. They do link the channel contract
        // and the adapters, to run the conformance suite on each adapter.
        (
            "switchboard-tests",
            [
                "switchboard-channel",
                "switchboard-telegram",
                "switchboard-discord",
                "switchboard-slack",
            ]
            .into(),
        ),
    ])
}

#[test]
fn workspace_crates_depend_only_in_the_allowed_direction() {
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let members: BTreeSet<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    let allowed = allowed();
    let mut violations = Vec::new();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        let Some(ok) = allowed.get(name) else {
            violations.push(format!("{name} is not in the architecture's list of parts: add it to this test and to ARCHITECTURE.md"));
            continue;
        };
        for d in p["dependencies"].as_array().unwrap() {
            let dep = d["name"].as_str().unwrap();
            // Dev-dependencies count too: a test must not reach across either.
            if members.contains(dep) && !ok.contains(dep) {
                violations.push(format!(
                    "{name} depends on {dep}, which the architecture forbids"
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    for part in [
        "switchboard",
        "switchboard-channel",
        "switchboard-telegram",
        "switchboard-agents",
        "switchboard-memory",
        "switchboard-sandbox",
        "switchboard-tray",
        "switchboard-tests",
    ] {
        assert!(members.contains(part), "the workspace lacks {part}");
    }
}

#[test]
fn every_crate_says_what_it_is_for() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for lib in [
        "gateway/src/lib.rs",
        "channels/core/src/lib.rs",
        "channels/telegram/src/lib.rs",
        "agents/src/lib.rs",
        "memory/src/lib.rs",
        "sandbox/src/lib.rs",
        "tray/src/lib.rs",
        "tests/src/lib.rs",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{lib}")).unwrap();
        let doc: Vec<&str> = text.lines().take_while(|l| l.starts_with("//!")).collect();
        assert!(
            doc.len() >= 2,
            "{lib} must open with a //! paragraph saying what the crate is for"
        );
    }
}
