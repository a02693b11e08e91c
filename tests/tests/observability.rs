//! Observability through the real binary, as an operator sees it: one
//! inbound message is one trace (`message` with `admit`, `queue`, `turn`
//! and `deliver` under it, a `chat` span per model call and an
//! `execute_tool` span per tool call under `turn`) exported over OTLP/HTTP
//! to a fake collector, with its trace id passed to the model in
//! `traceparent`; `/metrics` counts messages per channel, tokens as the
//! model reported them and each rejection once, keeps its series bounded
//! however many people write, asks for a token, and in OpenMetrics carries
//! exemplars that lead to a received trace; an unreachable collector only
//! degrades the `telemetry` component; JSON logs carry the trace id and
//! never the message's text.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use switchboard_tests::fake_openai::{FakeOpenAi, Seen, echo_answer, tool_answer};
use switchboard_tests::fake_otlp::{FakeOtlp, Span, Trace, unreachable_endpoint};
use switchboard_tests::fake_telegram::{FakeTelegram, TOKEN as BOT_TOKEN};
use switchboard_tests::gateway::{Gateway, TOKEN, config, free_port};
use switchboard_tests::prom::{self, Kind, Scrape};

const WAIT: Duration = Duration::from_secs(30);

const RECEIVED: &str = "switchboard_messages_received_total";
const REJECTED: &str = "switchboard_messages_rejected_total";
const TURNS: &str = "switchboard_turns_total";
const TOKENS: &str = "switchboard_model_tokens_total";

/// The Accept header of a scraper asking for OpenMetrics.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0";

/// A Telegram bot on the fake Bot API; `access` is more lines of its
/// account (`dm_policy`, `allow_from`).
fn telegram(api: &str, access: &str) -> String {
    format!(
        r#"
[channels.telegram.accounts.main]
token = "{BOT_TOKEN}"
api_url = "{api}"
edit_interval_ms = 100
poll_timeout_secs = 1
{access}
"#
    )
}

/// Traces exported to `endpoint`.
fn otlp_to(endpoint: &str) -> String {
    format!("\n[observability.otlp]\nendpoint = \"{endpoint}\"\ntimeout_secs = 2\n")
}

/// A gateway (web chat only) with `extra` config.
async fn start_webchat(extra: &str) -> (FakeOpenAi, Gateway, tempfile::TempDir) {
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start(dir.path(), &config(free_port(), &model.base_url(), extra)).await;
    (model, gw, dir)
}

/// A gateway with a Telegram bot whose account has `access`, and `extra`.
async fn start_telegram(
    access: &str,
    extra: &str,
) -> (FakeOpenAi, FakeTelegram, Gateway, tempfile::TempDir) {
    let model = FakeOpenAi::start().await;
    let tg = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("{}\n{extra}", telegram(&tg.url(), access));
    let gw = Gateway::start(dir.path(), &config(free_port(), &model.base_url(), &extra)).await;
    (model, tg, gw, dir)
}

/// `GET url` with `token` as bearer (none: no `Authorization`) and
/// `accept`; returns status, Content-Type and body.
async fn fetch(url: &str, token: Option<&str>, accept: Option<&str>) -> (u16, String, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (status, ctype, r.text().await.unwrap())
}

/// A plain scrape of `/metrics` at `url` with `token`: 200, the 0.0.4 text
/// format, parsed strictly; and its text.
async fn scrape_at(url: &str, token: &str) -> (Scrape, String) {
    let (status, ctype, body) = fetch(url, Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        ctype.starts_with("text/plain") && ctype.contains("version=0.0.4"),
        "not the Prometheus text format: {ctype}"
    );
    let parsed = prom::parse(&body).unwrap_or_else(|e| panic!("malformed /metrics: {e}\n{body}"));
    (parsed, body)
}

/// [`scrape_at`] the gateway's port with the control token.
async fn scrape(gw: &Gateway) -> Scrape {
    scrape_at(&format!("{}/metrics", gw.url), TOKEN).await.0
}

/// Scrape until `check` holds (within [`WAIT`]). Metrics have no change
/// notification, so this asks again every 50 ms.
async fn scrape_until(gw: &Gateway, what: &str, check: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = scrape(gw).await;
        if check(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {:#?}",
            s.series()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Nothing running and nothing waiting.
fn idle(s: &Scrape) -> bool {
    s.sum("switchboard_runs_active", &[]) == 0.0 && s.sum("switchboard_ingress_pending", &[]) == 0.0
}

/// Turns that ended well.
fn turns_ok(s: &Scrape) -> f64 {
    s.sum(TURNS, &[("outcome", "ok")])
}

/// The usage the fake reported over `seen`: (input, output, cached).
fn reported(seen: &[Seen]) -> (u64, u64, u64) {
    seen.iter().fold((0, 0, 0), |acc, s| {
        let (i, o, c) = s
            .usage
            .unwrap_or_else(|| panic!("the fake reported no usage for {:?}", s.body));
        (acc.0 + i, acc.1 + o, acc.2 + c)
    })
}

/// Whether `t` has every stage, at least `chats` model calls and `tools`
/// tool calls.
fn complete(t: &Trace, chats: usize, tools: usize) -> bool {
    ["admit", "queue", "turn", "deliver"]
        .iter()
        .all(|n| !t.named(n).is_empty())
        && t.starting("chat ").len() >= chats
        && t.starting("execute_tool ").len() >= tools
}

/// Wait for a message's trace where `check` holds; spans come in
/// batches, in any order.
async fn wait_trace(otlp: &FakeOtlp, what: &str, check: impl Fn(&Trace) -> bool) -> Trace {
    otlp.wait_trace(WAIT, what, "message", check).await
}

/// `message` is a root of `channel`/`account` whose children are the four
/// stages, once each; returns `turn`.
fn assert_message_shape<'a>(trace: &'a Trace, channel: &str, account: &str) -> &'a Span {
    let root = &trace.root;
    assert!(root.is_root(), "the message span has a parent: {root:#?}");
    assert_eq!(root.attr_str("channel"), Some(channel), "{root:#?}");
    assert_eq!(root.attr_str("account"), Some(account), "{root:#?}");
    for stage in ["admit", "queue", "turn", "deliver"] {
        let span = trace.one(stage);
        assert_eq!(
            span.parent_span_id, root.span_id,
            "`{stage}` is not a child of `message`: {:#?}",
            trace.spans
        );
    }
    trace.one("turn")
}

/// A model call's span: a child of `turn`, named and described as the
/// GenAI conventions say; returns its (input, output) tokens.
fn chat_tokens(chat: &Span, turn: &Span) -> (i64, i64) {
    assert_eq!(chat.name, "chat fake-model");
    assert_eq!(
        chat.parent_span_id, turn.span_id,
        "not a child of `turn`: {chat:#?}"
    );
    assert_eq!(
        chat.attr_str("gen_ai.operation.name"),
        Some("chat"),
        "{chat:#?}"
    );
    assert_eq!(chat.attr_str("gen_ai.system"), Some("openai"), "{chat:#?}");
    assert_eq!(
        chat.attr_str("gen_ai.request.model"),
        Some("fake-model"),
        "{chat:#?}"
    );
    let input = chat.attr_int("gen_ai.usage.input_tokens");
    let output = chat.attr_int("gen_ai.usage.output_tokens");
    match (input, output) {
        (Some(i), Some(o)) => (i, o),
        _ => panic!("no integer token counts: {chat:#?}"),
    }
}

/// The (trace id, parent span id) of the `traceparent` a model request
/// carried, checked to be W3C's version 00, sampled.
fn traceparent(seen: &Seen) -> (String, String) {
    let tp = seen
        .traceparent
        .as_deref()
        .expect("the model request carried no traceparent");
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    };
    let parts: Vec<&str> = tp.split('-').collect();
    assert!(
        parts.len() == 4
            && parts[0] == "00"
            && hex(parts[1], 32)
            && hex(parts[2], 16)
            && parts[3] == "01",
        "not a W3C traceparent: {tp}"
    );
    (parts[1].to_string(), parts[2].to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_telegram_message_is_one_trace_end_to_end() {
    let otlp = FakeOtlp::start().await;
    let (model, tg, _gw, _dir) =
        start_telegram("dm_policy = \"open\"", &otlp_to(&otlp.base_url())).await;
    let text = "how high is the tide tonight";
    tg.dm(601, "Tess", text);
    tg.answered(601, &echo_answer(text), WAIT).await;

    let trace = wait_trace(&otlp, "the message's whole trace", |t| complete(t, 1, 0)).await;
    let turn = assert_message_shape(&trace, "telegram", "main");
    let chats = trace.starting("chat ");
    assert_eq!(chats.len(), 1, "one model call: {:#?}", trace.spans);
    let seen = model.seen();
    assert_eq!(seen.len(), 1);
    let (input, output, _) = seen[0].usage.expect("the fake reported usage");
    assert_eq!(
        chat_tokens(chats[0], turn),
        (input as i64, output as i64),
        "the span's tokens are not what the model reported"
    );
    let (trace_id, parent) = traceparent(&seen[0]);
    assert_eq!(
        trace_id, trace.root.trace_id,
        "the model was called in another trace"
    );
    assert!(
        trace.spans.iter().any(|s| s.span_id == parent),
        "the traceparent's span {parent} is not one of the trace: {:#?}",
        trace.spans
    );
    assert_eq!(trace.root.service.as_deref(), Some("switchboard"));
    let roots: Vec<Span> = otlp
        .spans()
        .into_iter()
        .filter(|s| s.name == "message")
        .collect();
    assert_eq!(roots.len(), 1, "one message, one trace: {roots:#?}");
    assert!(otlp.rejected().is_empty(), "{:?}", otlp.rejected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_is_a_span_of_its_turn() {
    let otlp = FakeOtlp::start().await;
    let (model, tg, _gw, _dir) =
        start_telegram("dm_policy = \"open\"", &otlp_to(&otlp.base_url())).await;
    tg.dm(602, "Uma", "use tool session_status");

    let trace = wait_trace(&otlp, "the trace of a turn with a tool", |t| {
        complete(t, 2, 1)
    })
    .await;
    let turn = assert_message_shape(&trace, "telegram", "main");
    let tool = trace.one("execute_tool session_status");
    assert_eq!(
        tool.parent_span_id, turn.span_id,
        "not a child of `turn`: {tool:#?}"
    );
    assert_eq!(tool.attr_str("gen_ai.tool.name"), Some("session_status"));
    assert!(
        tool.start_end_ns.0 >= turn.start_end_ns.0 && tool.start_end_ns.1 <= turn.start_end_ns.1,
        "the tool ran outside its turn: {tool:#?} {turn:#?}"
    );
    let seen = model.seen();
    assert_eq!(
        seen.len(),
        2,
        "one call asking for the tool, one with its result"
    );
    let mut from_spans: Vec<(i64, i64)> = trace
        .starting("chat ")
        .into_iter()
        .map(|c| chat_tokens(c, turn))
        .collect();
    let mut from_model: Vec<(i64, i64)> = seen
        .iter()
        .map(|s| {
            let (i, o, _) = s.usage.expect("the fake reported usage");
            (i as i64, o as i64)
        })
        .collect();
    from_spans.sort();
    from_model.sort();
    assert_eq!(
        from_spans, from_model,
        "one chat span per model call, with its tokens"
    );
    for s in &seen {
        assert_eq!(traceparent(s).0, trace.root.trace_id);
    }
    // And the person got the answer built from the tool's result.
    let result = seen[1].messages().last().unwrap().1.clone();
    let want = tool_answer(&result);
    tg.wait(WAIT, "the tool's answer", |tg| {
        tg.chat(602).iter().any(|m| m.text == want).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_per_channel_tokens_and_rejections() {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (model, tg, gw, _dir) = start_telegram(
        "dm_policy = \"pairing\"\nallow_from = [\"501\", \"502\", \"503\", \"504\", \"505\", \"509\"]",
        "",
    )
    .await;
    let asked: Vec<Value> = (0..5)
        .map(|i| tg.dm(501 + i, "Ann", &format!("telegram question {i}")))
        .collect();
    for i in 0..5 {
        tg.answered(
            501 + i,
            &echo_answer(&format!("telegram question {i}")),
            WAIT,
        )
        .await;
    }
    let gw_ref = &gw;
    let web = futures::future::join_all((0..5).map(|i| async move {
        let text = format!("web question {i}");
        let (status, v) = gw_ref.chat(&format!("web-user-{i}"), &text).await;
        (status, v, text)
    }))
    .await;
    for (status, v, text) in web {
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["choices"][0]["message"]["content"], echo_answer(&text));
    }

    let s = scrape_until(&gw, "ten turns ended and nothing running", |s| {
        turns_ok(s) == 10.0 && idle(s)
    })
    .await;
    assert_eq!(
        s.sum(RECEIVED, &[("channel", "telegram"), ("account", "main")]),
        5.0
    );
    assert_eq!(
        s.sum(RECEIVED, &[("channel", "webchat"), ("account", "default")]),
        5.0
    );
    let seen = model.seen();
    assert_eq!(seen.len(), 10);
    let (input, output, cached) = reported(&seen);
    assert!(cached > 0, "the fake reports cached tokens");
    for (kind, want) in [("input", input), ("output", output), ("cached", cached)] {
        let labels = [
            ("provider", "fake"),
            ("model", "fake-model"),
            ("kind", kind),
        ];
        assert_eq!(s.sum(TOKENS, &labels), want as f64, "{kind} tokens");
        assert_eq!(
            s.sum(TOKENS, &[("kind", kind)]),
            want as f64,
            "{kind} tokens"
        );
    }
    assert_eq!(
        s.sum(
            "switchboard_model_requests_total",
            &[
                ("provider", "fake"),
                ("model", "fake-model"),
                ("status", "ok")
            ]
        ),
        10.0
    );
    assert_eq!(s.sum(TURNS, &[("agent", "main"), ("outcome", "ok")]), 10.0);
    assert_eq!(s.sum(TURNS, &[("outcome", "error")]), 0.0);
    for histogram in [
        "switchboard_turn_duration_seconds",
        "switchboard_time_to_first_token_seconds",
    ] {
        assert_eq!(
            s.value(&format!("{histogram}_count"), &[("agent", "main")]),
            Some(10.0),
            "{histogram}"
        );
    }
    let telegram = [("channel", "telegram"), ("account", "main")];
    assert_eq!(s.value("switchboard_channel_up", &telegram), Some(1.0));
    let last = s
        .value(
            "switchboard_channel_last_event_timestamp_seconds",
            &telegram,
        )
        .expect("the last Telegram event's time");
    assert!(
        last >= started - 1.0,
        "last event at {last}, the test began at {started}"
    );
    for (family, kind) in [
        (RECEIVED, Kind::Counter),
        (TURNS, Kind::Counter),
        (TOKENS, Kind::Counter),
        ("switchboard_model_requests_total", Kind::Counter),
        ("switchboard_turn_duration_seconds", Kind::Histogram),
        ("switchboard_time_to_first_token_seconds", Kind::Histogram),
        ("switchboard_sessions_in_memory", Kind::Gauge),
        ("switchboard_runs_active", Kind::Gauge),
        ("switchboard_ingress_pending", Kind::Gauge),
        ("switchboard_channel_up", Kind::Gauge),
        (
            "switchboard_channel_last_event_timestamp_seconds",
            Kind::Gauge,
        ),
        ("switchboard_sandbox_containers", Kind::Gauge),
    ] {
        assert_eq!(
            s.family(family).map(|f| f.kind),
            Some(kind),
            "{family}: {:#?}",
            s.families()
        );
    }

    // A stranger under the pairing policy and a redelivered update: each
    // rejected, and counted, once.
    let rejected =
        |s: &Scrape, reason: &str| s.sum(REJECTED, &[("channel", "telegram"), ("reason", reason)]);
    let (duplicates, pairings) = (rejected(&s, "duplicate"), rejected(&s, "pairing"));
    tg.dm(777, "Stranger", "let me in please");
    tg.wait(WAIT, "the stranger's pairing code", |tg| {
        tg.chat(777).first().cloned()
    })
    .await;
    tg.redeliver(&asked[0]);
    scrape_until(&gw, "the duplicate and the stranger counted", |s| {
        rejected(s, "duplicate") > duplicates && rejected(s, "pairing") > pairings
    })
    .await;
    tg.dm(509, "Sam", "sentinel");
    tg.answered(509, &echo_answer("sentinel"), WAIT).await;
    let s = scrape_until(&gw, "the sentinel's turn", |s| {
        turns_ok(s) == 11.0 && idle(s)
    })
    .await;
    assert_eq!(rejected(&s, "duplicate"), duplicates + 1.0);
    assert_eq!(rejected(&s, "pairing"), pairings + 1.0);
    assert_eq!(
        tg.chat(501).len(),
        1,
        "the redelivered message was answered again"
    );
    assert_eq!(
        model.seen().len(),
        11,
        "a rejected message reached the model"
    );
}

/// Whom [`crowd`] asks as, and what they say (neither may become a label).
const CROWD_USER: &str = "crowd-member-";
const CROWD_WORD: &str = "pelican";

/// Web chat users `ids`, each asking once, 50 at a time; each answered.
async fn crowd(gw: &Gateway, ids: std::ops::Range<usize>) {
    let ids: Vec<usize> = ids.collect();
    for batch in ids.chunks(50) {
        let answers = futures::future::join_all(batch.iter().map(|i| async move {
            let text = format!("a {CROWD_WORD} question number {i}");
            let (status, v) = gw.chat(&format!("{CROWD_USER}{i:04}"), &text).await;
            (status, v, text)
        }))
        .await;
        for (status, v, text) in answers {
            assert_eq!(status, 200, "{v}");
            assert_eq!(v["choices"][0]["message"]["content"], echo_answer(&text));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_stay_bounded_whatever_the_senders() {
    let (model, gw, _dir) = start_webchat("").await;
    crowd(&gw, 0..10).await;
    let few = scrape_until(&gw, "ten turns", |s| turns_ok(s) == 10.0 && idle(s)).await;
    crowd(&gw, 10..1000).await;
    let many = scrape_until(&gw, "a thousand turns", |s| {
        turns_ok(s) == 1000.0 && idle(s)
    })
    .await;
    assert_eq!(model.seen().len(), 1000);
    assert_eq!(many.sum(RECEIVED, &[("channel", "webchat")]), 1000.0);
    let (before, after) = (few.series(), many.series());
    let added: Vec<&String> = after.difference(&before).collect();
    let gone: Vec<&String> = before.difference(&after).collect();
    assert!(
        added.is_empty() && gone.is_empty(),
        "the series changed with the number of senders: added {added:#?}, gone {gone:#?}"
    );
    assert_eq!(few.series_count(), many.series_count());
    for s in many.samples() {
        for (k, v) in &s.labels {
            assert!(
                !v.contains(CROWD_USER) && !v.contains(CROWD_WORD),
                "label {k} of {} names a sender or their words",
                s.series()
            );
        }
    }
}

/// A token Prometheus scrapes with.
const SCRAPE_TOKEN: &str = "scrape-Qm4Vt8Zr2Lx6Np0Kc5Hw9Jb3Fd7Sg1Ay";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_token() {
    // By default: the control token, and nothing else.
    let (_model, gw, _dir) = start_webchat("").await;
    let url = format!("{}/metrics", gw.url);
    assert_eq!(fetch(&url, None, None).await.0, 401);
    assert_eq!(fetch(&url, Some("not-the-token"), None).await.0, 401);
    scrape_at(&url, TOKEN).await;
    drop(gw);

    // A scrape token, and a listener of its own.
    let metrics_port = free_port();
    let (_model, gw, _dir) = start_webchat(&format!(
        "[observability]\nmetrics_token = \"{SCRAPE_TOKEN}\"\nmetrics_bind = \"127.0.0.1:{metrics_port}\"\n"
    ))
    .await;
    let url = format!("{}/metrics", gw.url);
    assert_eq!(fetch(&url, None, None).await.0, 401);
    assert_eq!(fetch(&url, Some("not-the-token"), None).await.0, 401);
    scrape_at(&url, SCRAPE_TOKEN).await;
    scrape_at(&url, TOKEN).await;
    let (status, _, body) =
        fetch(&format!("{}/api/status", gw.url), Some(SCRAPE_TOKEN), None).await;
    assert_eq!(
        status, 401,
        "the scrape token opened the control API: {body}"
    );

    let separate = format!("http://127.0.0.1:{metrics_port}");
    let (own, _) = scrape_at(&format!("{separate}/metrics"), SCRAPE_TOKEN).await;
    assert!(own.family(RECEIVED).is_some(), "{:#?}", own.families());
    assert_eq!(
        fetch(&format!("{separate}/metrics"), None, None).await.0,
        401
    );
    assert_eq!(
        fetch(&format!("{separate}/metrics"), Some("not-the-token"), None)
            .await
            .0,
        401
    );
    let (status, _, body) = fetch(&format!("{separate}/api/status"), Some(TOKEN), None).await;
    assert_eq!(
        status, 404,
        "the metrics listener serves more than /metrics: {body}"
    );
}

/// The trace ids of the exemplars on `family`'s bucket lines of an
/// OpenMetrics body, each checked to lie in its bucket.
fn exemplar_traces(body: &str, family: &str) -> Vec<String> {
    let prefix = format!("{family}_bucket{{");
    let mut out = Vec::new();
    for line in body.lines().filter(|l| l.starts_with(&prefix)) {
        let Some((sample, exemplar)) = line.split_once(" # ") else {
            continue;
        };
        let le = sample
            .split_once("le=\"")
            .and_then(|(_, rest)| rest.split('"').next())
            .unwrap_or_else(|| panic!("a bucket without le: {line}"));
        let le: f64 = if le == "+Inf" {
            f64::INFINITY
        } else {
            le.parse().unwrap()
        };
        let (labels, rest) = exemplar
            .strip_prefix('{')
            .and_then(|e| e.split_once("} "))
            .unwrap_or_else(|| panic!("a malformed exemplar: {line}"));
        let value: f64 = rest
            .split(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("an exemplar without a value: {line}"));
        assert!(
            (0.0..=le).contains(&value),
            "the exemplar is not in its bucket: {line}"
        );
        let id = labels
            .split_once("trace_id=\"")
            .and_then(|(_, rest)| rest.split('"').next())
            .unwrap_or_else(|| panic!("an exemplar without a trace_id: {line}"));
        assert!(
            id.len() == 32
                && id
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
                && id.chars().any(|c| c != '0'),
            "not a trace id: {line}"
        );
        out.push(id.to_string());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openmetrics_exemplar_leads_to_a_trace() {
    let otlp = FakeOtlp::start().await;
    let (_model, gw, _dir) = start_webchat(&otlp_to(&otlp.base_url())).await;
    let (status, v) = gw.chat("olive", "time this turn").await;
    assert_eq!(status, 200, "{v}");
    scrape_until(&gw, "the turn's duration", |s| {
        s.value(
            "switchboard_turn_duration_seconds_count",
            &[("agent", "main")],
        ) == Some(1.0)
    })
    .await;

    let url = format!("{}/metrics", gw.url);
    let (status, ctype, body) = fetch(&url, Some(TOKEN), Some(OPENMETRICS)).await;
    assert_eq!(status, 200, "{body}");
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert_eq!(body.lines().last(), Some("# EOF"), "{body}");
    let ids = exemplar_traces(&body, "switchboard_turn_duration_seconds");
    let id = ids
        .first()
        .unwrap_or_else(|| panic!("no exemplar on the turn duration's buckets:\n{body}"))
        .clone();
    otlp.wait_for(WAIT, "the exemplar's trace at the collector", |spans| {
        spans
            .iter()
            .any(|s| s.trace_id == id && s.name == "message")
            .then_some(())
    })
    .await;

    let (_, plain) = scrape_at(&url, TOKEN).await;
    assert!(
        !plain.contains(" # {") && !plain.contains("# EOF"),
        "OpenMetrics in the plain format:\n{plain}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_is_degraded_not_an_error() {
    let (_model, gw, _dir) = start_webchat(&otlp_to(&unreachable_endpoint())).await;
    let (status, v) = gw.chat("uma", "are you still there").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        echo_answer("are you still there")
    );
    gw.component_until("telemetry", "telemetry degraded", |c| {
        c["state"] == "degraded"
    })
    .await;
    let (status, v) = gw.chat("uma", "and now").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        echo_answer("and now")
    );
    let ready = gw
        .http
        .get(format!("{}/readyz", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "a telemetry outage made the gateway unready"
    );
}

/// A collector answering 503 is degraded while it does; once it accepts
/// again the component runs again and the next message's trace arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_collector_degrades_then_recovers() {
    let otlp = FakeOtlp::start().await;
    otlp.fail_with(Some(503));
    let (_model, gw, _dir) = start_webchat(&otlp_to(&otlp.base_url())).await;
    let (status, v) = gw.chat("ivo", "first while it fails").await;
    assert_eq!(status, 200, "{v}");
    gw.component_until("telemetry", "telemetry degraded by 503s", |c| {
        c["state"] == "degraded"
    })
    .await;
    otlp.fail_with(None);
    let (status, v) = gw.chat("ivo", "second once it accepts").await;
    assert_eq!(status, 200, "{v}");
    gw.component_until("telemetry", "telemetry running again", |c| {
        c["state"] == "running"
    })
    .await;
    wait_trace(&otlp, "a trace after the collector came back", |t| {
        !t.named("turn").is_empty()
    })
    .await;
}

/// Every string under a `trace_id` key, at any depth.
fn trace_ids(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "trace_id"
                    && let Some(id) = v.as_str()
                {
                    out.insert(id.to_string());
                }
                trace_ids(v, out);
            }
        }
        Value::Array(items) => {
            for v in items {
                trace_ids(v, out);
            }
        }
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_and_carry_the_trace_id() {
    let otlp = FakeOtlp::start().await;
    let extra = format!(
        "[observability]\nlog_format = \"json\"\n{}",
        otlp_to(&otlp.base_url())
    );
    // At debug level, so the turn logs a line of its own.
    let model = FakeOpenAi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = Gateway::start_with_env(
        dir.path(),
        &config(free_port(), &model.base_url(), &extra),
        &[("SWITCHBOARD_LOG", "info,switchboard=debug,sqlx=warn")],
    )
    .await;
    let secret = "quokkaborealis";
    let text = format!("my {secret} is private");
    let (status, v) = gw.chat("vera", &text).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], echo_answer(&text));
    let trace = wait_trace(&otlp, "the message's trace", |t| {
        !t.named("turn").is_empty()
    })
    .await;
    let trace_id = trace.root.trace_id.clone();

    // The log has no change notification: read it again every 50 ms.
    let deadline = tokio::time::Instant::now() + WAIT;
    let log = loop {
        let log = gw.log();
        // The last line may still be being written.
        let whole = &log[..log.rfind('\n').map_or(0, |i| i + 1)];
        let mut ids = BTreeSet::new();
        for (n, line) in whole
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("log line {} is not JSON ({e}): {line}", n + 1));
            assert!(v.is_object(), "log line {} is not an object: {line}", n + 1);
            // A line logged inside a turn carries its message's trace.
            let in_turn = v["spans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["name"] == "turn"));
            let mut own = BTreeSet::new();
            trace_ids(&v, &mut own);
            assert!(
                !in_turn || !own.is_empty(),
                "log line {} was logged inside a turn without its trace id: {line}",
                n + 1
            );
            ids.extend(own);
        }
        if ids.contains(&trace_id) {
            break log;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no log line carries the trace id {trace_id}; ids seen: {ids:?}\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        !log.contains(secret),
        "the message's text was logged:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cost_follows_the_price_table() {
    // Prices in US dollars per million tokens; cached input is a part of
    // the input and priced apart.
    // Whole micro-dollars per token, so no request rounds.
    let (input_price, output_price, cached_price) = (2.0, 10.0, 1.0);
    let extra = format!(
        "[providers.fake.pricing]\ninput_per_mtok = {input_price}\noutput_per_mtok = {output_price}\ncached_per_mtok = {cached_price}\n"
    );
    let (model, gw, _dir) = start_webchat(&extra).await;
    for i in 0..3 {
        let (status, v) = gw.chat("cora", &format!("what does item {i} cost")).await;
        assert_eq!(status, 200, "{v}");
    }
    let (input, output, cached) = reported(&model.seen());
    assert!(cached > 0, "the fake reported no cached tokens");
    let micros = (input - cached) as f64 * input_price
        + cached as f64 * cached_price
        + output as f64 * output_price;
    let want_usd = micros / 1e6;

    let s = scrape_until(&gw, "three turns", |s| turns_ok(s) == 3.0 && idle(s)).await;
    let cost = s.sum(
        "switchboard_cost_usd_total",
        &[("provider", "fake"), ("model", "fake-model")],
    );
    assert!(
        (cost - want_usd).abs() < 1e-9,
        "metrics say ${cost}, the price table ${want_usd}"
    );

    let (status, usage) = gw.get("/api/usage?since_ms=0").await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(
        usage["agents"]["main"]["cost_micros"].as_i64(),
        Some(micros.round() as i64),
        "{usage}"
    );
    assert!(
        (usage["agents"]["main"]["cost_usd"].as_f64().unwrap_or(-1.0) - want_usd).abs() < 1e-6,
        "{usage}"
    );

    // The person sees it with `/status`.
    let (_, v) = gw.chat("cora", "/status").await;
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(text.contains("Cost in this session: $"), "{text}");
}
