//! The status model: snapshots to status, icon, tooltip and menu.
use super::*;

/// A snapshot as the gateway sends it: `channels` as (name, state,
/// detail), with `approvals` and `pairing` waiting.
pub(crate) fn snapshot(
    channels: &[(&str, &str, Option<&str>)],
    approvals: &[&str],
    pairing: &[&str],
) -> Snapshot {
    let mut components = serde_json::Map::new();
    components.insert(
        "http".into(),
        serde_json::json!({"state": "running", "detail": "http://127.0.0.1:7788", "since_ms": 1, "restarts": 0}),
    );
    for (name, state, detail) in channels {
        let mut c = serde_json::json!({"state": state, "since_ms": 1, "restarts": 0, "connection": {"state": "polling"}});
        if let Some(d) = detail {
            c["detail"] = (*d).into();
        }
        components.insert(format!("channel:{name}"), c);
    }
    let body = serde_json::json!({
        "status": {
            "version": "0.1.0", "uptime_secs": 5, "ready": true, "agents": ["main"],
            "sessions_in_memory": 0, "runs_in_flight": 0, "components": components,
        },
        "approvals_waiting": approvals.iter().map(|id| serde_json::json!({
            "id": id, "tool": "exec", "agent": "main", "session_key": "agent:main:webchat:dm:amy", "created_at": 1,
        })).collect::<Vec<_>>(),
        "pairing_waiting": pairing.iter().map(|code| serde_json::json!({
            "channel": "telegram", "account": "main", "sender_id": "42", "sender_name": "Ann", "code": code, "created_at": 1,
        })).collect::<Vec<_>>(),
    });
    Snapshot::parse(&body.to_string()).expect("the test snapshot parses")
}

fn labels(v: &View) -> Vec<String> {
    v.menu
        .iter()
        .filter_map(|e| match e {
            Entry::Line(l) => Some(l.clone()),
            Entry::Item { label, .. } => Some(label.clone()),
            Entry::Separator => None,
        })
        .collect()
}

fn enabled(v: &View, label: &str) -> Option<bool> {
    v.menu.iter().find_map(|e| match e {
        Entry::Item {
            label: l, enabled, ..
        } if l == label => Some(*enabled),
        _ => None,
    })
}

#[test]
fn the_stream_json_parses_with_unknown_fields_and_states() {
    let s = Snapshot::parse(
        r#"{"status":{"version":"9.9","ready":false,"new_field":1,"components":{
            "channel:slack/work":{"state":"hibernating","since_ms":1,"restarts":0},
            "channel:telegram/main":{"state":"degraded","since_ms":1,"restarts":2,
                "connection":{"problem":"409 Conflict","watchdog_restarts":0}}}},
           "approvals_waiting":[{"id":"ab12","tool":"exec","agent":"main","session_key":"k","created_at":1}],
           "pairing_waiting":[{"channel":"telegram","account":"main","sender_id":"7","sender_name":null,"code":"ABCD1234","created_at":1}]}"#,
    )
    .unwrap();
    assert_eq!(s.version, "9.9");
    assert!(!s.ready);
    assert_eq!(
        s.components["channel:slack/work"].state,
        ComponentState::Unknown
    );
    let tg = &s.components["channel:telegram/main"];
    assert_eq!(tg.problem(), Some("409 Conflict"));
    assert_eq!(tg.restarts, 2);
    assert_eq!(s.approvals[0].id, "ab12");
    assert_eq!(s.pairing[0].who(), "7");
    assert!(
        Snapshot::parse("{}").is_err(),
        "a body without status is not a snapshot"
    );
}

#[test]
fn all_well_is_active_with_counts_in_words() {
    let s = snapshot(
        &[
            ("telegram/main", "running", None),
            ("discord/main", "running", None),
            ("webchat/default", "running", None),
        ],
        &[],
        &[],
    );
    let v = view(&Observed::Running(s), &Local::default());
    assert_eq!(v.status, Status::Active);
    assert_eq!(v.icon, IconKind::Healthy);
    assert_eq!(v.title, "Switchboard");
    assert_eq!(v.tooltip_title, "Switchboard — all well");
    assert_eq!(v.tooltip_text, "3 channels · 3 running");
    assert_eq!(
        labels(&v),
        [
            "Switchboard — all well · 3 channels · 3 running",
            "discord/main: running",
            "telegram/main: running",
            "webchat/default: running",
            "Open control UI",
            "Approvals (0)",
            "Pairing requests (0)",
            "Quit",
        ]
    );
    assert_eq!(
        v.menu[0],
        Entry::Line(labels(&v)[0].clone()),
        "the status line is disabled"
    );
    assert_eq!(enabled(&v, "Open control UI"), Some(true));
}

#[test]
fn waiting_approvals_or_pairing_need_attention() {
    let s = snapshot(
        &[
            ("telegram/main", "running", None),
            ("discord/main", "starting", None),
            ("webchat/default", "running", None),
        ],
        &["ab12"],
        &[],
    );
    let v = view(&Observed::Running(s), &Local::default());
    assert_eq!(v.status, Status::NeedsAttention);
    assert_eq!(v.icon, IconKind::Attention);
    assert_eq!(
        labels(&v)[0],
        "Switchboard — needs attention · 3 channels · 2 running · 1 approval waiting"
    );
    assert!(labels(&v).contains(&"discord/main: starting".to_string()));
    assert!(labels(&v).contains(&"Approvals (1)".to_string()));

    let s = snapshot(
        &[("telegram/main", "running", None)],
        &["a", "b"],
        &["C1", "C2"],
    );
    let v = view(&Observed::Running(s), &Local::default());
    assert_eq!(v.status, Status::NeedsAttention);
    assert_eq!(
        v.tooltip_text,
        "1 channel · 1 running · 2 approvals waiting · 2 pairing requests waiting"
    );
    assert!(labels(&v).contains(&"Pairing requests (2)".to_string()));
}

#[test]
fn a_failed_degraded_or_restarting_component_needs_attention_and_says_why() {
    for state in ["failed", "degraded", "restarting"] {
        let s = snapshot(
            &[(
                "telegram/main",
                state,
                Some("401 Unauthorized: check the token"),
            )],
            &[],
            &[],
        );
        let v = view(&Observed::Running(s), &Local::default());
        assert_eq!(v.status, Status::NeedsAttention, "{state}");
        let line = format!("telegram/main: {state} — 401 Unauthorized: check the token");
        assert!(labels(&v).contains(&line), "{state}: {:?}", labels(&v));
        assert!(v.tooltip_text.contains(&line), "{}", v.tooltip_text);
    }
    // A troubled component that is not a channel gets its own line.
    let mut s = snapshot(&[("telegram/main", "running", None)], &[], &[]);
    s.components.insert(
        "provider:local".into(),
        Component {
            state: ComponentState::Failed,
            detail: Some("connection refused. Start Ollama".into()),
            restarts: 0,
            last_failure: None,
            connection: None,
        },
    );
    let v = view(&Observed::Running(s), &Local::default());
    assert_eq!(v.status, Status::NeedsAttention);
    assert!(
        labels(&v)
            .contains(&"provider local: failed — connection refused. Start Ollama".to_string()),
        "{:?}",
        labels(&v)
    );
    // Stopped on purpose or starting is not a problem.
    let s = snapshot(&[("telegram/main", "stopped", None)], &[], &[]);
    assert_eq!(
        view(&Observed::Running(s), &Local::default()).status,
        Status::Active
    );
}

#[test]
fn not_running_is_passive_and_says_where() {
    let url = "http://127.0.0.1:7788".to_string();
    let v = view(
        &Observed::NotRunning { url: url.clone() },
        &Local::default(),
    );
    assert_eq!(v.status, Status::Passive);
    assert_eq!(v.icon, IconKind::Off);
    assert_eq!(
        v.tooltip_title,
        "Switchboard — not running at http://127.0.0.1:7788"
    );
    assert_eq!(enabled(&v, "Open control UI"), Some(false));
    assert!(
        !labels(&v).iter().any(|l| l.contains("gateway")),
        "{:?}",
        labels(&v)
    );
    assert_eq!(labels(&v).last().map(String::as_str), Some("Quit"));

    let startable = Local {
        can_start: true,
        ..Local::default()
    };
    let v = view(&Observed::NotRunning { url }, &startable);
    assert_eq!(enabled(&v, "Start gateway"), Some(true));
    assert_eq!(enabled(&v, "Stop gateway"), None);
}

#[test]
fn stop_is_offered_only_for_a_gateway_the_tray_owns() {
    let s = snapshot(&[("telegram/main", "running", None)], &[], &[]);
    let not_ours = view(&Observed::Running(s.clone()), &Local::default());
    assert_eq!(enabled(&not_ours, "Stop gateway"), None);
    assert_eq!(enabled(&not_ours, "Start gateway"), None);
    let ours = Local {
        can_stop: true,
        ..Local::default()
    };
    let v = view(&Observed::Running(s), &ours);
    assert_eq!(enabled(&v, "Stop gateway"), Some(true));
    assert_eq!(
        enabled(&v, "Start gateway"),
        None,
        "never start a second one"
    );
}

#[test]
fn a_refused_token_needs_attention_and_says_what_to_do() {
    let v = view(
        &Observed::Refused {
            url: "http://127.0.0.1:7788".into(),
            why: "it refused the control token (HTTP 401): use the gateway's token".into(),
        },
        &Local::default(),
    );
    assert_eq!(v.status, Status::NeedsAttention);
    assert!(v.tooltip_text.contains("refused the control token"));
    assert!(
        labels(&v)
            .iter()
            .any(|l| l.contains("refused the control token"))
    );
}

#[test]
fn a_note_is_shown_in_menu_and_tooltip() {
    let s = snapshot(&[("telegram/main", "running", None)], &[], &[]);
    let local = Local {
        note: Some("Another gateway already answers at http://127.0.0.1:7788".into()),
        ..Local::default()
    };
    let v = view(&Observed::Running(s), &local);
    assert!(
        labels(&v)
            .contains(&"Another gateway already answers at http://127.0.0.1:7788".to_string())
    );
    assert!(
        v.tooltip_text
            .ends_with("Another gateway already answers at http://127.0.0.1:7788")
    );
}

#[test]
fn names_and_lines_are_short_and_readable() {
    assert_eq!(display_name("channel:telegram/main"), "telegram/main");
    assert_eq!(display_name("provider:local"), "provider local");
    assert_eq!(display_name("store"), "store");
    assert_eq!(short("one\ntwo", 10), "one");
    assert_eq!(short("abcdefghijk", 5), "abcd…");
    assert_eq!(short("äöüäöü", 6), "äöüäöü");
    assert_eq!(count(1, "channel", "channels"), "1 channel");
    assert_eq!(count(0, "channel", "channels"), "0 channels");
    assert_eq!(Page::Approvals.path(), "/approvals");
    assert_eq!(Status::NeedsAttention.as_str(), "NeedsAttention");
}
