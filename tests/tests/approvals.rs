//! Tool calls that wait for the operator: approved from the CLI, denied from
//! the API, and denied by themselves when nobody answers; in a Telegram
//! group decided only by a named approver, never by the member who caused
//! the call, and announced without its arguments; and cancelled with their
//! turn, so a late approval is refused and nothing runs.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tests::fake_openai::FakeOpenAi;
use switchboard_tests::fake_telegram::{self, FakeTelegram};
use switchboard_tests::gateway::{Gateway, TOKEN, config, free_port, urlencode};

const GUARDED: &str = r#"
[agents.guarded]
provider = "fake"

[agents.guarded.tools]
profile = "minimal"

[agents.guarded.approvals]
mode = "always"
tools = ["session_status"]
timeout_secs = 2
"#;

fn ask(gw: &Gateway, user: &str) -> tokio::task::JoinHandle<Value> {
    let request = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(TOKEN)
        .json(&json!({ "model": "guarded", "user": user, "messages": [{ "role": "user", "content": "use tool session_status" }] }));
    tokio::spawn(async move { request.send().await.unwrap().json::<Value>().await.unwrap() })
}

fn answer(v: &Value) -> String {
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn approve_from_the_cli_deny_from_the_api_and_time_out() {
    let fake = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(free_port(), &fake.base_url(), GUARDED)).await;

    // Approved from the CLI: the tool runs and the model gets its result.
    let reply = ask(&gw, "amy");
    let req = gw.pending_approval().await;
    assert_eq!(req["tool"], "session_status");
    assert_eq!(req["session_key"], "agent:guarded:webchat:dm:amy");
    let id = req["id"].as_str().unwrap().to_string();
    let (status, out, err) = gw.cli(&["approvals", "list"]);
    assert!(status.success() && out.contains(&id), "{out}{err}");
    let (status, out, err) = gw.cli(&["approvals", "approve", &id]);
    assert!(status.success(), "{err}");
    assert!(out.contains("Approved"), "{out}");
    let text = answer(&reply.await.unwrap());
    assert!(
        text.contains("agent:guarded:webchat:dm:amy"),
        "the tool ran: {text}"
    );

    // Denied from the API: the model is told, nothing ran.
    let reply = ask(&gw, "ben");
    let id = gw.pending_approval().await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, body) = gw
        .post_json(&format!("/api/approvals/{id}/deny"), &json!({}), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    let text = answer(&reply.await.unwrap());
    assert!(
        text.contains("needs the operator's approval") && text.contains("api denied it"),
        "{text}"
    );
    let (status, _, body) = gw
        .post_json(&format!("/api/approvals/{id}/approve"), &json!({}), &[])
        .await;
    assert_eq!(status, 409, "decided once: {body}");
    assert!(body.contains("no longer waiting"), "{body}");
    let (status, _, body) = gw
        .post_json("/api/approvals/nosuchrequest000/approve", &json!({}), &[])
        .await;
    assert_eq!(status, 404, "{body}");

    // Nobody answers: denied after the timeout, recorded as such.
    let reply = ask(&gw, "cal");
    let id = gw.pending_approval().await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let text = answer(&reply.await.unwrap());
    assert!(text.contains("nobody answered"), "{text}");
    let (_, all) = gw.get("/api/approvals?all=true").await;
    let record = all["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(record["status"], "expired");
    assert_eq!(record["decided_by"], "timeout");
    let by: Vec<&str> = all["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["decided_by"].as_str())
        .collect();
    assert!(
        by.contains(&"cli") && by.contains(&"api"),
        "every decision is stored with who made it: {by:?}"
    );
}

#[tokio::test]
async fn approve_in_the_conversation_it_came_from_only() {
    let fake = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = GUARDED.replace("timeout_secs = 2", "timeout_secs = 60");
    let gw = Gateway::start(dir.path(), &config(free_port(), &fake.base_url(), &extra)).await;
    let reply = ask(&gw, "dan");
    let id = gw.pending_approval().await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let say = |user: &str, text: String| json!({ "model": "guarded", "user": user, "messages": [{ "role": "user", "content": text }] });

    // Another conversation cannot decide it.
    let (status, _, body) = gw
        .post_json(
            "/v1/chat/completions",
            &say("eve", format!("/approve {id}")),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("cannot decide") && body.contains("only the person who asked"),
        "{body}"
    );
    let (_, waiting) = gw.get("/api/approvals").await;
    assert_eq!(waiting["approvals"][0]["status"], "pending", "{waiting}");

    // The conversation it came from can, while its turn waits.
    let (status, _, body) = gw
        .post_json(
            "/v1/chat/completions",
            &say("dan", format!("/approve {}", id.to_uppercase())),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Approved"), "{body}");
    let text = answer(&reply.await.unwrap());
    assert!(text.contains("agent:guarded:webchat:dm:dan"), "{text}");
    let (_, all) = gw.get("/api/approvals?all=true").await;
    assert_eq!(all["approvals"][0]["decided_by"], "chat:webchat:dan");
}

const WAIT: Duration = Duration::from_secs(20);

/// A gateway with a Telegram account on `tg` whose `main` agent gates
/// `session_status`; `approvals` is appended to its approvals table.
async fn telegram_gateway(
    tg: &FakeTelegram,
    model: &FakeOpenAi,
    approvals: &str,
) -> (Gateway, tempfile::TempDir) {
    let extra = format!(
        r#"
[channels.telegram.accounts.main]
token = "{token}"
api_url = "{api}"
edit_interval_ms = 100
poll_timeout_secs = 1
dm_policy = "open"
group_policy = "open"
require_mention = false

[agents.main.tools]
profile = "minimal"

[agents.main.approvals]
mode = "always"
tools = ["session_status"]
timeout_secs = 120
{approvals}
"#,
        token = fake_telegram::TOKEN,
        api = tg.url(),
    );
    // One run at a time: a turn waiting for a person must not hold it.
    let text = config(free_port(), &model.base_url(), &extra).replacen(
        "shutdown_grace_secs = 20\n",
        "shutdown_grace_secs = 20\nmax_concurrent_runs = 1\n",
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &text).await;
    (gw, dir)
}

/// The first message of `chat` containing `needle`, once there is one.
async fn shown(tg: &FakeTelegram, chat: i64, needle: &str) -> String {
    tg.wait(WAIT, &format!("`{needle}` in chat {chat}"), |tg| {
        tg.chat(chat)
            .into_iter()
            .find(|m| m.text.contains(needle))
            .map(|m| m.text)
    })
    .await
}

/// The request id an announcement names (`/approve <id>`).
fn announced_id(text: &str) -> String {
    text.split("/approve ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `/approve <id>` in: {text}"))
        .trim_end_matches(['.', ','])
        .to_string()
}

async fn record(gw: &Gateway, id: &str) -> Value {
    let (_, all) = gw.get("/api/approvals?all=true").await;
    all["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("no request {id}: {all}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_group_only_a_named_approver_decides_and_nobody_sees_the_arguments() {
    let model = FakeOpenAi::start().await;
    let tg = FakeTelegram::start().await;
    let (gw, _dir) = telegram_gateway(&tg, &model, r#"approvers = ["telegram:99"]"#).await;
    const GROUP: i64 = -1001;

    // Bob makes the model call a gated tool, with arguments only he and
    // the operator should see.
    tg.group(
        GROUP,
        7,
        "Bob",
        r#"use tool session_status {"note": "hunter2-secret"}"#,
        json!({}),
    );
    let announcement = shown(&tg, GROUP, "waiting for an approver").await;
    assert!(
        !announcement.contains("hunter2") && !announcement.contains("note"),
        "the group was shown the arguments: {announcement}"
    );
    let id = announced_id(&announcement);
    assert!(id.len() >= 16, "a guessable id: {id}");
    let r = record(&gw, &id).await;
    assert_eq!(r["status"], "pending");
    assert!(
        r["arguments"].as_str().unwrap().contains("hunter2-secret"),
        "the operator sees them: {r}"
    );

    // Bob approves his own request: refused, told who may, nothing runs.
    tg.group(GROUP, 7, "Bob", &format!("/approve {id}"), json!({}));
    let refusal = shown(&tg, GROUP, "cannot decide").await;
    assert!(
        refusal.contains("approver") && refusal.contains("switchboard approvals approve"),
        "{refusal}"
    );
    assert_eq!(
        record(&gw, &id).await["status"],
        "pending",
        "Bob decided it"
    );
    assert_eq!(model.seen().len(), 1, "the tool ran: {:?}", model.seen());

    // Cy, a named approver, approves in the group: the tool runs.
    tg.group(GROUP, 99, "Cy", &format!("/approve {id}"), json!({}));
    shown(&tg, GROUP, "Approved").await;
    let answer = shown(&tg, GROUP, "tool said:").await;
    assert!(
        answer.contains("agent:main:telegram:group:-1001"),
        "the tool ran in the group's session: {answer}"
    );
    let r = record(&gw, &id).await;
    assert_eq!(r["status"], "approved");
    assert_eq!(r["decided_by"], "chat:telegram:99");
    for m in tg.chat(GROUP) {
        assert!(
            !m.text.contains("hunter2"),
            "shown to the group: {}",
            m.text
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_cancelled_while_waiting_cancels_its_request_and_frees_its_run_slot() {
    let model = FakeOpenAi::start().await;
    let tg = FakeTelegram::start().await;
    let (gw, _dir) = telegram_gateway(&tg, &model, "").await;

    tg.dm(42, "Ada", "use tool session_status");
    let announcement = shown(&tg, 42, "Approval needed").await;
    assert!(
        announcement.contains("Reply /approve"),
        "no approvers named: the asker decides in their DM: {announcement}"
    );
    let id = announced_id(&announcement);

    // The waiting turn holds none of the (one) run slots: others are answered.
    tg.dm(43, "Ben", "hello meanwhile");
    shown(&tg, 43, "echo: hello meanwhile").await;

    let key = urlencode("agent:main:telegram:dm:42");
    let (status, _, body) = gw
        .post_json(&format!("/api/sessions/{key}/cancel"), &json!({}), &[])
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("true"), "no turn was running: {body}");
    shown(&tg, 42, "stopped before finishing").await;

    // A late approval, from the API, the CLI or the chat: nothing waits.
    let (status, _, body) = gw
        .post_json(&format!("/api/approvals/{id}/approve"), &json!({}), &[])
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("no longer waiting"), "{body}");
    let (ok, out, err) = gw.cli(&["approvals", "approve", &id]);
    assert!(!ok.success(), "{out}");
    assert!(err.contains("no longer waiting"), "{err}");
    tg.dm(42, "Ada", &format!("/approve {id}"));
    let told = shown(&tg, 42, "no longer waiting").await;
    assert!(told.contains("its turn ended"), "{told}");

    let r = record(&gw, &id).await;
    assert_eq!(r["status"], "cancelled", "{r}");
    let asked: Vec<_> = model
        .seen()
        .into_iter()
        .filter(|s| s.messages().iter().any(|(role, _)| role == "tool"))
        .collect();
    assert!(asked.is_empty(), "the tool ran after all: {asked:?}");
}
