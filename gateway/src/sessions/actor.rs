//! One session's actor: takes jobs from its mailbox, queues them per the
//! queue mode, and runs one turn at a time (the turn itself is `turn.rs`).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use switchboard_memory::IngressStatus;

use super::mailbox::Mailbox;
use super::queue::{Offer, TurnQueue};
use super::slot::RunSlot;
use super::turn::run_batch;
use super::{Job, SessionRegistry, TurnContext};
use crate::clock::now_ms;

/// How often a session busy on another replica is asked for again.
const SESSION_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// The notice for a message refused because its session's queue is full.
pub(crate) const BUSY_NOTICE: &str = "I'm still working through your earlier messages and can't take this one now. Please send it again in a moment.";

pub(super) async fn run(registry: SessionRegistry, key: String, mailbox: Arc<Mailbox<Box<Job>>>) {
    // However the actor leaves, its mailbox takes no more: the next job
    // for the session starts a new actor.
    let _closing = Closing(mailbox.clone());
    let rx = &*mailbox;
    let ctx = registry.context().clone();
    let mut queue = TurnQueue::new(ctx.queue_mode, ctx.mailbox);
    // What an idle actor holds is kept small (this future, its mailbox, an
    // empty queue): it may wait minutes for its next message, and a
    // gateway holds one for every session spoken to in that time. Its
    // `session` span lives only while it has work, and it waits for no
    // more than its mailbox and its idle time (a drain closes the mailbox).
    loop {
        if queue.is_empty() {
            tokio::select! {
                job = rx.recv() => match job {
                    Some(job) => { offer(&ctx, &key, &mut queue, job, false).await; }
                    None => break,
                },
                () = tokio::time::sleep(ctx.actor_idle) => match registry.retire(&key, rx) {
                    Some(job) => { offer(&ctx, &key, &mut queue, job, false).await; }
                    None => break,
                },
            }
            continue;
        }
        let span = tracing::info_span!("session", session_key = %key);
        let busy = Box::pin(work(&registry, &ctx, &key, &mut queue, rx));
        if busy.instrument(span).await.is_break() {
            break;
        }
    }
    tracing::debug!(session_key = %key, "session actor leaves memory");
}

/// Closes the mailbox when dropped.
struct Closing(Arc<Mailbox<Box<Job>>>);

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Run turns until none waits; `Break` when the actor must stop (the
/// gateway is draining).
async fn work(
    registry: &SessionRegistry,
    ctx: &Arc<TurnContext>,
    key: &str,
    queue: &mut TurnQueue<Job>,
    rx: &Mailbox<Box<Job>>,
) -> ControlFlow<()> {
    // For replicas: held while this actor has turns to run, so that
    // another replica's turns of the session wait (and ours wait for its).
    let mut lease = None;
    let flow = turns(registry, ctx, key, queue, rx, &mut lease).await;
    if let Some(l) = lease.take() {
        l.release().await;
    }
    flow
}

async fn turns(
    registry: &SessionRegistry,
    ctx: &Arc<TurnContext>,
    key: &str,
    queue: &mut TurnQueue<Job>,
    rx: &Mailbox<Box<Job>>,
    lease: &mut Option<crate::cluster::Lease>,
) -> ControlFlow<()> {
    while !queue.is_empty() {
        if ctx.draining.is_cancelled() {
            return ControlFlow::Break(()); // what waits stays pending in the ingress queue
        }
        if let Some(cluster) = &ctx.cluster
            && lease.as_ref().is_none_or(|l| l.lost().is_cancelled())
        {
            let name = crate::cluster::session_lease(key);
            match cluster.hold(&name, SESSION_POLL, &ctx.draining).await {
                Some(l) => *lease = Some(l),
                None => return ControlFlow::Break(()),
            }
        }
        let batch = queue.next_batch();
        ctx.runs_waiting.fetch_add(1, Ordering::Relaxed);
        let permit = tokio::select! {
            p = ctx.runs.clone().acquire_owned() => p,
            () = ctx.draining.cancelled() => {
                ctx.runs_waiting.fetch_sub(1, Ordering::Relaxed);
                return ControlFlow::Break(());
            }
        };
        ctx.runs_waiting.fetch_sub(1, Ordering::Relaxed);
        let Ok(permit) = permit else {
            return ControlFlow::Break(());
        };
        // Given back while the turn waits for an approval.
        let slot = RunSlot::new(ctx.runs.clone(), permit);
        let interrupt = ctx.hard_stop.child_token();
        registry.turn_started(key, interrupt.clone());
        // Boxed: the turn's state is large.
        let mut turn = Box::pin(run_batch(ctx, key, batch, interrupt.clone(), slot.clone()));
        let mut mailbox_open = true;
        // A lost session lease (another replica may run the session now)
        // drops the turn where it is, storing nothing: its messages stay
        // pending for whoever runs the session next.
        let lost = lease
            .as_ref()
            .map_or_else(CancellationToken::new, |l| l.lost().clone());
        loop {
            tokio::select! {
                () = &mut turn => {
                    registry.turn_ended(key);
                    break;
                }
                () = lost.cancelled() => {
                    tracing::warn!("lost the session's lease; its turn is dropped and its messages left pending");
                    registry.turn_ended(key);
                    break;
                }
                job = rx.recv(), if mailbox_open => match job {
                    Some(job) => {
                        if offer(ctx, key, queue, job, true).await {
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
    ControlFlow::Continue(())
}

/// Queue a job; returns whether the running turn must be interrupted.
async fn offer(
    ctx: &TurnContext,
    key: &str,
    queue: &mut TurnQueue<Job>,
    job: Box<Job>,
    running: bool,
) -> bool {
    match queue_job(queue, job, running) {
        Ok(interrupt) => interrupt,
        Err(job) => {
            // Boxed, and the job with it: this wait is rare, and an idle
            // actor's state is as large as its largest wait.
            Box::pin(refuse(ctx, key, &job)).await;
            false
        }
    }
}

/// Queue a job: whether the running turn must be interrupted, or the job
/// back when the queue is full.
fn queue_job(queue: &mut TurnQueue<Job>, job: Box<Job>, running: bool) -> Result<bool, Box<Job>> {
    match queue.offer(*job, running) {
        Offer::Queued => Ok(false),
        Offer::Interrupt => Ok(true),
        Offer::Full(job) => Err(Box::new(job)),
    }
}

async fn refuse(ctx: &TurnContext, key: &str, job: &Job) {
    tracing::warn!(session_key = %key, message_id = %job.inbound.message_id, "session queue full; message refused");
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
