//! Live config reload through the real binary: `switchboard config reload`
//! starts an added Telegram account, stops a removed one, restarts only a
//! changed one, while a web chat turn in flight completes and nothing is
//! lost or doubled; a bad file changes nothing and names the key; SIGHUP
//! applies an agent's new model to the next turn.

use std::time::Duration;

use serde_json::json;
use switchboard_tests::fake_openai::{Behavior, FakeOpenAi, echo_answer};
use switchboard_tests::fake_telegram::{FakeTelegram, TOKEN};
use switchboard_tests::gateway::{Gateway, TOKEN as CONTROL_TOKEN, config, free_port};

const WAIT: Duration = Duration::from_secs(20);

/// `[channels.telegram.accounts.<name>]` on the fake at `api`, open to
/// everyone; `extra` is appended.
fn account(name: &str, api: &str, extra: &str) -> String {
    let interval = if extra.contains("edit_interval_ms") {
        ""
    } else {
        "edit_interval_ms = 100"
    };
    format!(
        r#"
[channels.telegram.accounts.{name}]
token = "{TOKEN}"
api_url = "{api}"
dm_policy = "open"
{interval}
poll_timeout_secs = 1
watchdog_secs = 2
{extra}
"#
    )
}

fn reload(gw: &Gateway) -> String {
    let (status, out, err) = gw.cli(&["config", "reload"]);
    assert!(status.success(), "reload failed: {out}{err}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_starts_stops_and_restarts_only_the_accounts_that_changed() {
    let model = FakeOpenAi::start().await;
    let (a, b, c, d) = (
        FakeTelegram::start().await,
        FakeTelegram::start().await,
        FakeTelegram::start().await,
        FakeTelegram::start().await,
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let before = format!(
        "{}{}{}",
        account("a", &a.url(), ""),
        account("b", &b.url(), ""),
        account("c", &c.url(), "")
    );
    let gw = Gateway::start(dir.path(), &config(port, &model.base_url(), &before)).await;
    for (fake, chat) in [(&a, 1), (&b, 2), (&c, 3)] {
        fake.dm(chat, "Ada", "first");
        fake.answered(chat, &echo_answer("first"), WAIT).await;
    }
    let (_, status) = gw.get("/api/status").await;
    let c_since = status["components"]["channel:telegram/c"]["since_ms"].clone();
    assert!(c_since.is_i64(), "{status}");

    // A web chat turn and a turn of account b are running.
    model.set(Behavior::Hold);
    let chat = tokio::spawn(
        reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(CONTROL_TOKEN)
            .json(&json!({ "model": "main", "user": "wes", "messages": [{ "role": "user", "content": "carry on" }] }))
            .send(),
    );
    model.next_request().await;
    b.dm(2, "Bea", "during the reload");
    model.next_request().await;

    // a removed, b changed, c as it was, d added.
    let after = format!(
        "{}{}{}",
        account("b", &b.url(), "edit_interval_ms = 200"),
        account("c", &c.url(), ""),
        account("d", &d.url(), "")
    );
    gw.rewrite_config(&config(port, &model.base_url(), &after));
    let out = reload(&gw);
    assert!(out.contains("Started: telegram/d."), "{out}");
    assert!(out.contains("Stopped: telegram/a."), "{out}");
    assert!(out.contains("Restarted: telegram/b."), "{out}");
    assert!(
        !out.contains("telegram/c"),
        "an unchanged account was touched: {out}"
    );
    assert!(!out.contains("restart of the gateway"), "{out}");
    // The removed account's listener has ended: it asks for nothing more.
    let polls = a.calls_of("getUpdates").len();

    model.release();
    let answered = chat.await.unwrap().unwrap();
    assert_eq!(answered.status(), 200);
    let body: serde_json::Value = answered.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        echo_answer("carry on")
    );
    b.answered(2, &echo_answer("during the reload"), WAIT).await;

    a.dm(1, "Ada", "anyone there?");
    b.dm(2, "Bea", "after the reload");
    d.dm(4, "Dan", "hello d");
    c.dm(3, "Cy", "still here");
    d.answered(4, &echo_answer("hello d"), WAIT).await;
    c.answered(3, &echo_answer("still here"), WAIT).await;
    let msgs = b.answered(2, &echo_answer("after the reload"), WAIT).await;
    let texts: Vec<&str> = msgs.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            echo_answer("first"),
            echo_answer("during the reload"),
            echo_answer("after the reload")
        ],
        "each message of the restarted account answered once"
    );
    assert_eq!(
        a.calls_of("getUpdates").len(),
        polls,
        "the removed account still polls"
    );
    assert_eq!(a.chat(1).len(), 1, "the removed account answered");

    let (_, status) = gw.get("/api/status").await;
    let components = &status["components"];
    assert!(components.get("channel:telegram/a").is_none(), "{status}");
    assert_eq!(components["channel:telegram/d"]["state"], "running");
    assert_eq!(
        components["channel:telegram/c"]["since_ms"], c_since,
        "the unchanged account's listener was restarted"
    );
    let (_, audit, _) = gw.cli(&["audit", "list"]);
    assert!(audit.contains("config.reloaded"), "{audit}");
}

#[tokio::test]
async fn a_bad_reload_changes_nothing_and_names_the_key() {
    let model = FakeOpenAi::start().await;
    let tg = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let good = config(port, &model.base_url(), &account("a", &tg.url(), ""));
    let gw = Gateway::start(dir.path(), &good).await;

    // Without the control token, a reload is refused and nothing starts.
    gw.rewrite_config(&format!("{good}{}", account("b", &tg.url(), "")));
    let refused = reqwest::Client::new()
        .post(format!("{}/api/config/reload", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let (_, status) = gw.get("/api/status").await;
    assert!(
        status["components"].get("channel:telegram/b").is_none(),
        "an unauthenticated reload applied: {status}"
    );

    // Not valid: a key that does not exist.
    let typo = config(
        port,
        &model.base_url(),
        &account("a", &tg.url(), "dm_polcy = \"open\""),
    );
    gw.rewrite_config(&typo);
    let (status, out, err) = gw.cli(&["config", "reload"]);
    assert!(!status.success(), "{out}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert!(err.contains("dm_polcy"), "the key is not named: {err}");

    // Not TOML: a token's line cut short. What is wrong is said without
    // quoting the line, which holds the token.
    gw.rewrite_config(&good.replace(
        &format!("token = \"{TOKEN}\""),
        &format!("token = \"{TOKEN}"),
    ));
    let (status, out, err) = gw.cli(&["config", "reload"]);
    assert!(!status.success(), "{out}");
    assert!(
        err.contains("not valid TOML") && err.contains("line"),
        "{err}"
    );
    assert!(
        !err.contains(TOKEN) && !gw.log().contains(TOKEN),
        "the token was shown: {err}"
    );

    // Valid, but what it names is missing: the prompt file.
    let missing = config(
        port,
        &model.base_url(),
        &format!(
            "system_prompt_file = \"no-such-prompt.md\"\n{}",
            account("b", &tg.url(), "")
        ),
    )
    .replace("system_prompt = \"You are the test assistant.\"\n", "");
    gw.rewrite_config(&missing);
    let (status, _, err) = gw.cli(&["config", "reload"]);
    assert!(!status.success());
    assert!(
        err.contains("agents.main.system_prompt_file"),
        "the key is not named: {err}"
    );

    // Everything is as it was: the old account answers with the old
    // prompt, and the account of the refused file did not start.
    tg.dm(1, "Ada", "still fine?");
    tg.answered(1, &echo_answer("still fine?"), WAIT).await;
    let system = model.seen().last().unwrap().body["messages"][0]["content"].clone();
    assert_eq!(system, "You are the test assistant.");
    let (_, status) = gw.get("/api/status").await;
    assert!(
        status["components"].get("channel:telegram/b").is_none(),
        "{status}"
    );
}

#[tokio::test]
async fn sighup_gives_the_next_turn_the_agents_new_model() {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let gw = Gateway::start(dir.path(), &config(port, &model.base_url(), "")).await;
    let (status, _) = gw.chat("ida", "one").await;
    assert_eq!(status, 200);
    assert_eq!(model.seen().last().unwrap().body["model"], "fake-model");

    gw.rewrite_config(&config(
        port,
        &model.base_url(),
        "model = \"bigger-model\"\n[gateway.limits]\nmax_connections = 77\n",
    ));
    gw.signal("HUP");
    let line = gw.log_until("config reloaded", WAIT).await;
    assert!(line.contains("agents"), "{line}");
    assert!(
        line.contains("gateway.limits.max_connections"),
        "what needs a restart is not named: {line}"
    );
    let (status, _) = gw.chat("ida", "two").await;
    assert_eq!(status, 200);
    assert_eq!(model.seen().last().unwrap().body["model"], "bigger-model");
    // Reloaded again with nothing new, what still waits is named again.
    let (status, out, err) = gw.cli(&["config", "reload"]);
    assert!(status.success(), "{err}");
    assert!(out.contains("gateway.limits.max_connections"), "{out}");
}
