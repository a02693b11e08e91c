//! Desktop notifications through `org.freedesktop.Notifications` on the
//! session bus: each [`Notice`] becomes a `Notify` call with one action
//! (`default`, "Open"); an `ActionInvoked` for one of ours opens its page.
//! A missing notification server is logged once, not fatal.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use zbus::zvariant::Value;

use crate::model::Page;
use crate::notices::Notice;

const SERVICE: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";

/// The application name notifications carry.
pub const APP_NAME: &str = "Switchboard";

/// How long a call to the notification server may take.
const CALL: Duration = Duration::from_secs(5);

/// How many sent notifications are remembered for their actions.
const REMEMBERED: usize = 64;

/// `<`, `>` and `&` as text, for servers that read markup in bodies.
fn plain_markup(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The notifications the tray sent, for their actions.
struct Outbox {
    conn: zbus::Connection,
    sent: VecDeque<(u32, Page)>,
    markup: Option<bool>,
    warned: bool,
}

impl Outbox {
    async fn call<B>(&self, method: &str, body: &B) -> Result<zbus::Message, String>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        let call = self
            .conn
            .call_method(Some(SERVICE), PATH, Some(SERVICE), method, body);
        match tokio::time::timeout(CALL, call).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer to {method} within {} s", CALL.as_secs())),
        }
    }

    /// Whether the server reads markup in bodies (asked once).
    async fn markup(&mut self) -> Result<bool, String> {
        if let Some(m) = self.markup {
            return Ok(m);
        }
        let reply = self.call("GetCapabilities", &()).await?;
        let caps: Vec<String> = reply.body().deserialize().map_err(|e| e.to_string())?;
        let m = caps.iter().any(|c| c == "body-markup");
        self.markup = Some(m);
        Ok(m)
    }

    async fn notify(&mut self, notice: &Notice) -> Result<u32, String> {
        let body = if self.markup().await? {
            plain_markup(&notice.body)
        } else {
            notice.body.clone()
        };
        let actions = vec!["default", "Open"];
        let hints: HashMap<&str, Value<'_>> = HashMap::new();
        let reply = self
            .call(
                "Notify",
                &(
                    APP_NAME,
                    0u32,
                    "",
                    notice.summary.as_str(),
                    body.as_str(),
                    actions,
                    hints,
                    -1i32,
                ),
            )
            .await?;
        reply.body().deserialize::<u32>().map_err(|e| e.to_string())
    }

    async fn show(&mut self, notice: &Notice) {
        match self.notify(notice).await {
            Ok(id) => {
                self.warned = false;
                if self.sent.len() == REMEMBERED {
                    self.sent.pop_front();
                }
                self.sent.push_back((id, notice.page));
            }
            Err(e) => {
                // Asked again next time: the server may start later.
                self.markup = None;
                if !self.warned {
                    self.warned = true;
                    crate::log(format!(
                        "cannot show a desktop notification ({e}): is a notification server running? Notifications are skipped until one answers"
                    ));
                }
            }
        }
    }

    fn page_of(&self, id: u32) -> Option<Page> {
        self.sent.iter().find(|(i, _)| *i == id).map(|(_, p)| *p)
    }
}

/// The `ActionInvoked` signals of the notification server (whoever owns
/// the name, now or later).
async fn actions(conn: &zbus::Connection) -> zbus::Result<zbus::MessageStream> {
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface(SERVICE)?
        .path(PATH)?
        .member("ActionInvoked")?
        .build();
    zbus::MessageStream::for_match_rule(rule, conn, Some(16)).await
}

/// Show each notice from `notices` on `conn`'s session bus until it
/// closes; send the page of each of ours whose action is invoked to
/// `pages`.
pub async fn run(
    conn: zbus::Connection,
    mut notices: mpsc::Receiver<Notice>,
    pages: mpsc::Sender<Page>,
) {
    let mut invoked = match actions(&conn).await {
        Ok(s) => Some(s),
        Err(e) => {
            crate::log(format!(
                "cannot follow notification actions ({e}): clicking a notification does nothing"
            ));
            None
        }
    };
    let mut sender = Outbox {
        conn,
        sent: VecDeque::new(),
        markup: None,
        warned: false,
    };
    loop {
        let next_action = async {
            match invoked.as_mut() {
                Some(s) => s.next().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            notice = notices.recv() => match notice {
                Some(n) => sender.show(&n).await,
                None => return,
            },
            msg = next_action => match msg {
                Some(Ok(msg)) => {
                    let Ok((id, _key)) = msg.body().deserialize::<(u32, String)>() else {
                        continue;
                    };
                    if let Some(page) = sender.page_of(id) {
                        if pages.send(page).await.is_err() {
                            return;
                        }
                    }
                }
                Some(Err(_)) => {}
                None => invoked = None,
            },
        }
    }
}
