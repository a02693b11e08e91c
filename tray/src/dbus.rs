//! The tray item on D-Bus: a StatusNotifierItem with its dbusmenu, through
//! ksni (zbus underneath: no GTK, no libdbus). It shows a [`View`] and
//! hands menu clicks back to the app as [`Action`]s; it decides nothing.

use tokio::sync::mpsc;

use crate::Error;
use crate::icons::{self, Pixmap};
use crate::model::{Action, Entry, IconKind, Page, Status, View};

/// The item's id.
pub const ID: &str = "switchboard";

/// The icons, drawn once.
struct Icons {
    healthy: Vec<ksni::Icon>,
    attention: Vec<ksni::Icon>,
    off: Vec<ksni::Icon>,
}

fn to_ksni(p: Pixmap) -> ksni::Icon {
    ksni::Icon {
        width: i32::try_from(p.width).unwrap_or(i32::MAX),
        height: i32::try_from(p.height).unwrap_or(i32::MAX),
        data: p.data,
    }
}

impl Icons {
    fn draw() -> Self {
        let of = |kind: IconKind| -> Vec<ksni::Icon> {
            icons::pixmaps(kind).into_iter().map(to_ksni).collect()
        };
        Self {
            healthy: of(IconKind::Healthy),
            attention: of(IconKind::Attention),
            off: of(IconKind::Off),
        }
    }

    fn of(&self, kind: IconKind) -> &[ksni::Icon] {
        match kind {
            IconKind::Healthy => &self.healthy,
            IconKind::Attention => &self.attention,
            IconKind::Off => &self.off,
        }
    }
}

/// The tray item: the view it shows and where its clicks go.
pub struct TrayItem {
    view: View,
    actions: mpsc::Sender<Action>,
    icons: Icons,
}

impl TrayItem {
    /// An item showing `view`, sending clicks to `actions`.
    pub fn new(view: View, actions: mpsc::Sender<Action>) -> Self {
        Self {
            view,
            actions,
            icons: Icons::draw(),
        }
    }

    /// Show `view` from now on (call through [`ksni::Handle::update`]).
    pub fn set_view(&mut self, view: View) {
        self.view = view;
    }

    fn send(&self, action: Action) {
        if self.actions.try_send(action).is_err() {
            crate::log("the tray is busy: a click was dropped");
        }
    }

    fn can_open(&self) -> bool {
        self.view.menu.iter().any(|e| {
            matches!(
                e,
                Entry::Item {
                    action: Action::Open(Page::Overview),
                    enabled: true,
                    ..
                }
            )
        })
    }
}

/// A label as dbusmenu shows it: `_` marks an access key, `__` is an
/// underscore.
fn label(text: &str) -> String {
    text.replace('_', "__")
}

/// The tooltip's text may hold markup: show `<`, `>` and `&` as such.
fn plain_markup(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl ksni::Tray for TrayItem {
    fn id(&self) -> String {
        ID.into()
    }

    fn title(&self) -> String {
        self.view.title.clone()
    }

    fn category(&self) -> ksni::Category {
        ksni::Category::ApplicationStatus
    }

    fn status(&self) -> ksni::Status {
        match self.view.status {
            Status::Active => ksni::Status::Active,
            Status::NeedsAttention => ksni::Status::NeedsAttention,
            Status::Passive => ksni::Status::Passive,
        }
    }

    fn icon_name(&self) -> String {
        String::new()
    }

    fn icon_pixmap(&self) -> Vec<ksni::Icon> {
        self.icons.of(self.view.icon).to_vec()
    }

    fn attention_icon_pixmap(&self) -> Vec<ksni::Icon> {
        self.icons.of(IconKind::Attention).to_vec()
    }

    fn tool_tip(&self) -> ksni::ToolTip {
        ksni::ToolTip {
            icon_name: String::new(),
            icon_pixmap: Vec::new(),
            title: self.view.tooltip_title.clone(),
            description: plain_markup(&self.view.tooltip_text),
        }
    }

    /// A left click opens the control UI.
    fn activate(&mut self, _x: i32, _y: i32) {
        if self.can_open() {
            self.send(Action::Open(Page::Overview));
        }
    }

    fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
        let one = |entry: &Entry| -> ksni::MenuItem<Self> {
            match entry {
                Entry::Line(text) => ksni::menu::StandardItem {
                    label: label(text),
                    enabled: false,
                    ..Default::default()
                }
                .into(),
                Entry::Separator => ksni::MenuItem::Separator,
                Entry::Item {
                    label: text,
                    action,
                    enabled,
                } => {
                    let action = *action;
                    ksni::menu::StandardItem {
                        label: label(text),
                        enabled: *enabled,
                        activate: Box::new(move |item: &mut Self| item.send(action)),
                        ..Default::default()
                    }
                    .into()
                }
            }
        };
        self.view.menu.iter().map(one).collect()
    }

    fn watcher_online(&self) {
        crate::log("a StatusNotifierWatcher appeared: the item is registered with it");
    }

    fn watcher_offline(&self, reason: ksni::OfflineReason) -> bool {
        crate::log(format!(
            "no StatusNotifierWatcher on the session bus ({reason:?}): the item shows once a tray host (a panel with StatusNotifierItem support) runs"
        ));
        true
    }
}

/// Put `item` on the session bus and register it with the
/// StatusNotifierWatcher (now, or when one appears).
pub async fn show(item: TrayItem) -> Result<ksni::Handle<TrayItem>, Error> {
    use ksni::TrayMethods;
    item.assume_sni_available(true)
        .spawn()
        .await
        .map_err(|e| {
            Error::Dbus(format!(
                "cannot put the tray item on the D-Bus session bus: {e}. The tray needs a desktop session (DBUS_SESSION_BUS_ADDRESS)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Local, Observed, view};

    #[test]
    fn labels_keep_their_underscores_and_tooltips_their_brackets() {
        assert_eq!(label("my_bot/main: running"), "my__bot/main: running");
        assert_eq!(plain_markup("a <b> & c"), "a &lt;b&gt; &amp; c");
    }

    #[test]
    fn the_view_becomes_the_item_and_clicks_become_actions() {
        use ksni::Tray;
        let (tx, mut rx) = mpsc::channel(4);
        let v = view(
            &Observed::NotRunning {
                url: "http://127.0.0.1:7788".into(),
            },
            &Local::default(),
        );
        let mut item = TrayItem::new(v, tx);
        assert_eq!(item.id(), "switchboard");
        assert_eq!(item.title(), "Switchboard");
        assert_eq!(item.status(), ksni::Status::Passive);
        assert_eq!(item.icon_pixmap().len(), icons::SIZES.len());
        assert!(item.tool_tip().title.contains("not running"));
        item.activate(0, 0);
        assert!(
            rx.try_recv().is_err(),
            "nothing to open while it is not running"
        );
        let menu = item.menu();
        let Some(ksni::MenuItem::Standard(quit)) = menu.last() else {
            panic!("the last entry is Quit: {menu:?}");
        };
        assert_eq!(quit.label, "Quit");
        (quit.activate)(&mut item);
        assert_eq!(rx.try_recv().ok(), Some(Action::Quit));
    }
}
