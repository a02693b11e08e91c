//! The inbound pipeline: admit (durable, deduplicated ingress), apply the
//! access policy and rate limit, route to an agent and session, and hand the
//! message to its session actor.
//!
//! The order is chosen so that limits protect before work is done: what the
//! access rules ignore outright is stored without its text (the row is kept
//! for deduplication only); the per-sender rate limit comes before the
//! allowlist lookup and pairing, so a flood from a stranger costs one
//! ingress row per message and nothing more; notices go out through
//! [`notices::Notices`], off the intake path.

pub mod access;
pub mod intake;
pub mod notices;
pub mod pairing;
pub mod ratelimit;
pub mod routing;
mod takeover;
pub use takeover::{leftover, rows};
#[cfg(test)]
mod tests;

use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rand::SeedableRng;
use rand::rngs::StdRng;
use tracing::Instrument as _;

use switchboard_channel::{ChatKind, Inbound, ReplyTarget, Sender};
use switchboard_memory::{
    IngressAccept, IngressRecord, IngressStatus, PairingRequest, Store, StoreError,
};

use crate::approvals::rules::{ChatParty, no_longer_waiting};
use crate::approvals::{Approvals, Resolution};
use crate::audit::{Actor, Audit, action};
use crate::channels::ChannelSet;
use crate::clock::now_ms;
use crate::config::AccessRules;
use crate::sessions::{DispatchError, Job, SessionRegistry};
use crate::telemetry::metrics::ChannelLabels;
use access::{Access, Precheck, precheck};
use notices::Notices;
use pairing::PairingDecision;
use ratelimit::{RateGate, RateVerdict};
use routing::Router;

/// What a sender is told when their message is given up on.
pub const GAVE_UP_NOTICE: &str = "Sorry, I could not answer your last message: answering it failed several times. Please send it again.";

/// Attempts after which a pending message is given up on at restart.
pub const MAX_ATTEMPTS: i64 = 3;

/// What became of an offered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Queued for its session.
    Queued {
        /// The ingress row.
        ingress_id: i64,
        /// The session.
        session_key: String,
        /// The agent.
        agent: String,
    },
    /// Answered by the gateway itself with a notice (an approval command).
    Answered {
        /// The ingress row.
        ingress_id: i64,
        /// The session the command concerned.
        session_key: String,
        /// The agent of that session.
        agent: String,
    },
    /// Seen before; not answered again.
    Duplicate {
        /// The earlier row.
        ingress_id: i64,
        /// Its status.
        status: IngressStatus,
    },
    /// Not for the assistant.
    Ignored {
        /// Why.
        reason: &'static str,
    },
    /// An unknown sender was sent a pairing code (or already holds one).
    Pairing,
    /// The sender is over the rate limit.
    RateLimited,
    /// The session's queue is full; the sender was told.
    Busy,
    /// The gateway is shutting down; the message stays pending and is
    /// answered after the restart.
    Deferred,
}

/// The `reason` label of a message not answered, for
/// `switchboard_messages_rejected_total`.
fn rejection(a: &Admission) -> Option<&'static str> {
    match a {
        Admission::Ignored { .. } => Some("policy"),
        Admission::Pairing => Some("pairing"),
        Admission::RateLimited => Some("rate_limit"),
        Admission::Duplicate { .. } => Some("duplicate"),
        Admission::Busy => Some("busy"),
        Admission::Queued { .. } | Admission::Answered { .. } | Admission::Deferred => None,
    }
}

/// `/approve <id>` or `/deny <id>` (also `/approve@bot <id>`).
fn approval_command(text: &str) -> Option<(bool, &str)> {
    let mut words = text.split_whitespace();
    let cmd = words.next()?.strip_prefix('/')?;
    let cmd = cmd.split('@').next().unwrap_or(cmd);
    let approve = match cmd.to_ascii_lowercase().as_str() {
        "approve" => true,
        "deny" => false,
        _ => return None,
    };
    Some((approve, words.next()?))
}

/// What the ingress queue stores of a message.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct IngressPayload {
    inbound: Inbound,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agent: Option<String>,
    /// The text, files and sender name were left out: the message was
    /// ignored before it was stored, and its row only serves deduplication.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    redacted: bool,
    /// A turn the gateway started itself (a scheduled run, a webhook):
    /// no access rules, this agent and session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scheduled: Option<ScheduledRoute>,
}

/// Where a turn the gateway started itself runs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct ScheduledRoute {
    agent: String,
    session_key: String,
}

impl IngressPayload {
    /// What is kept of a message that is ignored before it is stored: who
    /// and where (what the access rules look at), never what it said.
    fn redacted(m: &Inbound) -> Self {
        Self {
            inbound: Inbound {
                text: String::new(),
                attachments: Vec::new(),
                sender: Sender {
                    name: None,
                    ..m.sender.clone()
                },
                ..m.clone()
            },
            agent: None,
            redacted: true,
            scheduled: None,
        }
    }
}

/// One channel account's access rules and rate limiter.
#[derive(Debug)]
struct AccountAccess {
    rules: AccessRules,
    gate: RateGate,
}

/// The pipeline.
#[derive(Debug)]
pub struct Pipeline {
    store: Arc<dyn Store>,
    channels: ChannelSet,
    sessions: SessionRegistry,
    /// Swapped whole by a config reload.
    router: ArcSwap<Router>,
    /// Swapped whole by a config reload; unchanged accounts keep their
    /// rate limiters.
    access: ArcSwap<HashMap<(String, String), Arc<AccountAccess>>>,
    rng: Mutex<StdRng>,
    approvals: Arc<Approvals>,
    notices: Arc<Notices>,
    /// Where pairing codes issued, approved and denied are recorded.
    audit: Arc<Audit>,
}

impl Pipeline {
    /// A pipeline over the given parts; `access` lists the rules of every
    /// channel account.
    pub fn new(
        store: Arc<dyn Store>,
        channels: ChannelSet,
        sessions: SessionRegistry,
        router: Router,
        access: Vec<((String, String), AccessRules)>,
        approvals: Arc<Approvals>,
        audit: Arc<Audit>,
    ) -> Self {
        let access = access
            .into_iter()
            .map(|(k, rules)| {
                let gate = RateGate::new(rules.rate_limit);
                (k, Arc::new(AccountAccess { rules, gate }))
            })
            .collect();
        Self {
            store,
            notices: Arc::new(Notices::new(channels.clone(), notices::CAPACITY)),
            channels,
            sessions,
            router: ArcSwap::from_pointee(router),
            access: ArcSwap::from_pointee(access),
            rng: Mutex::new(StdRng::from_os_rng()),
            approvals,
            audit,
        }
    }

    /// The queue of notices; its [`Notices::run`] is a supervised task.
    pub fn notices(&self) -> &Arc<Notices> {
        &self.notices
    }

    /// The router in force.
    pub fn router(&self) -> Arc<Router> {
        self.router.load_full()
    }

    /// Route with `router` from now on (a config reload).
    pub fn set_router(&self, router: Router) {
        self.router.store(Arc::new(router));
    }

    /// The channel accounts whose messages are taken in, and their rules,
    /// from now on (a config reload). An account not in `fresh` keeps its
    /// rate limiter; one that is, or is new, starts with an empty one. An
    /// account left out is no longer taken in.
    pub fn set_access(
        &self,
        access: Vec<((String, String), AccessRules)>,
        fresh: &std::collections::HashSet<(String, String)>,
    ) {
        let old = self.access.load();
        let access = access
            .into_iter()
            .map(|(k, rules)| {
                let kept = old.get(&k).filter(|_| !fresh.contains(&k)).cloned();
                let a = kept.unwrap_or_else(|| {
                    let gate = RateGate::new(rules.rate_limit);
                    Arc::new(AccountAccess { rules, gate })
                });
                (k, a)
            })
            .collect();
        self.access.store(Arc::new(access));
    }

    /// The session actors.
    pub fn sessions(&self) -> &SessionRegistry {
        &self.sessions
    }

    /// Offer a message: store it durably (a redelivery is reported as a
    /// duplicate and not answered again), then process it. `agent` asks for
    /// a specific agent (the web chat's `model`); it is ignored when no such
    /// agent exists. A message the access rules ignore outright (group
    /// chatter without a mention, ...) is stored without its text.
    pub async fn admit(
        &self,
        inbound: Inbound,
        agent: Option<String>,
    ) -> Result<Admission, StoreError> {
        let telemetry = &self.sessions.context().telemetry;
        let channel = inbound.channel.clone();
        // One trace per message: its root span lives as long as its job.
        let message = telemetry.message_span(&inbound.channel, &inbound.account);
        telemetry
            .metrics
            .messages_received
            .get_or_create(&ChannelLabels {
                channel: inbound.channel.clone(),
                account: inbound.account.clone(),
            })
            .inc();
        let admit = tracing::info_span!(parent: &message, "admit");
        let admission = self
            .admit_in(inbound, agent, message)
            .instrument(admit)
            .await?;
        if let Some(reason) = rejection(&admission) {
            telemetry.metrics.rejected(&channel, reason);
        }
        Ok(admission)
    }

    async fn admit_in(
        &self,
        inbound: Inbound,
        agent: Option<String>,
        message: tracing::Span,
    ) -> Result<Admission, StoreError> {
        let ignored = self.ignored_outright(&inbound);
        let payload = IngressPayload {
            inbound,
            agent,
            redacted: false,
            scheduled: None,
        };
        let json = match ignored {
            Some(_) => serde_json::to_string(&IngressPayload::redacted(&payload.inbound)),
            None => serde_json::to_string(&payload),
        };
        let IngressPayload { inbound, agent, .. } = payload;
        let payload = json.map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let accepted = self
            .store
            .ingress_accept_as(
                &inbound.channel,
                &inbound.account,
                &inbound.message_id,
                &payload,
                Some(&switchboard_memory::subject_of(
                    &inbound.channel,
                    &inbound.sender.id,
                )),
                now_ms(),
            )
            .await?;
        match accepted {
            IngressAccept::Duplicate { id, status } => {
                tracing::info!(channel = %inbound.channel, message_id = %inbound.message_id, "duplicate delivery ignored");
                Ok(Admission::Duplicate {
                    ingress_id: id,
                    status,
                })
            }
            IngressAccept::Accepted(id) => match ignored {
                Some(reason) => self.ignore(id, reason).await,
                None => {
                    self.process_with(id, inbound, agent, None, None, message)
                        .await
                }
            },
        }
    }

    /// Offer a turn the gateway starts itself (a scheduled run, an inbound
    /// webhook's): stored durably like any message, so that its id runs it
    /// once however often it is offered and a restart finishes it; not
    /// subject to access rules; run by `agent` in `session_key`.
    pub async fn admit_scheduled(
        &self,
        inbound: Inbound,
        agent: String,
        session_key: String,
    ) -> Result<Admission, StoreError> {
        let route = ScheduledRoute { agent, session_key };
        let message = self
            .sessions
            .context()
            .telemetry
            .message_span(&inbound.channel, &inbound.account);
        let payload = IngressPayload {
            inbound,
            agent: None,
            redacted: false,
            scheduled: Some(route.clone()),
        };
        let json =
            serde_json::to_string(&payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let inbound = payload.inbound;
        let accepted = self
            .store
            .ingress_accept_as(
                &inbound.channel,
                &inbound.account,
                &inbound.message_id,
                &json,
                None,
                now_ms(),
            )
            .await?;
        match accepted {
            IngressAccept::Duplicate { id, status } => Ok(Admission::Duplicate {
                ingress_id: id,
                status,
            }),
            IngressAccept::Accepted(id) => Ok(self
                .dispatch_scheduled(id, inbound, route, None, None, message)
                .await?),
        }
    }

    async fn dispatch_scheduled(
        &self,
        ingress_id: i64,
        inbound: Inbound,
        route: ScheduledRoute,
        claim: Option<std::sync::Arc<crate::sessions::delivery::Claim>>,
        resume: Option<String>,
        message: tracing::Span,
    ) -> Result<Admission, StoreError> {
        self.sessions
            .context()
            .telemetry
            .record_session(&message, &route.session_key);
        let job = Job {
            ingress_id,
            inbound,
            agent: route.agent.clone(),
            session_key: route.session_key.clone(),
            claim,
            resume,
            span: message,
            queued: None,
        };
        match self.sessions.dispatch(job) {
            Ok(()) => Ok(Admission::Queued {
                ingress_id,
                session_key: route.session_key,
                agent: route.agent,
            }),
            Err(DispatchError::Busy(_)) => {
                self.store
                    .ingress_finish(
                        ingress_id,
                        IngressStatus::Failed,
                        Some("session queue full"),
                        now_ms(),
                    )
                    .await?;
                Ok(Admission::Busy)
            }
            Err(DispatchError::Closed(_)) => Ok(Admission::Deferred),
        }
    }

    /// Why `m` is not for the assistant, if the access rules say so without
    /// the store.
    fn ignored_outright(&self, m: &Inbound) -> Option<&'static str> {
        let key = (m.channel.clone(), m.account.clone());
        match self.access.load().get(&key) {
            None => Some("unknown channel account"),
            Some(account) => match precheck(&account.rules, m) {
                Precheck::Decided(Access::Ignore(reason)) => Some(reason),
                _ => None,
            },
        }
    }

    /// Process an accepted message: access rules, rate limit, allowlist
    /// and pairing, routing, dispatch.
    pub async fn process(
        &self,
        ingress_id: i64,
        inbound: Inbound,
        agent: Option<String>,
    ) -> Result<Admission, StoreError> {
        let message = self
            .sessions
            .context()
            .telemetry
            .message_span(&inbound.channel, &inbound.account);
        self.process_with(ingress_id, inbound, agent, None, None, message)
            .await
    }

    /// [`process`](Self::process), for a row already claimed (a replayed
    /// one): the claim travels with its job, and the rate limit, which the
    /// row met when it arrived, is not applied again.
    async fn process_with(
        &self,
        ingress_id: i64,
        inbound: Inbound,
        agent: Option<String>,
        claim: Option<std::sync::Arc<crate::sessions::delivery::Claim>>,
        resume: Option<String>,
        message: tracing::Span,
    ) -> Result<Admission, StoreError> {
        let replayed = claim.is_some();
        let key = (inbound.channel.clone(), inbound.account.clone());
        let Some(account) = self.access.load().get(&key).cloned() else {
            return self.ignore(ingress_id, "unknown channel account").await;
        };
        let pre = precheck(&account.rules, &inbound);
        if let Precheck::Decided(Access::Ignore(reason)) = pre {
            return self.ignore(ingress_id, reason).await;
        }
        // Before the allowlist lookup and pairing: a flood costs nothing
        // past its ingress rows.
        match account.gate.check(&inbound.sender.id) {
            _ if replayed => {}
            RateVerdict::Pass => {}
            verdict => {
                if verdict == RateVerdict::LimitedNotify && self.known(pre, &inbound).await? {
                    self.notices
                        .send(&inbound.reply_target(), ratelimit::NOTICE.into())
                        .await;
                }
                self.store
                    .ingress_finish(
                        ingress_id,
                        IngressStatus::Ignored,
                        Some("rate limited"),
                        now_ms(),
                    )
                    .await?;
                return Ok(Admission::RateLimited);
            }
        }
        let verdict = match pre {
            Precheck::Decided(v) => v,
            Precheck::IfAllowlisted { on_miss } => {
                if self.allowlisted(&inbound).await? {
                    Access::Allow
                } else {
                    on_miss
                }
            }
        };
        match verdict {
            Access::Ignore(reason) => return self.ignore(ingress_id, reason).await,
            Access::Pair => return self.pair(ingress_id, &inbound).await,
            Access::Allow => {}
        }
        let route = self.router.load().route_with(&inbound, agent.as_deref());
        if let Some((approve, id)) = approval_command(&inbound.text) {
            // Decided here, not in the session: its turn is waiting on it.
            let who = ChatParty {
                channel: inbound.channel.clone(),
                sender_id: inbound.sender.id.clone(),
                chat_kind: inbound.chat_kind,
                session_key: route.session_key.clone(),
            };
            let text = match self.approvals.resolve_from_chat(id, approve, &who).await? {
                Resolution::Decided(r) if approve => format!("Approved: `{}` runs now.", r.tool),
                Resolution::Decided(r) => format!("Denied: `{}` will not run.", r.tool),
                Resolution::NotWaiting(r) => no_longer_waiting(&r),
                Resolution::Unknown => format!("There is no approval request `{id}`."),
                Resolution::Refused(why) => {
                    tracing::warn!(approval = %id, channel = %who.channel, sender = %who.sender_id, "approval refused: not an approver");
                    why
                }
            };
            self.notices.send(&inbound.reply_target(), text).await;
            self.store
                .ingress_finish(ingress_id, IngressStatus::Done, None, now_ms())
                .await?;
            return Ok(Admission::Answered {
                ingress_id,
                session_key: route.session_key,
                agent: route.agent,
            });
        }
        self.sessions
            .context()
            .telemetry
            .record_session(&message, &route.session_key);
        let job = Job {
            ingress_id,
            inbound,
            agent: route.agent.clone(),
            session_key: route.session_key.clone(),
            claim,
            resume,
            span: message,
            queued: None,
        };
        match self.sessions.dispatch(job) {
            Ok(()) => Ok(Admission::Queued {
                ingress_id,
                session_key: route.session_key,
                agent: route.agent,
            }),
            Err(DispatchError::Busy(job)) => {
                self.notices
                    .send(
                        &job.inbound.reply_target(),
                        crate::sessions::BUSY_NOTICE.into(),
                    )
                    .await;
                self.store
                    .ingress_finish(
                        ingress_id,
                        IngressStatus::Failed,
                        Some("session queue full"),
                        now_ms(),
                    )
                    .await?;
                Ok(Admission::Busy)
            }
            Err(DispatchError::Closed(_)) => Ok(Admission::Deferred),
        }
    }

    /// Whether the sender of `m` may talk to the assistant (so may be told
    /// they are rate limited; a stranger is not).
    async fn known(&self, pre: Precheck, m: &Inbound) -> Result<bool, StoreError> {
        Ok(match pre {
            Precheck::Decided(v) => v == Access::Allow,
            Precheck::IfAllowlisted { .. } => self.allowlisted(m).await?,
        })
    }

    async fn allowlisted(&self, m: &Inbound) -> Result<bool, StoreError> {
        self.store
            .allow_contains(&m.channel, &m.account, &m.sender.id)
            .await
    }

    async fn ignore(&self, ingress_id: i64, reason: &'static str) -> Result<Admission, StoreError> {
        tracing::debug!(ingress_id, reason, "message ignored");
        self.store
            .ingress_finish(ingress_id, IngressStatus::Ignored, Some(reason), now_ms())
            .await?;
        Ok(Admission::Ignored { reason })
    }

    async fn pair(&self, ingress_id: i64, m: &Inbound) -> Result<Admission, StoreError> {
        let now = now_ms();
        let pending: Vec<PairingRequest> = self
            .store
            .pairing_list(Some(&m.channel), now)
            .await?
            .into_iter()
            .filter(|r| r.account == m.account)
            .collect();
        let decision = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            pairing::decide(&pending, &m.sender.id, now, &mut *rng)
        };
        match decision {
            PairingDecision::Issue { code, expires_at } => {
                self.store
                    .pairing_insert(PairingRequest {
                        channel: m.channel.clone(),
                        account: m.account.clone(),
                        sender_id: m.sender.id.clone(),
                        sender_name: m.sender.name.clone(),
                        chat_id: m.chat_id.clone(),
                        code: code.clone(),
                        created_at: now,
                        expires_at,
                    })
                    .await?;
                tracing::info!(channel = %m.channel, account = %m.account, sender = %m.sender.id, "pairing code issued");
                let sender = crate::approvals::rules::sender_ref(&m.channel, &m.sender.id);
                self.audit
                    .record(
                        &Actor::chat(&m.channel, &sender),
                        action::PAIRING_ISSUED,
                        &sender,
                        serde_json::json!({ "account": m.account, "expires_at": expires_at }),
                    )
                    .await;
                self.notices
                    .send(&m.reply_target(), pairing::code_message(&m.channel, &code))
                    .await;
            }
            PairingDecision::AlreadyPending => {}
            PairingDecision::QueueFull => {
                tracing::warn!(channel = %m.channel, account = %m.account, "pairing queue full; unknown sender ignored");
            }
        }
        self.store
            .ingress_finish(
                ingress_id,
                IngressStatus::Ignored,
                Some("awaiting pairing"),
                now_ms(),
            )
            .await?;
        Ok(Admission::Pairing)
    }

    /// Approve a pairing code: the sender joins the allowlist and is told.
    /// Recorded in the audit log as done `by` (whose id is stored as who
    /// added the sender).
    pub async fn approve_pairing(
        &self,
        channel: &str,
        code: &str,
        by: &Actor,
    ) -> Result<Option<PairingRequest>, StoreError> {
        let code = pairing::normalize_code(code);
        let approved = self
            .store
            .pairing_approve(channel, &code, &by.id, now_ms())
            .await?;
        if let Some(r) = &approved {
            tracing::info!(channel, account = %r.account, sender = %r.sender_id, by = %by.id, "pairing approved");
            self.audit
                .record(
                    by,
                    action::PAIRING_APPROVED,
                    &crate::approvals::rules::sender_ref(&r.channel, &r.sender_id),
                    serde_json::json!({ "account": r.account }),
                )
                .await;
            let target = ReplyTarget {
                channel: r.channel.clone(),
                account: r.account.clone(),
                chat_kind: ChatKind::Dm,
                chat_id: r.chat_id.clone(),
                thread_id: None,
                reply_to: None,
                resume: None,
            };
            self.channels
                .notify(
                    &target,
                    "You're approved. Send your message again and I'll answer.".into(),
                )
                .await;
        }
        Ok(approved)
    }

    /// Deny a pairing code (recorded in the audit log as done `by`).
    pub async fn deny_pairing(
        &self,
        channel: &str,
        code: &str,
        by: &Actor,
    ) -> Result<Option<PairingRequest>, StoreError> {
        let code = pairing::normalize_code(code);
        let denied = self.store.pairing_deny(channel, &code, now_ms()).await?;
        if let Some(r) = &denied {
            self.audit
                .record(
                    by,
                    action::PAIRING_DENIED,
                    &crate::approvals::rules::sender_ref(&r.channel, &r.sender_id),
                    serde_json::json!({ "account": r.account }),
                )
                .await;
        }
        Ok(denied)
    }

    /// Pick up messages accepted before a stop and not answered. Returns how
    /// many were handed on.
    pub async fn replay_pending(&self) -> Result<usize, StoreError> {
        let rows = self.store.ingress_pending().await?;
        self.replay(rows).await
    }

    /// Hand on `rows`, the pending rows read at start-up before any intake
    /// began (rows accepted since are already on their way and must not be
    /// handed on twice). Returns how many were handed on.
    pub async fn replay(&self, rows: Vec<IngressRecord>) -> Result<usize, StoreError> {
        let ctx = self.sessions.context().clone();
        let mut n = 0;
        // Stored answers owed, one per answer: the rows a batch answered
        // share it, and it goes once, to the batch's last message.
        let mut owed: Vec<crate::sessions::delivery::Owed> = Vec::new();
        let mut owed_by_answer: HashMap<i64, usize> = HashMap::new();
        for row in rows {
            // Owned first, then read again: the list may be older than a
            // turn that finished meanwhile.
            let Some(claim) = ctx.claims.claim(row.id) else {
                continue; // someone here is on it
            };
            let row = match self.store.ingress_get(row.id).await? {
                Some(fresh) if fresh.status == IngressStatus::Pending => fresh,
                _ => continue,
            };
            if row.attempts >= MAX_ATTEMPTS {
                tracing::warn!(
                    ingress_id = row.id,
                    attempts = row.attempts,
                    "giving up on a message that failed repeatedly"
                );
                self.store
                    .ingress_finish(
                        row.id,
                        IngressStatus::Failed,
                        Some("gave up after repeated attempts"),
                        now_ms(),
                    )
                    .await?;
                // Tell the sender rather than drop their message silently.
                if let Ok(p) = serde_json::from_str::<IngressPayload>(&row.payload)
                    && !p.redacted
                {
                    self.notices
                        .send(&p.inbound.reply_target(), GAVE_UP_NOTICE.into())
                        .await;
                }
                continue;
            }
            let payload: IngressPayload = match serde_json::from_str(&row.payload) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(ingress_id = row.id, error = %e, "unreadable ingress row");
                    self.store
                        .ingress_finish(
                            row.id,
                            IngressStatus::Failed,
                            Some("unreadable payload"),
                            now_ms(),
                        )
                        .await?;
                    continue;
                }
            };
            if payload.redacted {
                // Ignored before it was stored; a stop came before the row
                // was closed.
                self.ignore(row.id, "ignored before it was stored").await?;
                continue;
            }
            if let Some(answer) = self.store.answer_for_ingress(row.id).await? {
                // Answered and stored, but the reply was not confirmed
                // delivered: deliver the stored answer (again, with backoff,
                // until it goes out), never asking the model again.
                let per_message = self
                    .channels
                    .get(&payload.inbound.channel, &payload.inbound.account)
                    .is_some_and(|c| c.reply_per_message());
                if per_message {
                    // Its caller is gone; a repeat of the request (same
                    // Idempotency-Key) gets the stored answer.
                    self.store
                        .ingress_finish(
                            row.id,
                            IngressStatus::Failed,
                            Some("reply not delivered"),
                            now_ms(),
                        )
                        .await?;
                    continue;
                }
                match owed_by_answer.get(&answer.seq) {
                    Some(&i) => {
                        let o = &mut owed[i];
                        o.target = payload.inbound.reply_target();
                        o.target.resume.clone_from(&row.reply_message_id);
                        o.rows.push(row.id);
                        o.claims.push(claim);
                    }
                    None => {
                        owed_by_answer.insert(answer.seq, owed.len());
                        let mut target = payload.inbound.reply_target();
                        target.resume.clone_from(&row.reply_message_id);
                        owed.push(crate::sessions::delivery::Owed {
                            target,
                            text: answer.content,
                            rows: vec![row.id],
                            claims: vec![claim],
                            last_error: String::new(),
                            sink: None,
                        });
                    }
                }
                continue;
            }
            let message = ctx
                .telemetry
                .message_span(&payload.inbound.channel, &payload.inbound.account);
            match payload.scheduled {
                Some(route) => {
                    self.dispatch_scheduled(
                        row.id,
                        payload.inbound,
                        route,
                        Some(claim),
                        row.reply_message_id.clone(),
                        message,
                    )
                    .await?;
                }
                None => {
                    self.process_with(
                        row.id,
                        payload.inbound,
                        payload.agent,
                        Some(claim),
                        row.reply_message_id.clone(),
                        message,
                    )
                    .await?;
                }
            }
            n += 1;
        }
        for o in owed {
            ctx.deliveries.deliver(o);
        }
        if n > 0 {
            tracing::info!(
                count = n,
                "picked up messages left unanswered at the last stop"
            );
        }
        Ok(n)
    }

    /// Pick up pending rows that nobody in this process owns and that were
    /// accepted more than `grace` ago: their admission failed after the
    /// ingress write, or their actor died. Returns how many were handed on.
    pub async fn sweep_unowned(&self, grace: std::time::Duration) -> Result<usize, StoreError> {
        let claims = self.sessions.context().claims.clone();
        let before = now_ms() - i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
        let rows: Vec<IngressRecord> = self
            .store
            .ingress_pending()
            .await?
            .into_iter()
            .filter(|r| r.received_at < before && r.updated_at < before && !claims.is_claimed(r.id))
            .collect();
        if rows.is_empty() {
            return Ok(0);
        }
        tracing::warn!(
            count = rows.len(),
            "picking up messages that were accepted but had no one working on them"
        );
        self.replay(rows).await
    }

    /// Periodic upkeep: forget quiet senders, purge expired pairing codes,
    /// prune old finished ingress rows.
    pub async fn upkeep(&self, ingress_retention_ms: i64) -> Result<(), StoreError> {
        for a in self.access.load().values() {
            a.gate.forget_idle();
        }
        let now = now_ms();
        self.store.pairing_purge_expired(now).await?;
        self.store.ingress_prune(now - ingress_retention_ms).await?;
        Ok(())
    }
}
