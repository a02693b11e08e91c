//! `switchboard init` through the real binary: answers typed at its
//! prompts in a pseudo-terminal against the fake OpenAI and Telegram
//! servers (a refused key and a token of the wrong kind are caught and
//! asked again), then `config check` accepts the file and `serve` on it
//! answers a Telegram DM with the stored key; scripted with flags, a bad
//! key writes nothing, and Ctrl-C at a prompt leaves the file as it was.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rexpect::process::WaitStatus;
use rexpect::session::PtySession;
use switchboard_tests::fake_openai::{FakeOpenAi, echo_answer};
use switchboard_tests::fake_telegram::{FakeTelegram, TOKEN};
use switchboard_tests::gateway::{self, Gateway, free_port};

const WAIT: Duration = Duration::from_secs(20);
const GOOD_KEY: &str = "sk-test-good-key-1234567890";

/// A config as a user who chose a port has it before running init.
fn before(port: u16) -> String {
    format!(
        "# my gateway: keep this comment\n[gateway]\nbind = \"127.0.0.1:{port}\"\n\n[gateway.auth]\ntoken = \"{}\"\n",
        gateway::TOKEN
    )
}

fn init_command(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(gateway::binary());
    cmd.arg("--config")
        .arg(dir.join("switchboard.toml"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .arg("init")
        .args(extra)
        .env_remove("SWITCHBOARD_TOKEN")
        .env_remove("SWITCHBOARD_CONFIG");
    cmd
}

/// Type the whole conversation; returns what the terminal showed.
fn converse(p: &mut PtySession, model_url: &str) -> Result<String, rexpect::error::Error> {
    let mut shown = String::new();
    shown += &p.exp_string("Which model provider?")?;
    shown += &p.exp_string("Provider [1]: ")?;
    p.send_line("5")?;
    shown += &p.exp_string("base URL")?;
    p.send_line(model_url)?;
    shown += &p.exp_string("API key (Enter for none): ")?;
    p.send_line("sk-test-wrong-key")?;
    shown += &p.exp_string("refused the key")?;
    shown += &p.exp_string("base URL")?;
    p.send_line(model_url)?;
    shown += &p.exp_string("API key (Enter for none): ")?;
    p.send_line(GOOD_KEY)?;
    shown += &p.exp_string("with 2 model(s)")?;
    shown += &p.exp_string("Model [fake-model]: ")?;
    p.send_line("")?;
    shown += &p.exp_string("Connect a Telegram bot? (y/N): ")?;
    p.send_line("y")?;
    shown += &p.exp_string("Telegram bot token: ")?;
    p.send_line("xoxb-123-456-abcdef")?;
    shown += &p.exp_string("This is a Slack bot token")?;
    shown += &p.exp_string("Telegram bot token: ")?;
    p.send_line(TOKEN)?;
    shown += &p.exp_string("connected to @")?;
    shown += &p.exp_string("Connect a Discord bot? (y/N): ")?;
    p.send_line("n")?;
    shown += &p.exp_string("Connect a Slack app? (y/N): ")?;
    p.send_line("")?;
    shown += &p.exp_eof()?;
    Ok(shown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_at_a_terminal_writes_a_config_that_answers_a_telegram_dm() {
    let model = FakeOpenAi::start().await;
    model.require_key(GOOD_KEY);
    let tg = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let path = dir.path().join("switchboard.toml");
    std::fs::write(&path, before(port)).unwrap();

    let cmd = init_command(dir.path(), &["--telegram-api-url", &tg.url()]);
    let url = model.base_url();
    let (shown, status) = tokio::task::spawn_blocking(move || {
        let mut p = rexpect::session::spawn_command(cmd, Some(30_000)).unwrap();
        let shown = converse(&mut p, &url);
        (shown, p.process.wait().unwrap())
    })
    .await
    .unwrap();
    let shown = shown.unwrap_or_else(|e| panic!("init did not go as expected: {e}"));
    assert!(
        matches!(status, WaitStatus::Exited(_, 0)),
        "{status:?}: {shown}"
    );
    assert!(shown.contains("Wrote"), "{shown}");

    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("# my gateway: keep this comment"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(
        !text.contains(GOOD_KEY) && !text.contains(TOKEN),
        "a secret is in the file: {text}"
    );
    assert!(text.contains("secret:custom_api_key"), "{text}");

    let check = Command::new(gateway::binary())
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["config", "check"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let gw = Gateway::start(dir.path(), &text).await;
    tg.dm(5, "Ann", "hello");
    let code = tg
        .wait(WAIT, "a pairing code", |tg| tg.chat(5).first().cloned())
        .await;
    gw.approve_pairing("telegram", &code.text);
    tg.dm(5, "Ann", "hello from init");
    tg.answered(5, &echo_answer("hello from init"), WAIT).await;
    let seen = model.seen();
    let asked = seen.last().unwrap();
    assert_eq!(asked.body["model"], "fake-model");
    assert_eq!(
        asked.authorization.as_deref(),
        Some(format!("Bearer {GOOD_KEY}").as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_init_writes_nothing_for_a_bad_key_and_a_config_for_a_good_one() {
    let model = FakeOpenAi::start().await;
    model.require_key(GOOD_KEY);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.toml");
    let url = model.base_url();
    let flags = [
        "--non-interactive",
        "--provider",
        "custom",
        "--base-url",
        url.as_str(),
        "--model",
        "fake-model",
        "--api-key-stdin",
    ];
    let run = |key: &str| {
        use std::io::Write as _;
        let mut child = init_command(dir.path(), &flags)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{key}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let bad = run("sk-test-wrong-key");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(err.contains("refused the key"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(!path.exists(), "a config was written for a refused key");

    let good = run(GOOD_KEY);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("model = \"fake-model\""), "{text}");
    assert!(!text.contains(GOOD_KEY), "{text}");
    // Not a model the provider lists: refused, the file kept as it was.
    let flags_other: Vec<&str> = flags
        .iter()
        .map(|f| {
            if *f == "fake-model" {
                "no-such-model"
            } else {
                f
            }
        })
        .collect();
    use std::io::Write as _;
    let mut child = init_command(dir.path(), &flags_other)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{GOOD_KEY}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not offer the model `no-such-model`")
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
}

#[tokio::test]
async fn ctrl_c_at_a_prompt_leaves_the_config_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.toml");
    let port = free_port();
    std::fs::write(&path, before(port)).unwrap();
    let cmd = init_command(dir.path(), &[]);
    let status = tokio::task::spawn_blocking(move || {
        let mut p = rexpect::session::spawn_command(cmd, Some(30_000)).unwrap();
        p.exp_string("Provider [1]: ").unwrap();
        p.send_control('c').unwrap();
        p.process.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(!matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before(port));
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "init left files behind: {left:?}");
}
