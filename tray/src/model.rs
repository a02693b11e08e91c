//! The status model: what the gateway's status stream says ([`Snapshot`]),
//! and what the tray shows for it ([`View`]: status, icon, tooltip, menu).
//!
//! Pure: no I/O, no D-Bus, no clock. It knows the stream's JSON
//! (`docs/protocol.md`), not how it arrives or how the view is drawn.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The item's title.
pub const TITLE: &str = "Switchboard";

/// A component's state, in the gateway's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComponentState {
    /// Starting up.
    Starting,
    /// Working.
    Running,
    /// Failed; being restarted with backoff.
    Restarting,
    /// Reachable but not well.
    Degraded,
    /// Not working.
    Failed,
    /// Stopped on purpose.
    Stopped,
    /// A state this tray does not know (a newer gateway).
    #[serde(other)]
    Unknown,
}

impl ComponentState {
    /// Whether it needs the operator's attention.
    pub fn troubled(self) -> bool {
        matches!(self, Self::Restarting | Self::Degraded | Self::Failed)
    }

    /// The word for it.
    pub fn word(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Restarting => "restarting",
            Self::Degraded => "degraded",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
            Self::Unknown => "unknown",
        }
    }
}

/// What a channel listener reports of its connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Connection {
    /// What is wrong now, if anything.
    pub problem: Option<String>,
    /// What an operator should know that is not a fault now.
    pub notice: Option<String>,
    /// The connection's state in the platform's words.
    pub state: Option<String>,
}

/// One component's health.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Component {
    /// Its state.
    pub state: ComponentState,
    /// A readable detail (the last error, an address).
    pub detail: Option<String>,
    /// How often it was restarted.
    #[serde(default)]
    pub restarts: u32,
    /// Why it last failed, kept after it runs again.
    pub last_failure: Option<String>,
    /// What a channel listener reports of its connection.
    pub connection: Option<Connection>,
}

impl Component {
    /// What is wrong with it, in its own words, when it is troubled.
    pub fn problem(&self) -> Option<&str> {
        if !self.state.troubled() {
            return None;
        }
        self.detail
            .as_deref()
            .or_else(|| self.connection.as_ref()?.problem.as_deref())
            .or(self.last_failure.as_deref())
            .filter(|p| !p.trim().is_empty())
    }
}

/// A tool call waiting for the operator's approval.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Approval {
    /// Its id.
    pub id: String,
    /// The tool it would run.
    #[serde(default)]
    pub tool: String,
    /// The agent that asks.
    #[serde(default)]
    pub agent: String,
    /// The session it belongs to.
    #[serde(default)]
    pub session_key: String,
}

/// An unknown sender waiting to be let in.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PairingRequest {
    /// The channel (`telegram`, ...).
    pub channel: String,
    /// The channel account.
    #[serde(default)]
    pub account: String,
    /// The sender's id on the platform.
    #[serde(default)]
    pub sender_id: String,
    /// The sender's name, if the platform tells it.
    pub sender_name: Option<String>,
    /// The pairing code.
    pub code: String,
}

impl PairingRequest {
    /// Who asks: the name, else the id.
    pub fn who(&self) -> &str {
        match self.sender_name.as_deref() {
            Some(n) if !n.trim().is_empty() => n,
            _ => &self.sender_id,
        }
    }
}

/// One event of `/api/status/stream`: how the gateway is, and what waits
/// for the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The gateway's version.
    pub version: String,
    /// Whether it is ready (every channel running).
    pub ready: bool,
    /// Every component's health, by name (`http`, `channel:telegram/main`,
    /// `provider:local`, ...).
    pub components: BTreeMap<String, Component>,
    /// Tool calls waiting for approval.
    pub approvals: Vec<Approval>,
    /// Pairing requests waiting.
    pub pairing: Vec<PairingRequest>,
}

#[derive(Deserialize)]
struct Wire {
    status: WireStatus,
    #[serde(default)]
    approvals_waiting: Vec<Approval>,
    #[serde(default)]
    pairing_waiting: Vec<PairingRequest>,
}

#[derive(Deserialize)]
struct WireStatus {
    #[serde(default)]
    version: String,
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    components: BTreeMap<String, Component>,
}

impl Snapshot {
    /// Read the data of one `status` event.
    pub fn parse(data: &str) -> Result<Self, serde_json::Error> {
        let wire: Wire = serde_json::from_str(data)?;
        Ok(Self {
            version: wire.status.version,
            ready: wire.status.ready,
            components: wire.status.components,
            approvals: wire.approvals_waiting,
            pairing: wire.pairing_waiting,
        })
    }

    /// The channel accounts: (`<channel>/<account>`, component name,
    /// health), in name order.
    pub fn channels(&self) -> impl Iterator<Item = (&str, &str, &Component)> {
        self.components
            .iter()
            .filter_map(|(key, c)| Some((key.strip_prefix("channel:")?, key.as_str(), c)))
    }
}

/// A component's name as the menu says it: `telegram/main` for
/// `channel:telegram/main`, `provider local` for `provider:local`.
pub fn display_name(component: &str) -> String {
    if let Some(channel) = component.strip_prefix("channel:") {
        channel.to_string()
    } else if let Some(provider) = component.strip_prefix("provider:") {
        format!("provider {provider}")
    } else {
        component.to_string()
    }
}

/// What the tray knows of the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// It answers; its latest snapshot.
    Running(Snapshot),
    /// Nothing answers at `url`.
    NotRunning {
        /// The gateway's address.
        url: String,
    },
    /// Something answers at `url` but the tray cannot follow it.
    Refused {
        /// The gateway's address.
        url: String,
        /// Why, and what to do.
        why: String,
    },
}

impl Observed {
    /// Whether a gateway answers.
    pub fn answers(&self) -> bool {
        !matches!(self, Self::NotRunning { .. })
    }
}

/// What the tray may do with the gateway on this machine, and what it has
/// to say about that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Local {
    /// It may start one (none answers, and the user unit or a `switchboard`
    /// binary is there).
    pub can_start: bool,
    /// It owns the one that answers (the user unit, or one it started).
    pub can_stop: bool,
    /// A line to show (a second gateway, a failed start).
    pub note: Option<String>,
}

/// The item's status, as StatusNotifierItem names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// All is well.
    Active,
    /// Something waits for the operator or is broken.
    NeedsAttention,
    /// The gateway is not running.
    Passive,
}

impl Status {
    /// The StatusNotifierItem word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::NeedsAttention => "NeedsAttention",
            Self::Passive => "Passive",
        }
    }
}

/// Which icon to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IconKind {
    /// A green dot.
    Healthy,
    /// An amber dot with `!`.
    Attention,
    /// A grey ring.
    Off,
}

/// A page of the control UI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Page {
    /// The overview, `/`.
    Overview,
    /// `/approvals`.
    Approvals,
    /// `/pairing`.
    Pairing,
    /// `/channels`.
    Channels,
}

impl Page {
    /// Its path on the gateway.
    pub fn path(self) -> &'static str {
        match self {
            Self::Overview => "/",
            Self::Approvals => "/approvals",
            Self::Pairing => "/pairing",
            Self::Channels => "/channels",
        }
    }
}

/// What a menu item does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Open a page with a fresh one-time sign-in link.
    Open(Page),
    /// Start the gateway.
    Start,
    /// Stop the gateway the tray owns.
    Stop,
    /// Quit the tray.
    Quit,
}

/// One line of the menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A disabled line of text.
    Line(String),
    /// A separator.
    Separator,
    /// An item that does something.
    Item {
        /// Its label.
        label: String,
        /// What it does.
        action: Action,
        /// Whether it can be clicked now.
        enabled: bool,
    },
}

/// What the tray shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The item's status.
    pub status: Status,
    /// Its icon.
    pub icon: IconKind,
    /// Its title.
    pub title: String,
    /// The tooltip's title: the state in a few words.
    pub tooltip_title: String,
    /// The tooltip's text: counts and problems, one per line.
    pub tooltip_text: String,
    /// The menu.
    pub menu: Vec<Entry>,
}

/// The longest detail a menu line carries.
const LINE_MAX: usize = 80;

/// `text`'s first line, cut at `max` characters.
pub fn short(text: &str, max: usize) -> String {
    let first = text.lines().next().unwrap_or("").trim();
    if first.chars().count() <= max {
        return first.to_string();
    }
    let cut: String = first.chars().take(max.saturating_sub(1)).collect();
    format!("{}…", cut.trim_end())
}

/// `n` and the noun, singular or plural.
pub fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn item(label: impl Into<String>, action: Action, enabled: bool) -> Entry {
    Entry::Item {
        label: label.into(),
        action,
        enabled,
    }
}

/// A component's line: `telegram/main: failed — 401 Unauthorized`.
fn component_line(name: &str, c: &Component) -> String {
    match c.problem() {
        Some(p) => format!("{name}: {} — {}", c.state.word(), short(p, LINE_MAX)),
        None => format!("{name}: {}", c.state.word()),
    }
}

/// What the tray shows for `observed`, given what it may do locally.
pub fn view(observed: &Observed, local: &Local) -> View {
    match observed {
        Observed::Running(s) => running(s, local),
        Observed::NotRunning { url } => not_running(url, local),
        Observed::Refused { url, why } => refused(url, why, local),
    }
}

fn running(s: &Snapshot, local: &Local) -> View {
    let channels: Vec<(&str, &Component)> = s.channels().map(|(n, _, c)| (n, c)).collect();
    let up = channels
        .iter()
        .filter(|(_, c)| c.state == ComponentState::Running)
        .count();
    // (component name, display name, health) of each troubled component.
    let troubled: Vec<(&str, String, &Component)> = s
        .components
        .iter()
        .filter(|(_, c)| c.state.troubled())
        .map(|(k, c)| (k.as_str(), display_name(k), c))
        .collect();
    let approvals = s.approvals.len();
    let pairing = s.pairing.len();
    let attention = !troubled.is_empty() || approvals > 0 || pairing > 0;
    let headline = if attention {
        "needs attention"
    } else if !s.ready {
        "starting"
    } else {
        "all well"
    };
    let mut counts = vec![
        count(channels.len(), "channel", "channels"),
        format!("{up} running"),
    ];
    if approvals > 0 {
        counts.push(count(approvals, "approval waiting", "approvals waiting"));
    }
    if pairing > 0 {
        counts.push(count(
            pairing,
            "pairing request waiting",
            "pairing requests waiting",
        ));
    }
    let counts = counts.join(" · ");
    let tooltip_title = format!("{TITLE} — {headline}");
    let mut text = vec![counts.clone()];
    text.extend(troubled.iter().map(|(_, n, c)| component_line(n, c)));
    text.extend(local.note.iter().cloned());

    let mut menu = vec![Entry::Line(format!("{tooltip_title} · {counts}"))];
    menu.extend(
        channels
            .iter()
            .map(|(n, c)| Entry::Line(component_line(n, c))),
    );
    // Channels have their line already; other troubled components get one.
    menu.extend(
        troubled
            .iter()
            .filter(|(key, _, _)| !key.starts_with("channel:"))
            .map(|(_, n, c)| Entry::Line(component_line(n, c))),
    );
    menu.extend(
        local
            .note
            .iter()
            .map(|n| Entry::Line(short(n, LINE_MAX * 2))),
    );
    menu.push(Entry::Separator);
    menu.push(item("Open control UI", Action::Open(Page::Overview), true));
    menu.push(item(
        format!("Approvals ({approvals})"),
        Action::Open(Page::Approvals),
        true,
    ));
    menu.push(item(
        format!("Pairing requests ({pairing})"),
        Action::Open(Page::Pairing),
        true,
    ));
    menu.push(Entry::Separator);
    if local.can_stop {
        menu.push(item("Stop gateway", Action::Stop, true));
    }
    menu.push(item("Quit", Action::Quit, true));
    let (status, icon) = if attention {
        (Status::NeedsAttention, IconKind::Attention)
    } else {
        (Status::Active, IconKind::Healthy)
    };
    View {
        status,
        icon,
        title: TITLE.into(),
        tooltip_title,
        tooltip_text: text.join("\n"),
        menu,
    }
}

fn not_running(url: &str, local: &Local) -> View {
    let tooltip_title = format!("{TITLE} — not running at {url}");
    let hint = if local.can_start {
        "Start it from this menu or with `switchboard serve`."
    } else {
        "Start it with `switchboard serve`."
    };
    let mut text = vec![hint.to_string()];
    text.extend(local.note.iter().cloned());
    let mut menu = vec![Entry::Line(tooltip_title.clone())];
    menu.extend(
        local
            .note
            .iter()
            .map(|n| Entry::Line(short(n, LINE_MAX * 2))),
    );
    menu.push(Entry::Separator);
    menu.push(item("Open control UI", Action::Open(Page::Overview), false));
    menu.push(Entry::Separator);
    if local.can_start {
        menu.push(item("Start gateway", Action::Start, true));
    }
    menu.push(item("Quit", Action::Quit, true));
    View {
        status: Status::Passive,
        icon: IconKind::Off,
        title: TITLE.into(),
        tooltip_title,
        tooltip_text: text.join("\n"),
        menu,
    }
}

fn refused(url: &str, why: &str, local: &Local) -> View {
    let tooltip_title = format!("{TITLE} — cannot follow the gateway at {url}");
    let mut text = vec![why.to_string()];
    text.extend(local.note.iter().cloned());
    let mut menu = vec![
        Entry::Line(tooltip_title.clone()),
        Entry::Line(short(why, LINE_MAX * 2)),
    ];
    menu.extend(
        local
            .note
            .iter()
            .map(|n| Entry::Line(short(n, LINE_MAX * 2))),
    );
    menu.push(Entry::Separator);
    if local.can_stop {
        menu.push(item("Stop gateway", Action::Stop, true));
    }
    menu.push(item("Quit", Action::Quit, true));
    View {
        status: Status::NeedsAttention,
        icon: IconKind::Attention,
        title: TITLE.into(),
        tooltip_title,
        tooltip_text: text.join("\n"),
        menu,
    }
}

#[cfg(test)]
pub(crate) mod tests {
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
}
