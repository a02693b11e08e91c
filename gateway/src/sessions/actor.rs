//! One session's actor: takes jobs from its mailbox, queues them per the
//! queue mode, and runs one turn at a time (the turn itself is `turn.rs`).

use std::sync::atomic::Ordering;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use switchboard_memory::IngressStatus;

use super::queue::{Offer, TurnQueue};
use super::slot::RunSlot;
use super::turn::run_batch;
use super::{Job, SessionRegistry, TurnContext};
use crate::clock::now_ms;

/// How often a session busy on another replica is asked for again.
const SESSION_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// The notice for a message refused because its session's queue is full.
pub(crate) const BUSY_NOTICE: &str = "I'm still working through your earlier messages and can't take this one now. Please send it again in a moment.";

pub(super) async fn run(registry: SessionRegistry, key: String, mut rx: mpsc::Receiver<Box<Job>>) {
    let ctx = registry.context().clone();
    let mut queue = TurnQueue::new(ctx.queue_mode, ctx.mailbox);
    let span = tracing::info_span!("session", session_key = %key);
    async move {
        // For replicas: held while this actor has turns to run, so that
        // another replica's turns of the session wait (and ours wait for
        // its).
        let mut lease: Option<crate::cluster::Lease> = None;
        loop {
            if queue.is_empty() {
                tokio::select! {
                    job = rx.recv() => match job {
                        Some(job) => { offer(&ctx, &mut queue, *job, false).await; }
                        None => break,
                    },
                    () = tokio::time::sleep(ctx.actor_idle) => match registry.retire(&key, &mut rx) {
                        Some(job) => { offer(&ctx, &mut queue, *job, false).await; }
                        None => break,
                    },
                    () = ctx.draining.cancelled() => break,
                }
                continue;
            }
            if ctx.draining.is_cancelled() {
                break; // what waits stays pending in the ingress queue
            }
            if let Some(cluster) = &ctx.cluster
                && lease.as_ref().is_none_or(|l| l.lost().is_cancelled())
            {
                let name = crate::cluster::session_lease(&key);
                match cluster.hold(&name, SESSION_POLL, &ctx.draining).await {
                    Some(l) => lease = Some(l),
                    None => break,
                }
            }
            let batch = queue.next_batch();
            ctx.runs_waiting.fetch_add(1, Ordering::Relaxed);
            let permit = tokio::select! {
                p = ctx.runs.clone().acquire_owned() => p,
                () = ctx.draining.cancelled() => {
                    ctx.runs_waiting.fetch_sub(1, Ordering::Relaxed);
                    break;
                }
            };
            ctx.runs_waiting.fetch_sub(1, Ordering::Relaxed);
            let Ok(permit) = permit else { break };
            // Given back while the turn waits for an approval.
            let slot = RunSlot::new(ctx.runs.clone(), permit);
            let interrupt = ctx.hard_stop.child_token();
            registry.turn_started(&key, interrupt.clone());
            // Boxed: the turn's state is large and an idle actor, which
            // may wait minutes for its next message, should not keep room
            // for it.
            let mut turn = Box::pin(run_batch(
                &ctx,
                &key,
                batch,
                interrupt.clone(),
                slot.clone(),
            ));
            let mut mailbox_open = true;
            // A lost session lease (another replica may run the session
            // now) drops the turn where it is, storing nothing: its
            // messages stay pending for whoever runs the session next.
            let lost = lease
                .as_ref()
                .map_or_else(CancellationToken::new, |l| l.lost().clone());
            loop {
                tokio::select! {
                    () = &mut turn => {
                        registry.turn_ended(&key);
                        break;
                    }
                    () = lost.cancelled() => {
                        tracing::warn!("lost the session's lease; its turn is dropped and its messages left pending");
                        registry.turn_ended(&key);
                        break;
                    }
                    job = rx.recv(), if mailbox_open => match job {
                        Some(job) => {
                            if offer(&ctx, &mut queue, *job, true).await {
                                interrupt.cancel();
                            }
                        }
                        None => mailbox_open = false,
                    },
                }
            }
            drop(turn);
            // The turn's tasks may let go of the slot a little later.
            slot.finish();
            if queue.is_empty()
                && let Some(l) = lease.take()
            {
                l.release().await;
            }
        }
        if let Some(l) = lease.take() {
            l.release().await;
        }
        tracing::debug!("session actor leaves memory");
    }
    .instrument(span)
    .await;
}

/// Queue a job; returns whether the running turn must be interrupted.
async fn offer(ctx: &TurnContext, queue: &mut TurnQueue<Job>, job: Job, running: bool) -> bool {
    match queue.offer(job, running) {
        Offer::Queued => false,
        Offer::Interrupt => true,
        Offer::Full(job) => {
            refuse(ctx, &job).await;
            false
        }
    }
}

async fn refuse(ctx: &TurnContext, job: &Job) {
    tracing::warn!(message_id = %job.inbound.message_id, "session queue full; message refused");
    ctx.channels
        .notify(&job.inbound.reply_target(), BUSY_NOTICE.into())
        .await;
    if let Err(e) = ctx
        .store
        .ingress_finish(
            job.ingress_id,
            IngressStatus::Failed,
            Some("session queue full"),
            now_ms(),
        )
        .await
    {
        tracing::error!(error = %e, "cannot record a refused message");
    }
}
