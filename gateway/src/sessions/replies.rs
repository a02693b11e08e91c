//! The replies of one turn: opened on the channels the batch came from,
//! fed the turn's events, and finished with the stored answer — rows whose
//! reply went out are marked done, the others are owed to
//! [`Deliveries`](super::delivery::Deliveries), which sends them again.

use switchboard_channel::{ReplyEvent, ReplySink, TokenUsage};
use switchboard_memory::{IngressStatus, StoreError};
use tracing::Instrument as _;

use super::{Job, TurnContext};
use crate::clock::now_ms;

/// The sinks a batch replies through: the last message's, or every
/// message's on channels that answer each request.
pub(super) struct Replies {
    sinks: Vec<Reply>,
    /// Request/response channels (the web chat API): a reply that did not
    /// reach its caller cannot be sent again later.
    per_message: bool,
    store: std::sync::Arc<dyn switchboard_memory::Store>,
}

/// One reply of a batch: where it goes, the rows it answers, and its sink
/// (or why that could not be opened).
struct Reply {
    target: switchboard_channel::ReplyTarget,
    rows: Vec<usize>,
    sink: Result<Box<dyn ReplySink>, String>,
    /// The ingress rows it answers.
    ingress_ids: Vec<i64>,
    /// The platform message it edits in place, as last stored.
    recorded: Option<String>,
}

impl Replies {
    pub(super) async fn open(ctx: &TurnContext, batch: &[Job]) -> Self {
        let mut sinks = Vec::new();
        let per_message = batch.first().is_some_and(|j| {
            ctx.channels
                .get(&j.inbound.channel, &j.inbound.account)
                .is_some_and(|c| c.reply_per_message())
        });
        let groups: Vec<(&Job, Vec<usize>)> = if per_message {
            batch
                .iter()
                .enumerate()
                .map(|(i, j)| (j, vec![i]))
                .collect()
        } else {
            batch
                .last()
                .map(|j| (j, (0..batch.len()).collect()))
                .into_iter()
                .collect()
        };
        for (job, rows) in groups {
            let mut target = job.inbound.reply_target();
            // A message an earlier run of this reply left: edit it.
            target.resume = rows
                .iter()
                .filter_map(|&i| batch.get(i))
                .find_map(|j| j.resume.clone());
            let sink = ctx.channels.try_open_reply(&target).await;
            if let Err(e) = &sink {
                tracing::warn!(channel = %target.channel, error = %e, "cannot open a reply");
            }
            let ingress_ids = rows
                .iter()
                .filter_map(|&i| batch.get(i))
                .map(|j| j.ingress_id)
                .collect();
            sinks.push(Reply {
                recorded: target.resume.clone(),
                target,
                rows,
                sink,
                ingress_ids,
            });
        }
        Self {
            sinks,
            per_message,
            store: ctx.store.clone(),
        }
    }

    pub(super) async fn send(&mut self, event: ReplyEvent) -> bool {
        let mut all = true;
        for reply in &mut self.sinks {
            let Ok(sink) = &mut reply.sink else {
                all = false;
                continue;
            };
            if let Err(e) = sink.send(event.clone()).await {
                tracing::warn!(error = %e, "reply not delivered");
                all = false;
            }
            // The preview's message, stored once it is there: a restart
            // edits it into the answer instead of sending a second one.
            let shown = sink.message_id();
            if shown.is_some() && shown != reply.recorded {
                if let Some(id) = &shown {
                    if let Err(e) = self
                        .store
                        .ingress_reply_message(&reply.ingress_ids, id)
                        .await
                    {
                        tracing::warn!(error = %e, "cannot store the reply's message id");
                    }
                }
                reply.recorded = shown;
            }
        }
        all
    }

    /// Send the stored answer `text`; rows whose reply went out are marked
    /// done, the others are owed ([`Deliveries`](super::delivery::Deliveries)
    /// sends them again) — or, on request/response channels, failed.
    pub(super) async fn finish(
        &mut self,
        ctx: &TurnContext,
        batch: &[Job],
        text: String,
        usage: TokenUsage,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        for reply in &mut self.sinks {
            // Part of the trace of the message it answers.
            let parent = reply
                .rows
                .last()
                .and_then(|&i| batch.get(i))
                .map_or_else(tracing::Span::none, |j| j.span.clone());
            let deliver = tracing::info_span!(
                parent: &parent,
                "deliver",
                "error.type" = tracing::field::Empty,
            );
            let sent = match &mut reply.sink {
                Ok(sink) => sink
                    .send(ReplyEvent::Done {
                        text: text.clone(),
                        usage: Some(usage),
                    })
                    .instrument(deliver.clone())
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.clone()),
            };
            if sent.is_err() {
                deliver.record("error.type", "not_delivered");
            }
            drop(deliver);
            let jobs = reply.rows.iter().filter_map(|&i| batch.get(i));
            match sent {
                Ok(()) => {
                    let rows: Vec<i64> = jobs.map(|j| j.ingress_id).collect();
                    super::delivery::record(ctx.store.as_ref(), &rows, IngressStatus::Done, None)
                        .await?;
                }
                Err(e) if self.per_message => {
                    tracing::warn!(error = %e, "reply not delivered to its caller");
                    for job in jobs {
                        ctx.store
                            .ingress_finish(
                                job.ingress_id,
                                IngressStatus::Failed,
                                Some("reply not delivered"),
                                now,
                            )
                            .await?;
                    }
                }
                Err(e) => {
                    let jobs: Vec<&Job> = jobs.collect();
                    let sink = std::mem::replace(&mut reply.sink, Err(e.clone())).ok();
                    let mut target = reply.target.clone();
                    target.resume.clone_from(&reply.recorded);
                    ctx.deliveries.owe(super::delivery::Owed {
                        target,
                        text: text.clone(),
                        rows: jobs.iter().map(|j| j.ingress_id).collect(),
                        claims: jobs.iter().filter_map(|j| j.claim.clone()).collect(),
                        last_error: e,
                        sink,
                    });
                }
            }
        }
        Ok(())
    }
}
