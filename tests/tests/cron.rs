//! Scheduled jobs and inbound webhooks through the real binary, against the
//! fake Telegram Bot API and the fake model: a job delivers its answer to a
//! chat; slots missed while the gateway was down are caught up once and
//! never again; a one-shot runs once; a webhook with a good and a bad
//! secret, signed, and delivered twice.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_tests::fake_openai::{FakeOpenAi, echo_answer};
use switchboard_tests::fake_telegram::{FakeTelegram, TOKEN};
use switchboard_tests::gateway::{Gateway, config, free_port};

const WAIT: Duration = Duration::from_secs(30);
const CHAT: i64 = 4242;

fn telegram(api: &str) -> String {
    format!(
        r#"
[channels.telegram.accounts.main]
token = "{TOKEN}"
api_url = "{api}"
edit_interval_ms = 100
poll_timeout_secs = 1
"#
    )
}

/// `cron show NAME` as JSON, once `check` holds (within [`WAIT`]).
async fn show_until(gw: &Gateway, name: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, v) = gw.get(&format!("/api/cron/{name}?history=100")).await;
        assert_eq!(status, 200, "{v}");
        if check(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn runs(v: &Value) -> Vec<Value> {
    v["runs"].as_array().cloned().unwrap_or_default()
}

fn count(v: &Value, status: &str) -> usize {
    runs(v).iter().filter(|r| r["status"] == status).count()
}

#[tokio::test]
async fn a_job_every_two_seconds_delivers_the_answer_to_the_chat() {
    let model = FakeOpenAi::start().await;
    let tg = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}\n[cron.jobs.tick]\nevery = \"2s\"\nmessage = \"Give me the briefing.\"\ndeliver = \"telegram:main:{CHAT}\"\n",
        telegram(&tg.url())
    );
    let gw = Gateway::start(dir.path(), &config(free_port(), &model.base_url(), &extra)).await;
    tg.answered(CHAT, &echo_answer("Give me the briefing."), WAIT)
        .await;
    let sent = tg.calls_of("sendMessage");
    assert!(
        sent.iter()
            .all(|c| c.params.get("reply_to_message_id").is_none()
                && c.params.get("reply_parameters").is_none()),
        "a new message, not a reply: {sent:?}"
    );
    let v = show_until(&gw, "tick", "a run recorded ok", |v| count(v, "ok") >= 1).await;
    assert_eq!(v["job"]["source"], "config");
    assert_eq!(v["upcoming"].as_array().unwrap().len(), 5, "{v}");
    let (ok, out, err) = gw.cli(&["cron", "list"]);
    assert!(ok.success(), "{err}");
    assert!(out.contains("tick") && out.contains("every 2s"), "{out}");
    let (_, status) = gw.get("/api/status").await;
    let cron = &status["components"]["cron"];
    assert_eq!(cron["state"], "running", "{status}");
    assert!(
        cron["detail"]
            .as_str()
            .unwrap_or("")
            .contains("next run: tick"),
        "{cron}"
    );
    // Pausing stops it: after a tick has passed, no new run starts.
    let (ok, _, err) = gw.cli(&["cron", "pause", "tick"]);
    assert!(ok.success(), "{err}");
    let paused = show_until(&gw, "tick", "paused", |v| v["job"]["paused"] == true).await;
    let before = runs(&paused).len();
    let (ok, _, err) = gw.cli(&["cron", "run", "tick"]);
    assert!(ok.success(), "{err}");
    let after = show_until(&gw, "tick", "the run by hand", |v| runs(v).len() > before).await;
    assert_eq!(
        runs(&after)[0]["reason"]
            .as_str()
            .map(|r| r.contains("operator") || r.contains("answered")),
        Some(true),
        "{after}"
    );
}

#[tokio::test]
async fn slots_missed_while_stopped_are_caught_up_once_and_never_again() {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = "[cron.jobs.beat]\nevery = \"2s\"\nmessage = \"beat\"\nmisfire = \"once\"\n";
    let mut gw = Gateway::start(dir.path(), &config(free_port(), &model.base_url(), extra)).await;
    show_until(&gw, "beat", "a first run", |v| count(v, "ok") >= 1).await;
    assert!(gw.terminate().await.success());
    let stopped = chrono_ms();
    // Two slots or more pass while it is down: real time must pass.
    while chrono_ms() < stopped + 4_500 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let restarted = chrono_ms();
    gw.restart().await;
    let v = show_until(&gw, "beat", "the catch-up", |v| {
        runs(v).iter().any(|r| {
            r["reason"]
                .as_str()
                .is_some_and(|s| s.contains("caught up once"))
        }) && runs(v).iter().any(|r| {
            let slot = r["slot"].as_i64().unwrap();
            slot > stopped && slot < restarted && (r["status"] == "ok" || r["status"] == "running")
        })
    })
    .await;
    let all = runs(&v);
    let down: Vec<&Value> = all
        .iter()
        .filter(|r| {
            let slot = r["slot"].as_i64().unwrap();
            slot > stopped && slot < restarted
        })
        .collect();
    let ran = down.iter().filter(|r| r["status"] != "missed").count();
    assert_eq!(ran, 1, "exactly one catch-up run: {down:#?}");
    assert!(
        down.iter().any(|r| r["status"] == "missed"),
        "the others are recorded missed: {down:#?}"
    );
    // A second restart does not run any of those slots again.
    show_until(&gw, "beat", "the catch-up finished", |v| {
        runs(v).iter().all(|r| r["status"] != "running")
    })
    .await;
    assert!(gw.terminate().await.success());
    let second = chrono_ms();
    gw.restart().await;
    let again = show_until(&gw, "beat", "a run after the second start", |v| {
        runs(v)
            .iter()
            .any(|r| r["slot"].as_i64().unwrap() > second && r["status"] == "ok")
    })
    .await;
    let ran_again = runs(&again)
        .iter()
        .filter(|r| {
            let slot = r["slot"].as_i64().unwrap();
            slot > stopped && slot < restarted && r["status"] != "missed"
        })
        .count();
    assert_eq!(ran_again, 1, "the caught-up slot is not run twice");
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn a_one_shot_runs_once() {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Built first: a slot before the job was first seen does not count.
    switchboard_tests::gateway::binary();
    let at = chrono::Utc::now() + chrono::Duration::seconds(4);
    let extra = format!(
        "[cron.jobs.once]\nat = \"{}\"\nmessage = \"remind me of the dentist\"\n",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let gw = Gateway::start(dir.path(), &config(free_port(), &model.base_url(), &extra)).await;
    let v = show_until(&gw, "once", "the one run", |v| count(v, "ok") == 1).await;
    assert_eq!(runs(&v).len(), 1, "{v}");
    assert!(
        v["upcoming"].as_array().unwrap().is_empty(),
        "no more slots: {v}"
    );
    // A sentinel: a job run by hand afterwards is its only other run.
    let (ok, _, err) = gw.cli(&["cron", "run", "once"]);
    assert!(ok.success(), "{err}");
    let v = show_until(&gw, "once", "the sentinel run", |v| count(v, "ok") == 2).await;
    assert_eq!(runs(&v).len(), 2, "{v}");
    let asked = model
        .seen()
        .iter()
        .filter(|s| {
            s.messages()
                .iter()
                .any(|(r, c)| r == "user" && c == "remind me of the dentist")
        })
        .count();
    assert!(asked >= 2, "{asked}");
}

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit as _, Mac as _};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

#[tokio::test]
async fn a_webhook_starts_a_turn_once_and_only_with_its_secret() {
    let model = FakeOpenAi::start().await;
    let tg = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = "hook-secret-0123456789";
    let extra = format!(
        "{}\n[hooks.build]\nsecret = \"{secret}\"\nmessage = \"Build {{{{status}}}} for {{{{repo.name}}}}\"\ndeliver = \"telegram:main:{CHAT}\"\n",
        telegram(&tg.url())
    );
    let gw = Gateway::start(dir.path(), &config(free_port(), &model.base_url(), &extra)).await;
    let url = format!("{}/hooks/custom/build", gw.url);
    let http = reqwest::Client::new();
    let body = json!({ "status": "failed", "repo": { "name": "api" } });

    let wrong = http
        .post(&url)
        .bearer_auth("not-the-secret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let unsigned = http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let bad_sig = http
        .post(&url)
        .header(
            "X-Signature-256",
            sign("other", body.to_string().as_bytes()),
        )
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(bad_sig.status(), 401);

    let good = http
        .post(&url)
        .bearer_auth(secret)
        .header("X-Delivery-Id", "d-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 202);
    let v: Value = good.json().await.unwrap();
    assert_eq!(v["run_id"], "hook:build:d-1");
    assert_eq!(v["duplicate"], false);
    tg.answered(CHAT, &echo_answer("Build failed for api"), WAIT)
        .await;

    // The same delivery again: accepted, not run.
    let again = http
        .post(&url)
        .bearer_auth(secret)
        .header("X-Delivery-Id", "d-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.json::<Value>().await.unwrap()["duplicate"], true);
    // A signed sentinel delivery: once it is answered, the model has seen
    // the first message once and none of the refused ones.
    let sentinel = json!({ "status": "fixed", "repo": { "name": "api" } });
    let signed = http
        .post(&url)
        .header(
            "X-Signature-256",
            sign(secret, sentinel.to_string().as_bytes()),
        )
        .header("X-Delivery-Id", "d-2")
        .header("content-type", "application/json")
        .body(sentinel.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 202);
    tg.answered(CHAT, &echo_answer("Build fixed for api"), WAIT)
        .await;
    let asked = |text: &str| {
        model
            .seen()
            .iter()
            .filter(|s| {
                s.messages().last().is_some_and(|(r, c)| {
                    r == "user" && switchboard_tests::fake_openai::said(c) == text
                })
            })
            .count()
    };
    assert_eq!(asked("Build failed for api"), 1, "run once");
    // Too big a body is refused before anything else.
    let big = "x".repeat(70_000);
    let huge = http
        .post(&url)
        .bearer_auth(secret)
        .json(&json!({ "status": big }))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    let unknown = http
        .post(format!("{}/hooks/custom/nope", gw.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
}

#[tokio::test]
async fn the_agent_schedules_a_job_only_when_allowed_and_approved() {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = "[agents.main.tools]\nallow = [\"schedule\"]\n\n[cron]\nagent_jobs = true\nagent_jobs_per_hour = 1\n";
    let gw = Gateway::start(dir.path(), &config(free_port(), &model.base_url(), extra)).await;
    let ask = |text: &'static str| {
        let (http, url) = (gw.http.clone(), gw.url.clone());
        tokio::spawn(async move {
            http.post(format!("{url}/v1/chat/completions"))
                .bearer_auth(switchboard_tests::gateway::TOKEN)
                .json(&json!({ "model": "main", "user": "amy", "messages": [{ "role": "user", "content": text }] }))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    let approve = || async {
        let deadline = Instant::now() + WAIT;
        loop {
            let (_, v) = gw.get("/api/approvals?pending=true").await;
            if let Some(r) = v["approvals"]
                .as_array()
                .and_then(|a| a.iter().find(|r| r["status"] == "pending"))
            {
                assert_eq!(r["tool"], "schedule", "{r}");
                let id = r["id"].as_str().unwrap().to_string();
                let (ok, out, err) = gw.cli(&["approvals", "approve", &id]);
                assert!(ok.success(), "{out}{err}");
                return;
            }
            assert!(Instant::now() < deadline, "no approval was asked for: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let reply = ask("use tool schedule {\"message\": \"ping later\", \"every\": \"2s\"}");
    approve().await;
    let text = reply.await.unwrap()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(text.contains("scheduled as `agent-"), "{text}");
    let (_, v) = gw.get("/api/cron").await;
    let job = v["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["source"] == "runtime")
        .cloned()
        .expect("the agent's job");
    assert_eq!(job["when"], "every 2s");
    let name = job["name"].as_str().unwrap().to_string();
    show_until(&gw, &name, "the agent's job running", |v| {
        count(v, "ok") >= 1
    })
    .await;
    // Past its hourly limit the agent is told so.
    let reply = ask("use tool schedule {\"message\": \"again\", \"every\": \"1h\"}");
    approve().await;
    let text = reply.await.unwrap()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(text.contains("at most 1 jobs an hour"), "{text}");
    // And the operator removes it.
    let (ok, out, err) = gw.cli(&["cron", "remove", &name]);
    assert!(ok.success(), "{out}{err}");
}

#[tokio::test]
async fn with_misfire_all_every_missed_slot_is_run_one_after_another() {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = "[cron.jobs.all]\nevery = \"2s\"\nmessage = \"catch up\"\nmisfire = \"all\"\nmax_catch_up = 5\n";
    let mut gw = Gateway::start(dir.path(), &config(free_port(), &model.base_url(), extra)).await;
    show_until(&gw, "all", "a first run", |v| count(v, "ok") >= 1).await;
    assert!(gw.terminate().await.success());
    let stopped = chrono_ms();
    // Two slots or more pass while it is down: real time must pass.
    while chrono_ms() < stopped + 4_500 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let restarted = chrono_ms();
    gw.restart().await;
    let in_downtime = |v: &Value| {
        runs(v)
            .into_iter()
            .filter(|r| {
                let slot = r["slot"].as_i64().unwrap();
                slot > stopped && slot < restarted
            })
            .collect::<Vec<_>>()
    };
    let v = show_until(&gw, "all", "every missed slot run", |v| {
        let down = in_downtime(v);
        down.len() >= 2 && down.iter().all(|r| r["status"] == "ok")
    })
    .await;
    assert!(
        in_downtime(&v).iter().all(|r| r["status"] != "skipped"),
        "none skipped as still running: {v:#}"
    );
}
