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
pub(crate) mod tests;
