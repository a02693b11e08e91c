//! Retention: deletes stored records older than `[retention]` allows —
//! finished ingress rows, transcript entries, usage records, decided
//! approval requests and audit records — a minute after start and then
//! every hour, as a task under the supervisor, logging what it removed.
//!
//! The audit log is pruned from its start only, behind a signed
//! checkpoint, so what is left still verifies; a log whose chain is broken
//! is not pruned at all (the evidence stays, and the error is logged).
//!
//! What the gateway still needs is never deleted however old: a pending
//! ingress row (a message owed an answer), the transcript entries of its
//! stored answer, and a pending approval request. The store's prune
//! methods guarantee that; this module decides only when to prune and
//! where each cutoff lies. The schedule runs on tokio time (tested with
//! the clock paused); the cutoffs are computed from a `now` passed in.
//!
//! It is the one place that decides how long ingress rows are kept:
//! `serve` hands the same period to the pipeline's upkeep.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use switchboard_memory::{Store, StoreError};

use crate::audit::{Audit, AuditError};
use crate::clock::now_ms;
use crate::config::RetentionConfig;

/// How long after start the first pass runs: not while the gateway
/// replays what the last run left unanswered, but still on a gateway that
/// is restarted more often than every hour.
pub const FIRST_PASS_AFTER: Duration = Duration::from_secs(60);
/// How often the store is pruned after that.
pub const EVERY: Duration = Duration::from_secs(3600);

const DAY_MS: i64 = 24 * 3600 * 1000;

/// How long each kind of record is kept, in milliseconds; `None` keeps
/// it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Finished ingress rows, counted from their last change.
    pub ingress_ms: i64,
    /// Transcript entries, counted from when they were stored.
    pub transcript_ms: Option<i64>,
    /// Usage records, counted from their turn.
    pub usage_ms: Option<i64>,
    /// Decided approval requests, counted from their decision.
    pub approvals_ms: Option<i64>,
    /// Audit records, counted from when they happened.
    pub audit_ms: Option<i64>,
}

fn days_ms(days: u32) -> i64 {
    i64::from(days).saturating_mul(DAY_MS)
}

impl From<&RetentionConfig> for Retention {
    fn from(c: &RetentionConfig) -> Self {
        Self {
            ingress_ms: days_ms(c.ingress_days.max(1)),
            transcript_ms: c.transcript_days.map(days_ms),
            usage_ms: c.usage_days.map(days_ms),
            approvals_ms: c.approvals_days.map(days_ms),
            audit_ms: c.audit_days.map(days_ms),
        }
    }
}

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Finished ingress rows.
    pub ingress: u64,
    /// Transcript entries.
    pub transcript: u64,
    /// Usage records.
    pub usage: u64,
    /// Decided approval requests.
    pub approvals: u64,
    /// Audit records (a checkpoint stands in for them).
    pub audit: u64,
}

impl Pruned {
    /// Records removed in all.
    pub fn total(&self) -> u64 {
        self.ingress + self.transcript + self.usage + self.approvals + self.audit
    }
}

/// Delete from `store` what `retention` no longer keeps at `now` (ms
/// since the epoch).
pub async fn prune(
    store: &dyn Store,
    retention: &Retention,
    now: i64,
) -> Result<Pruned, StoreError> {
    let cutoff = |kept: i64| now.saturating_sub(kept);
    let mut pruned = Pruned {
        ingress: store.ingress_prune(cutoff(retention.ingress_ms)).await?,
        ..Pruned::default()
    };
    if let Some(kept) = retention.transcript_ms {
        pruned.transcript = store.transcript_prune(cutoff(kept)).await?;
    }
    if let Some(kept) = retention.usage_ms {
        pruned.usage = store.usage_prune(cutoff(kept)).await?;
    }
    if let Some(kept) = retention.approvals_ms {
        pruned.approvals = store.approvals_prune(cutoff(kept)).await?;
    }
    Ok(pruned)
}

/// Run `pass` `first` from now and then every `every` until `stop` is
/// cancelled. A pass that takes longer than `every` delays the next
/// rather than making up for it. A failed pass ends the schedule with its
/// error, for the supervisor to show and restart.
pub async fn schedule<F, Fut>(
    first: Duration,
    every: Duration,
    stop: CancellationToken,
    mut pass: F,
) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut ticks = tokio::time::interval_at(Instant::now() + first, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = ticks.tick() => {}
        }
        pass().await?;
    }
}

/// Prune the audit log as `retention` says at `now`: its records from
/// before the cutoff, behind a checkpoint. A broken chain is not pruned
/// (and says so in the log); that is not a failure of the pass.
pub async fn prune_audit(audit: &Audit, retention: &Retention, now: i64) -> Result<u64, String> {
    let Some(kept) = retention.audit_ms else {
        return Ok(0);
    };
    match audit.prune(now.saturating_sub(kept), now).await {
        Ok(n) => Ok(n),
        Err(AuditError::Broken(b)) => {
            tracing::error!(broken = %b, "the audit log's chain is broken, so it is not pruned: run `switchboard audit verify`");
            Ok(0)
        }
        Err(e) => Err(format!("cannot prune the audit log: {e}")),
    }
}

/// The retention task: prune `store` (and its audit log, `audit`) as
/// `retention` says on the [`FIRST_PASS_AFTER`] / [`EVERY`] schedule
/// until `stop`.
pub async fn run(
    store: Arc<dyn Store>,
    audit: Arc<Audit>,
    retention: Retention,
    stop: CancellationToken,
) -> Result<(), String> {
    schedule(FIRST_PASS_AFTER, EVERY, stop, || {
        pass(store.clone(), audit.clone(), retention)
    })
    .await
}

/// One pass of [`run`], logging what it removed.
async fn pass(
    store: Arc<dyn Store>,
    audit: Arc<Audit>,
    retention: Retention,
) -> Result<(), String> {
    let now = now_ms();
    let mut pruned = prune(&*store, &retention, now)
        .await
        .map_err(|e| format!("cannot prune records past their retention: {e}"))?;
    pruned.audit = prune_audit(&audit, &retention, now).await?;
    if pruned.total() > 0 {
        tracing::info!(
            ingress = pruned.ingress,
            transcript = pruned.transcript,
            usage = pruned.usage,
            approvals = pruned.approvals,
            audit = pruned.audit,
            "removed records older than [retention] keeps"
        );
    } else {
        tracing::debug!("nothing older than [retention] keeps");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use switchboard_memory::{
        ApprovalRecord, IngressAccept, IngressStatus, Role, SqliteStore, TokenCounts, TurnCommit,
        TurnEntry, TurnUsage,
    };
    use tokio::sync::mpsc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_first_pass_comes_after_a_minute_then_one_every_hour() {
        let start = Instant::now();
        let (tx, mut passes) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let task = tokio::spawn(schedule(FIRST_PASS_AFTER, EVERY, stop.clone(), move || {
            let _ = tx.send(Instant::now());
            async { Ok::<(), String>(()) }
        }));
        let mut at = Vec::new();
        for _ in 0..3 {
            at.push(passes.recv().await.expect("a pass") - start);
        }
        let expected = [60, 3660, 7260].map(Duration::from_secs);
        for (got, want) in at.iter().zip(expected) {
            assert!(
                *got >= want && *got < want + Duration::from_millis(10),
                "passes at {at:?}, expected {expected:?}"
            );
        }
        stop.cancel();
        assert_eq!(task.await.unwrap(), Ok(()));
        assert!(passes.try_recv().is_err(), "a pass ran after the stop");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_pass_ends_the_task_with_its_error() {
        let runs = Arc::new(AtomicU32::new(0));
        let counted = runs.clone();
        let result = schedule(Duration::ZERO, EVERY, CancellationToken::new(), move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), String>("the database is locked".to_string()) }
        })
        .await;
        assert_eq!(result, Err("the database is locked".to_string()));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_defaults_keep_a_week_of_ingress_and_everything_else() {
        let r = Retention::from(&RetentionConfig::default());
        assert_eq!(r.ingress_ms, 7 * DAY_MS);
        assert_eq!(
            (r.transcript_ms, r.usage_ms, r.approvals_ms, r.audit_ms),
            (None, None, None, None)
        );
    }

    #[tokio::test]
    async fn each_cutoff_follows_its_setting_and_unset_keeps_forever() {
        let store = SqliteStore::in_memory().await.unwrap();
        let now = 100 * DAY_MS;
        let ago = |days: i64| now - days * DAY_MS;
        for (m, finished) in [("week-old", Some(8)), ("recent", Some(6)), ("owed", None)] {
            let IngressAccept::Accepted(id) = store
                .ingress_accept("slack", "main", m, "{}", 0)
                .await
                .unwrap()
            else {
                panic!("accepted")
            };
            if let Some(days) = finished {
                store
                    .ingress_finish(id, IngressStatus::Done, None, ago(days))
                    .await
                    .unwrap();
            }
        }
        let s = store.session_open("k", "main", 0).await.unwrap();
        store
            .commit_turn(TurnCommit {
                session_id: s.session_id.clone(),
                entries: vec![TurnEntry {
                    role: Role::System,
                    content: "a note".into(),
                    ingress_id: None,
                }],
                ingress_ids: vec![],
                status: IngressStatus::Done,
                error: None,
                now: ago(40),
                usage: Some(TurnUsage {
                    agent: "main".into(),
                    session_key: "k".into(),
                    tokens: TokenCounts {
                        input_tokens: 10,
                        output_tokens: 1,
                        cached_tokens: 0,
                        turns: 1,
                        cost_micros: 0,
                    },
                }),
            })
            .await
            .unwrap();
        store
            .approval_insert(ApprovalRecord {
                id: "decided".into(),
                session_key: "k".into(),
                agent: "main".into(),
                tool: "exec".into(),
                arguments: "{}".into(),
                status: "approved".into(),
                decided_by: Some("cli".into()),
                created_at: ago(41),
                expires_at: ago(40),
                decided_at: Some(ago(40)),
            })
            .await
            .unwrap();

        let defaults = Retention::from(&RetentionConfig::default());
        assert_eq!(
            prune(&store, &defaults, now).await.unwrap(),
            Pruned {
                ingress: 1,
                ..Pruned::default()
            },
            "the defaults prune only finished ingress rows over a week old"
        );
        let month = Retention::from(&RetentionConfig {
            ingress_days: 7,
            transcript_days: Some(30),
            usage_days: Some(30),
            approvals_days: Some(30),
            ..RetentionConfig::default()
        });
        assert_eq!(
            prune(&store, &month, now).await.unwrap(),
            Pruned {
                ingress: 0,
                transcript: 1,
                usage: 1,
                approvals: 1,
                audit: 0,
            }
        );
        assert_eq!(
            store.ingress_pending().await.unwrap().len(),
            1,
            "the message owed an answer was pruned"
        );
    }

    #[tokio::test]
    async fn the_audit_log_is_pruned_behind_a_checkpoint_and_still_verifies() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
        let audit = Audit::new(store.clone(), crate::audit::AuditKey::random());
        let now = 100 * DAY_MS;
        for days in [40, 35, 20, 1] {
            audit
                .append_at(
                    now - days * DAY_MS,
                    &crate::audit::Actor::cli(),
                    "secret.set",
                    "token",
                    &serde_json::json!({}),
                )
                .await
                .unwrap();
        }
        let forever = Retention::from(&RetentionConfig::default());
        assert_eq!(prune_audit(&audit, &forever, now).await, Ok(0));
        let month = Retention {
            audit_ms: Some(30 * DAY_MS),
            ..forever
        };
        assert_eq!(prune_audit(&audit, &month, now).await, Ok(2));
        let v = audit.verify().await.unwrap();
        assert_eq!((v.records, v.broken.as_ref()), (2, None), "{}", v.summary());
        assert_eq!(v.checkpoint.map(|c| c.seq), Some(2));
    }
}
