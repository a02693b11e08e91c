//! Sign-in of browsers: server-side sessions behind an `HttpOnly`,
//! `SameSite=Strict` cookie, one-time sign-in links (`switchboard ui`), and
//! short-lived WebSocket tickets, so no long-lived token sits in a URL.
//!
//! Only SHA-256 digests of cookie values and tickets are held, in memory and
//! in `<data_dir>/ui-sessions.json` (mode 0600): a copy of that file signs no
//! one in. Sessions survive a restart of the gateway, so open pages
//! reconnect by themselves.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::now_ms;

/// The cookie that carries a browser's session.
pub const COOKIE: &str = "switchboard_session";
/// How long a one-time sign-in link is valid.
pub const TICKET_MS: i64 = 5 * 60 * 1000;
/// How long a WebSocket ticket is valid.
pub const WS_TICKET_MS: i64 = 60 * 1000;
/// A session's last use is written to disk at most this often.
const PERSIST_TOUCH_MS: i64 = 60 * 1000;
/// At most this many sessions are kept; the least recently used goes first.
const MAX_SESSIONS: usize = 1000;
/// At most this many unused tickets of each kind are kept.
const MAX_TICKETS: usize = 1000;

/// A signed-in browser, as the handlers see it.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The digest of its cookie value (the session's name on the server).
    pub id: String,
    /// The token every state-changing request of this session carries.
    pub csrf: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Session {
    /// A digest of the control token it was signed in under: a changed
    /// token signs every browser out.
    #[serde(default)]
    token: String,
    csrf: String,
    created_ms: i64,
    last_seen_ms: i64,
    #[serde(skip)]
    persisted_seen_ms: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    sessions: HashMap<String, Session>,
}

/// The browser sessions and tickets of one gateway.
#[derive(Debug)]
pub struct UiAuth {
    sessions: Mutex<HashMap<String, Session>>,
    sign_in_tickets: Mutex<HashMap<String, i64>>,
    ws_tickets: Mutex<HashMap<String, i64>>,
    file: Option<PathBuf>,
    idle_ms: i64,
    token: String,
    /// Held while the file is written: one writer at a time, each writing
    /// what the sessions are when it writes.
    writing: Mutex<()>,
}

/// A random value of 32 bytes, as hex.
fn random_hex() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 digest of `value`, as hex.
fn digest(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl UiAuth {
    /// Sessions kept in `file` (none: in memory only), ending after
    /// `idle_hours` without use or when the control `token` changes.
    pub fn new(file: Option<PathBuf>, idle_hours: u64, token: &str) -> Self {
        let token = digest(token);
        let idle_ms =
            i64::try_from(idle_hours.max(1).saturating_mul(3_600_000)).unwrap_or(i64::MAX);
        let mut sessions = HashMap::new();
        if let Some(path) = &file {
            match std::fs::read(path) {
                Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                    Ok(saved) => {
                        let now = now_ms();
                        sessions = saved
                            .sessions
                            .into_iter()
                            .filter(|(_, s)| now - s.last_seen_ms < idle_ms && s.token == token)
                            .map(|(k, mut s)| {
                                s.persisted_seen_ms = s.last_seen_ms;
                                (k, s)
                            })
                            .collect();
                    }
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "the saved browser sessions cannot be read; browsers sign in again")
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "the saved browser sessions cannot be read; browsers sign in again")
                }
            }
        }
        Self {
            sessions: Mutex::new(sessions),
            sign_in_tickets: Mutex::default(),
            ws_tickets: Mutex::default(),
            file,
            idle_ms,
            token,
            writing: Mutex::new(()),
        }
    }

    /// Start a session: the cookie value to set, and the session.
    pub fn sign_in(&self) -> (String, Signed) {
        let value = random_hex();
        let id = digest(&value);
        let now = now_ms();
        let session = Session {
            token: self.token.clone(),
            csrf: random_hex(),
            created_ms: now,
            last_seen_ms: now,
            persisted_seen_ms: now,
        };
        let signed = Signed {
            id: id.clone(),
            csrf: session.csrf.clone(),
        };
        {
            let mut map = self.lock();
            map.retain(|_, s| now - s.last_seen_ms < self.idle_ms);
            if map.len() >= MAX_SESSIONS {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, s)| s.last_seen_ms)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&oldest);
                }
            }
            map.insert(id, session);
        }
        self.persist();
        (value, signed)
    }

    /// The session of a cookie value, if it is live; using it keeps it so.
    pub fn check(&self, cookie_value: &str) -> Option<Signed> {
        let id = digest(cookie_value);
        let now = now_ms();
        let mut persist = false;
        let signed = {
            let mut map = self.lock();
            let session = map.get_mut(&id)?;
            if now - session.last_seen_ms >= self.idle_ms {
                map.remove(&id);
                persist = true;
                None
            } else {
                session.last_seen_ms = now;
                if now - session.persisted_seen_ms >= PERSIST_TOUCH_MS {
                    session.persisted_seen_ms = now;
                    persist = true;
                }
                Some(Signed {
                    id,
                    csrf: session.csrf.clone(),
                })
            }
        };
        if persist {
            self.persist();
        }
        signed
    }

    /// Whether the session `id` (a [`Signed::id`]) is still signed in, for
    /// streams that outlive the request that opened them.
    pub fn is_live(&self, id: &str) -> bool {
        let now = now_ms();
        self.lock()
            .get(id)
            .is_some_and(|s| now - s.last_seen_ms < self.idle_ms)
    }

    /// End the session `id` (a [`Signed::id`]).
    pub fn sign_out(&self, id: &str) {
        let removed = self.lock().remove(id).is_some();
        if removed {
            self.persist();
        }
    }

    /// A one-time sign-in ticket, valid for [`TICKET_MS`].
    pub fn issue_sign_in_ticket(&self) -> String {
        issue(&self.sign_in_tickets, TICKET_MS)
    }

    /// Use a sign-in ticket: true once, while it is valid.
    pub fn redeem_sign_in_ticket(&self, ticket: &str) -> bool {
        redeem(&self.sign_in_tickets, ticket)
    }

    /// A one-time WebSocket ticket, valid for [`WS_TICKET_MS`].
    pub fn issue_ws_ticket(&self) -> String {
        issue(&self.ws_tickets, WS_TICKET_MS)
    }

    /// Use a WebSocket ticket: true once, while it is valid.
    pub fn redeem_ws_ticket(&self, ticket: &str) -> bool {
        redeem(&self.ws_tickets, ticket)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write the sessions to their file: a new file renamed over the old,
    /// so a crash leaves one or the other whole.
    fn persist(&self) {
        let Some(path) = &self.file else { return };
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let saved = Saved {
            sessions: self.lock().clone(),
        };
        let Ok(bytes) = serde_json::to_vec(&saved) else {
            return;
        };
        let tmp = path.with_extension("json.tmp");
        let written = (|| -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if let Err(e) = written {
            tracing::warn!(file = %path.display(), error = %e, "cannot save the browser sessions; they end when the gateway stops");
        }
    }
}

fn issue(tickets: &Mutex<HashMap<String, i64>>, valid_ms: i64) -> String {
    let ticket = random_hex();
    let now = now_ms();
    let mut map = tickets.lock().unwrap_or_else(|e| e.into_inner());
    map.retain(|_, expires| *expires > now);
    if map.len() >= MAX_TICKETS {
        if let Some(first) = map.iter().min_by_key(|(_, e)| **e).map(|(k, _)| k.clone()) {
            map.remove(&first);
        }
    }
    map.insert(digest(&ticket), now + valid_ms);
    ticket
}

fn redeem(tickets: &Mutex<HashMap<String, i64>>, ticket: &str) -> bool {
    let mut map = tickets.lock().unwrap_or_else(|e| e.into_inner());
    map.remove(&digest(ticket))
        .is_some_and(|expires| expires > now_ms())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_session_survives_a_restart_and_ends_at_sign_out() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ui-sessions.json");
        let auth = UiAuth::new(Some(file.clone()), 12, "tok");
        let (cookie, signed) = auth.sign_in();
        assert_eq!(auth.check(&cookie).unwrap().csrf, signed.csrf);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains(&cookie), "the file holds digests only");
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );

        let again = UiAuth::new(Some(file.clone()), 12, "tok");
        assert!(
            UiAuth::new(Some(file.clone()), 12, "a new token")
                .check(&cookie)
                .is_none(),
            "a changed token signs browsers out"
        );
        let s = again.check(&cookie).expect("signed in after a restart");
        assert_eq!(s.csrf, signed.csrf);
        again.sign_out(&s.id);
        assert!(again.check(&cookie).is_none());
        assert!(UiAuth::new(Some(file), 12, "tok").check(&cookie).is_none());
        assert!(again.check("not-a-session").is_none());
    }

    #[test]
    fn tickets_work_once() {
        let auth = UiAuth::new(None, 12, "tok");
        let t = auth.issue_sign_in_ticket();
        assert!(!auth.redeem_ws_ticket(&t), "kinds do not mix");
        assert!(auth.redeem_sign_in_ticket(&t));
        assert!(!auth.redeem_sign_in_ticket(&t), "used once");
        let w = auth.issue_ws_ticket();
        assert!(auth.redeem_ws_ticket(&w));
        assert!(!auth.redeem_ws_ticket(&w));
    }
}
