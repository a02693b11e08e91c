//! `switchboard config check` and start-up refusals, through the binary.

use std::process::Command;

fn switchboard() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    c.env_remove("SWITCHBOARD_TOKEN")
        .env_remove("SWITCHBOARD_CONFIG")
        .env_remove("SWITCHBOARD_BIND");
    c
}

#[test]
fn a_valid_file_passes_and_a_bad_one_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[providers.local]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:11434/v1\"\nmodel = \"llama3.2\"\n\n[agents.main]\nprovider = \"local\"\n",
    )
    .unwrap();
    let out = switchboard()
        .args(["config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("is valid"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[gateway]\nbnd = \"127.0.0.1:1\"\n").unwrap();
    let out = switchboard()
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gateway.bnd") && err.contains("unknown field"),
        "{err}"
    );

    let dangling = dir.path().join("dangling.toml");
    std::fs::write(&dangling, "[agents.main]\nprovider = \"openai\"\n").unwrap();
    let out = switchboard()
        .args(["config", "check"])
        .arg(&dangling)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agents.main.provider") && err.contains("add [providers.openai]"),
        "{err}"
    );

    let missing = dir.path().join("missing.toml");
    let out = switchboard()
        .args(["config", "check"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read it"));
}

#[test]
fn environment_values_are_checked_too() {
    let out = switchboard()
        .args(["config", "check"])
        .env("SWITCHBOARD_SESSIONS__MAILBOX", "lots")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sessions.mailbox") && err.contains("SWITCHBOARD_SESSIONS__MAILBOX"),
        "{err}"
    );
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = switchboard()
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--bind", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("gateway.bind") && err.contains("needs a token"),
        "{err}"
    );
    assert!(
        !dir.path().join("switchboard.db").exists(),
        "nothing was started"
    );
}

#[test]
fn sandbox_settings_that_would_be_unsafe_or_unusable_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("sandbox.toml");
    std::fs::write(
        &bad,
        "[sandbox]\nuser = \"0:0\"\nmode = \"all\"\nscope = \"shared\"\nworkspace = \"rw\"\n",
    )
    .unwrap();
    let out = switchboard()
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sandbox.user") && err.contains("never run as root"),
        "{err}"
    );
    assert!(
        err.contains("sandbox.workspace") && err.contains("shared container"),
        "{err}"
    );

    std::fs::write(&bad, "[sandbox]\nmode = \"sometimes\"\n").unwrap();
    let out = switchboard()
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sandbox.mode") && err.contains("non-main"),
        "{err}"
    );
}
