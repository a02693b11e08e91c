//! Encryption at rest, secrets and forgetting a person, through the real
//! binary: what lies in the files, what a wrong passphrase does, key
//! rotation, the upgrade of a plain data directory.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use switchboard_tests::fake_openai::{FakeOpenAi, echo_answer};
use switchboard_tests::gateway::{Gateway, config, free_port};

const CANARY: &str = "CANARY-b81f-violet-giraffe";

/// Every file under `dir` (path relative to it → bytes), but the log.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n != "gateway.log") {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The files under `dir` holding `needle`.
fn holding(dir: &Path, needle: &str) -> Vec<String> {
    snapshot(dir)
        .into_iter()
        .filter(|(_, bytes)| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        .map(|(p, _)| p)
        .collect()
}

async fn say(gw: &Gateway, user: &str, text: &str) {
    let (status, v) = gw.chat(user, text).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"].as_str(),
        Some(echo_answer(text).as_str()),
        "{v}"
    );
}

#[tokio::test]
async fn a_canary_sent_answered_and_remembered_is_in_no_file_of_the_data_directory() {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(dir.path(), &config(free_port(), &model.base_url(), "")).await;
    say(&gw, "alice", &format!("my locker code is {CANARY}")).await;
    let (status, v) = gw
        .chat(
            "alice",
            &format!("use tool memory_save {{\"text\": \"locker code {CANARY}\"}}"),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (_, listed) = gw.get("/api/memory?agent=main").await;
    assert!(
        listed.to_string().contains(CANARY),
        "the memory was saved: {listed}"
    );
    let transcript = gw.transcript("agent:main:webchat:dm:alice").await.unwrap();
    assert!(
        transcript.iter().any(|(_, c)| c.contains(CANARY)),
        "readable through the API"
    );
    // While it runs (the write-ahead log holds the latest writes)…
    assert_eq!(holding(&gw.data_dir, CANARY), Vec::<String>::new());
    assert!(gw.terminate().await.success());
    // …and after it stopped.
    assert_eq!(holding(&gw.data_dir, CANARY), Vec::<String>::new());
    assert!(
        !gw.log().contains(CANARY),
        "the log at the default level holds no user content"
    );
    // The key was made at first start, said so, and only its owner reads it.
    let key = dir.path().join("switchboard.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(dir.path().join("switchboard.keyring").exists());
    assert!(
        gw.log().contains("Created an encryption key at"),
        "{}",
        gw.log()
    );
    assert!(
        !key.starts_with(&gw.data_dir),
        "the key is not in the data directory"
    );
}

fn passphrase_config(port: u16, model: &str) -> String {
    config(port, model, "[store.encryption]\nmode = \"passphrase\"\n")
}

#[tokio::test]
async fn a_wrong_passphrase_refuses_to_start_and_leaves_every_file_as_it_was() {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = passphrase_config(free_port(), &model.base_url());
    let mut gw = Gateway::start_with_env(
        dir.path(),
        &cfg,
        &[("SWITCHBOARD_PASSPHRASE", "correct horse")],
    )
    .await;
    say(&gw, "alice", "hello there").await;
    assert!(gw.terminate().await.success());
    let before = snapshot(dir.path());
    assert!(before.keys().any(|k| k.ends_with("switchboard.db")));

    gw.env = vec![("SWITCHBOARD_PASSPHRASE".into(), "battery staple".into())];
    gw.spawn_only();
    let status = gw.wait_exit().await;
    assert!(!status.success());
    let log = gw.log();
    assert!(
        log.contains("passphrase from SWITCHBOARD_PASSPHRASE does not open the keyring"),
        "the error names the source: {log}"
    );
    assert!(log.contains("Nothing was changed"), "{log}");
    assert_eq!(snapshot(dir.path()), before, "no file changed");

    // Unattended, from a systemd credential, it comes up with no prompt.
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(
        creds.path().join("switchboard-passphrase"),
        "correct horse\n",
    )
    .unwrap();
    gw.env = vec![(
        "CREDENTIALS_DIRECTORY".into(),
        creds.path().display().to_string(),
    )];
    gw.restart().await;
    let t = gw.transcript("agent:main:webchat:dm:alice").await.unwrap();
    assert_eq!(t[0].1, "hello there");
}

#[tokio::test]
async fn rotating_the_keys_both_ways_keeps_every_transcript_readable() {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Gateway::start(dir.path(), &config(free_port(), &model.base_url(), "")).await;
    say(&gw, "alice", "first from alice").await;
    say(&gw, "bob", "first from bob").await;
    let (ok, _, err) = gw.cli(&["keys", "rotate"]);
    assert!(!ok.success(), "refused while the gateway runs");
    assert!(err.contains("stop it first"), "{err}");
    assert!(gw.terminate().await.success());
    let keys = ["agent:main:webchat:dm:alice", "agent:main:webchat:dm:bob"];

    let key_file = dir.path().join("switchboard.key");
    let old_key = std::fs::read(&key_file).unwrap();
    let (ok, out, err) = gw.cli(&["keys", "rotate"]);
    assert!(ok.success(), "{out}{err}");
    assert!(err.contains("Re-wrapped"), "{err}");
    assert_ne!(std::fs::read(&key_file).unwrap(), old_key, "a new key file");
    gw.restart().await;
    for k in keys {
        assert_eq!(gw.transcript(k).await.unwrap().len(), 2, "{k}");
    }
    assert!(gw.terminate().await.success());

    let db = gw.data_dir.join("switchboard.db");
    let before = std::fs::read(&db).unwrap();
    let (ok, out, err) = gw.cli(&["keys", "rotate", "--reencrypt"]);
    assert!(ok.success(), "{out}{err}");
    assert!(
        err.contains("transcript.content: 4 records"),
        "progress shown: {err}"
    );
    assert_ne!(
        std::fs::read(&db).unwrap(),
        before,
        "every record rewritten"
    );
    gw.restart().await;
    for (k, who) in keys.iter().zip(["alice", "bob"]) {
        let t = gw.transcript(k).await.unwrap();
        assert_eq!(t[0].1, format!("first from {who}"));
        assert_eq!(t[1].1, echo_answer(&format!("first from {who}")));
    }
}

#[tokio::test]
async fn a_plain_data_directory_is_encrypted_at_the_first_start_and_nothing_is_lost() {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let plain = config(
        port,
        &model.base_url(),
        "[store.encryption]\nmode = \"off\"\n",
    );
    let mut gw = Gateway::start(dir.path(), &plain).await;
    say(&gw, "alice", &format!("plain {CANARY}")).await;
    assert!(gw.terminate().await.success());
    assert!(
        !holding(&gw.data_dir, CANARY).is_empty(),
        "with encryption off the text lies in the database"
    );
    let (ok, out, _) = gw.cli(&["doctor"]);
    let _ = ok;
    assert!(out.contains("RISK encryption at rest: off"), "{out}");

    gw.rewrite_config(&config(port, &model.base_url(), ""));
    gw.restart().await;
    assert!(
        gw.log().contains("Encrypting the records stored so far"),
        "{}",
        gw.log()
    );
    assert!(
        gw.log().contains("transcript.content: 2 records"),
        "{}",
        gw.log()
    );
    let t = gw.transcript("agent:main:webchat:dm:alice").await.unwrap();
    assert_eq!(t[0].1, format!("plain {CANARY}"));
    assert_eq!(t[1].1, echo_answer(&format!("plain {CANARY}")));
    say(&gw, "alice", "after the upgrade").await;
    assert!(gw.terminate().await.success());
    assert_eq!(holding(&gw.data_dir, CANARY), Vec::<String>::new());

    // Back to `off` is refused: the data is encrypted now.
    gw.rewrite_config(&plain);
    gw.spawn_only();
    assert!(!gw.wait_exit().await.success());
    assert!(gw.log().contains("is encrypted"), "{}", gw.log());
}

#[tokio::test]
async fn forget_removes_the_person_and_keeps_everyone_else() {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(free_port(), &model.base_url(), "")).await;
    say(&gw, "alice", "alice's secret").await;
    gw.chat(
        "alice",
        "use tool memory_save {\"text\": \"alice likes tea\"}",
    )
    .await;
    say(&gw, "bob", "bob's secret").await;
    let (ok, out, err) = gw.cli(&["forget", "webchat", "alice"]);
    assert!(ok.success(), "{out}{err}");
    assert!(out.contains("1 sessions"), "{out}");
    assert!(out.contains("1 memories"), "{out}");
    assert!(out.contains("keys destroyed"), "{out}");
    assert_eq!(gw.transcript("agent:main:webchat:dm:alice").await, None);
    let (_, mem) = gw.get("/api/memory?agent=main").await;
    assert!(!mem.to_string().contains("alice likes tea"), "{mem}");
    let bob = gw.transcript("agent:main:webchat:dm:bob").await.unwrap();
    assert_eq!(bob[0].1, "bob's secret");
    // A missing field is a clear error.
    let (status, _, text) = gw
        .post_json(
            "/api/forget",
            &serde_json::json!({ "channel": "webchat", "sender": "" }),
            &[],
        )
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("sender"), "{text}");
}

#[tokio::test]
async fn a_secret_named_in_the_config_reaches_the_provider_and_nowhere_else() {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let value = "sk-secret-0f9e8d7c6b5a";
    let cfg = config(free_port(), &model.base_url(), "").replace(
        "api_key = \"sk-test-key\"",
        "api_key = \"secret:provider_key\"",
    );
    let mut gw = Gateway::prepare(dir.path(), &cfg);
    std::fs::write(&gw.config_path, &cfg).unwrap();

    // Unset, the config says what to do.
    let (ok, out, err) = gw.cli(&["config", "check"]);
    assert!(!ok.success(), "{out}");
    assert!(
        err.contains("switchboard secrets set provider_key"),
        "{err}"
    );

    let (ok, out, err) = gw.cli_with_stdin(
        &["secrets", "set", "provider_key"],
        Some(&format!("{value}\n")),
    );
    assert!(ok.success(), "{out}{err}");
    let (ok, out, err) = gw.cli(&["secrets", "list"]);
    assert!(ok.success(), "{err}");
    assert!(out.contains("provider_key"), "{out}");
    assert!(!out.contains(value), "list shows names only");
    let (ok, out, err) = gw.cli(&["config", "check"]);
    assert!(ok.success(), "{out}{err}");
    assert!(!out.contains(value) && !err.contains(value), "{out}{err}");

    gw.restart().await;
    say(&gw, "alice", "hi").await;
    let seen = model.seen();
    assert_eq!(
        seen.last().unwrap().authorization.as_deref(),
        Some(format!("Bearer {value}").as_str()),
        "the provider got the secret's value"
    );
    let (_, status) = gw.get("/api/status").await;
    assert!(!status.to_string().contains(value));
    assert!(gw.terminate().await.success());
    assert!(!gw.log().contains(value));
    assert_eq!(
        holding(&gw.data_dir, value),
        Vec::<String>::new(),
        "stored encrypted"
    );

    let (ok, _, err) = gw.cli(&["secrets", "remove", "nope"]);
    assert!(!ok.success());
    assert!(err.contains("no secret named `nope`"), "{err}");
}
