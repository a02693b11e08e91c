//! The tray's event loop: it follows the gateway, turns each change into a
//! [`View`] for the tray item and [`Notice`]s for the notification server,
//! and carries out what the menu asks (open a page, start, stop, quit).
//! One task owns the state; the follower, the item and the notifier talk
//! to it through bounded channels.

use std::path::Path;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::task::JoinHandle;

use crate::dbus::{self, TrayItem};
use crate::gateway::GatewayClient;
use crate::locate::Target;
use crate::model::{self, Action, Local, Observed, Page, Snapshot, View};
use crate::notices::{self, Notice};
use crate::power::{ChildExit, EARLY_EXIT, Power};
use crate::{Error, log, opener};

/// Start a follower of the gateway; its observations arrive on the
/// receiver.
fn follow(client: &Arc<GatewayClient>) -> (JoinHandle<()>, mpsc::Receiver<Observed>) {
    let (tx, rx) = mpsc::channel(8);
    let client = client.clone();
    (tokio::spawn(async move { client.follow(tx).await }), rx)
}

/// Open `page` in the browser with a fresh one-time sign-in link.
fn open(client: &Arc<GatewayClient>, observed: &Observed, page: Page) {
    if !matches!(observed, Observed::Running(_)) {
        log(format!(
            "cannot open {}: the gateway at {} does not answer",
            page.path(),
            client.url()
        ));
        return;
    }
    let client = client.clone();
    tokio::spawn(async move {
        let opened = match client.sign_in_link(page).await {
            Ok(link) => opener::open(&link),
            Err(e) => Err(e),
        };
        if let Err(e) = opened {
            log(format!("cannot open {}: {e}", page.path()));
        }
    });
}

/// What to say when the gateway the tray started exited.
fn exit_note(
    exit: &ChildExit,
    observed: &Observed,
    url: &str,
    log: Option<&Path>,
) -> Option<String> {
    if exit.status.success() {
        return None;
    }
    if exit.ran < EARLY_EXIT && observed.answers() {
        return Some(format!(
            "Another gateway already answers at {url}: the one the tray started exited ({})",
            exit.status
        ));
    }
    let log = log
        .map(|l| format!("; its log: {}", l.display()))
        .unwrap_or_default();
    Some(format!(
        "The gateway the tray started exited ({}){log}",
        exit.status
    ))
}

/// Show `view` unless it is what the item shows already.
async fn show(handle: &ksni::Handle<TrayItem>, shown: &mut View, view: View) {
    if view != *shown {
        *shown = view.clone();
        let _ = handle.update(move |item| item.set_view(view)).await;
    }
}

/// Run the tray for `target` until Quit, Ctrl-C or SIGTERM.
pub async fn run(target: Target) -> Result<(), Error> {
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| Error::Setup(format!("cannot watch for SIGTERM: {e}")))?;
    let client = Arc::new(GatewayClient::new(
        target.url.clone(),
        target.token.clone(),
    )?);

    let mut observed = Observed::NotRunning {
        url: target.url.clone(),
    };
    let mut local = Local::default();
    let mut shown = model::view(&observed, &local);
    let (actions_tx, mut actions) = mpsc::channel::<Action>(16);
    let handle = dbus::show(TrayItem::new(shown.clone(), actions_tx)).await?;
    log(format!("following the gateway at {}", target.url));
    let (mut follower, mut statuses) = follow(&client);

    let (exits_tx, mut exits) = mpsc::channel::<ChildExit>(4);
    let mut power = Power::probe(&target, exits_tx).await;
    local = power.local(false).await;
    show(&handle, &mut shown, model::view(&observed, &local)).await;

    let (notices_tx, notices_rx) = mpsc::channel::<Notice>(32);
    let (pages_tx, mut pages) = mpsc::channel::<Page>(16);
    match zbus::Connection::session().await {
        Ok(conn) => {
            tokio::spawn(crate::notify::run(conn, notices_rx, pages_tx));
        }
        Err(e) => {
            // Notices are dropped from now on, quietly.
            drop(notices_rx);
            log(format!(
                "no desktop notifications: cannot connect to the session bus ({e})"
            ));
        }
    }

    let mut last: Option<Snapshot> = None;
    loop {
        tokio::select! {
            Some(now) = statuses.recv() => {
                if let Observed::Running(s) = &now {
                    for n in notices::notifications(last.as_ref(), s) {
                        if let Err(TrySendError::Full(_)) = notices_tx.try_send(n) {
                            log("too many notifications at once: one was dropped");
                        }
                    }
                    last = Some(s.clone());
                }
                if now.answers() != observed.answers() {
                    local = power.local(now.answers()).await;
                    if now.answers() {
                        log(format!("the gateway at {} answers", target.url));
                    } else {
                        log(format!("the gateway at {} is not running", target.url));
                    }
                }
                if let Observed::Refused { why, .. } = &now {
                    if !matches!(&observed, Observed::Refused { why: was, .. } if was == why) {
                        log(format!("cannot follow the gateway at {}: {why}", target.url));
                    }
                }
                observed = now;
            }
            Some(action) = actions.recv() => match action {
                Action::Quit => break,
                Action::Open(page) => open(&client, &observed, page),
                Action::Start | Action::Stop => {
                    let done = if action == Action::Start {
                        power.start().await
                    } else {
                        power.stop().await
                    };
                    local = power.local(observed.answers()).await;
                    match done {
                        Ok(what) => {
                            log(what);
                            if action == Action::Start {
                                // Look now rather than after the backoff.
                                follower.abort();
                                (follower, statuses) = follow(&client);
                            }
                        }
                        Err(e) => {
                            log(&e);
                            local.note = Some(e.to_string());
                        }
                    }
                }
            },
            Some(page) = pages.recv() => open(&client, &observed, page),
            Some(exit) = exits.recv() => {
                power.child_exited();
                local = power.local(observed.answers()).await;
                local.note = exit_note(&exit, &observed, &target.url, power.log_path());
                if let Some(note) = &local.note {
                    log(note);
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
        show(&handle, &mut shown, model::view(&observed, &local)).await;
    }
    log("quitting");
    follower.abort();
    power.on_quit().await;
    handle.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::time::Duration;

    #[test]
    fn a_started_gateway_that_exits_at_once_while_another_answers_is_named() {
        let url = "http://127.0.0.1:7788";
        let running = Observed::Running(Snapshot::default());
        let down = Observed::NotRunning { url: url.into() };
        let failed = |ran| ChildExit {
            status: ExitStatus::from_raw(1 << 8),
            ran,
        };
        let note = exit_note(&failed(Duration::from_secs(1)), &running, url, None).unwrap();
        assert!(
            note.starts_with("Another gateway already answers at http://127.0.0.1:7788"),
            "{note}"
        );
        let note = exit_note(
            &failed(Duration::from_secs(600)),
            &down,
            url,
            Some(Path::new("/d/gateway.log")),
        )
        .unwrap();
        assert!(note.ends_with("; its log: /d/gateway.log"), "{note}");
        let clean = ChildExit {
            status: ExitStatus::from_raw(0),
            ran: Duration::from_secs(1),
        };
        assert_eq!(exit_note(&clean, &down, url, None), None);
    }
}
