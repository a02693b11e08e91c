//! Scheduled jobs and inbound webhooks: the turns the assistant starts
//! itself.
//!
//! This is the pure core, tested with a simulated clock:
//! - [`parse`] reads the words of a job's config (cron patterns,
//!   durations, zones, active hours, delivery targets);
//! - [`schedule`] decides where a job's slots fall, across daylight saving
//!   changes, and which due slots run after a downtime;
//! - [`template`] fills a hook's message from the posted JSON.
//!
//! It knows no store, no clock, no network and no tokio: the scheduler task
//! hands it `now` and what the store remembers, and records what it
//! answers.

pub mod parse;
pub mod runner;
pub mod schedule;
pub mod template;
pub mod tool;

#[cfg(test)]
mod tests;

/// The internal channel of scheduled runs whose answer goes to no chat:
/// its replies are dropped (the answer is in the session, the run history
/// and, for a URL, the POST the scheduler makes).
#[derive(Debug, Default)]
pub struct NullChannel;

struct NullSink;

#[async_trait::async_trait]
impl switchboard_channel::ReplySink for NullSink {
    async fn send(
        &mut self,
        _event: switchboard_channel::ReplyEvent,
    ) -> Result<(), switchboard_channel::ChannelError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl switchboard_channel::Channel for NullChannel {
    fn name(&self) -> &str {
        runner::CHANNEL
    }

    fn account(&self) -> &str {
        "default"
    }

    async fn run(
        &self,
        ctx: switchboard_channel::ChannelContext,
    ) -> Result<(), switchboard_channel::ChannelError> {
        ctx.shutdown.cancelled().await;
        Ok(())
    }

    async fn open_reply(
        &self,
        _target: &switchboard_channel::ReplyTarget,
    ) -> Result<Box<dyn switchboard_channel::ReplySink>, switchboard_channel::ChannelError> {
        Ok(Box::new(NullSink))
    }
}
