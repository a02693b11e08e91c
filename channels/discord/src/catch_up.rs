//! Catching up after a lost session. Discord replays missed events only
//! to a session it still has; once one expired (the gateway was down
//! longer than Discord keeps sessions) or was ended, what was sent
//! meanwhile never comes over the gateway. For DMs and the catch-up
//! channels (with their threads), the adapter saved the last message it
//! handled in each (`saved.rs`), and reads what followed through the
//! REST message history (`GET /channels/{id}/messages?after=…`), oldest
//! first, handing it over like a live message — the gateway's
//! deduplication answers a message that also comes live once. Other guild
//! channels are not read back; the status says so.
//!
//! Bounded: the most recently active channels first, at most
//! [`MAX_CHANNELS`] of them and [`MAX_PAGES`] pages of 100 each.

use std::time::Duration;

use serenity::model::id::{ChannelId, MessageId};
use switchboard_channel::{ChannelContext, ChannelError};

use crate::model::Message;
use crate::saved::{LastSeen, Saved, snowflake};
use crate::{Inner, lock};

/// Channels read back after one lost session, at most.
pub const MAX_CHANNELS: usize = 100;
/// Pages read back per channel, at most.
pub const MAX_PAGES: usize = 10;
/// Messages per page (Discord's most).
const PAGE: u8 = 100;
/// 429s waited out per page before the channel is given up.
const RATE_LIMIT_RETRIES: u32 = 5;

/// What one catch-up found.
#[derive(Debug, Default)]
struct Tally {
    /// Channels read.
    channels: usize,
    /// Messages handed over.
    messages: usize,
    /// Channels with more than the pages read.
    cut: usize,
    /// Channels over [`MAX_CHANNELS`], not read.
    skipped: usize,
    /// Channels that could not be read, with why.
    failed: Vec<String>,
}

impl Tally {
    /// What the status says.
    fn notice(&self) -> String {
        let mut notice = format!(
            "messages may have been missed: the Discord session was lost (it expired while the gateway was down, or Discord ended it); {} message(s) were caught up from the history of {} DM or catch-up channel(s); other guild channels are not read back",
            self.messages, self.channels
        );
        if self.cut > 0 {
            notice.push_str(&format!(
                "; {} channel(s) had more than {} messages, the rest were not read",
                self.cut,
                MAX_PAGES * usize::from(PAGE)
            ));
        }
        if self.skipped > 0 {
            notice.push_str(&format!(
                "; {} less recently active channel(s) were not read",
                self.skipped
            ));
        }
        if !self.failed.is_empty() {
            notice.push_str(&format!("; could not read {}", self.failed.join(", ")));
        }
        notice
    }
}

impl Inner {
    /// Read back what DMs and catch-up channels got since their last
    /// handled message, and say in the status that messages may have been
    /// missed. `Err` only for shutdown.
    pub(crate) async fn catch_up(
        &self,
        ctx: &ChannelContext,
        saved: &Saved,
    ) -> Result<(), ChannelError> {
        let Some((bot_id, _)) = lock(&self.bot).clone() else {
            return Ok(());
        };
        let mut tally = Tally::default();
        for (channel, last) in saved.last_seen().await {
            let place = last.place();
            // Channels no longer listed (or in guilds no longer listened in).
            if !self.catches_up(&place, &channel) || !self.listens_in(last.guild.as_deref()) {
                continue;
            }
            if tally.channels == MAX_CHANNELS {
                tally.skipped += 1;
                continue;
            }
            tally.channels += 1;
            match self
                .catch_up_channel(ctx, saved, &bot_id, &channel, last)
                .await
            {
                Ok((found, complete)) => {
                    tally.messages += found;
                    tally.cut += usize::from(!complete);
                }
                Err(ChannelError::Closed) => return Err(ChannelError::Closed),
                Err(e) => {
                    tracing::warn!(account = %self.settings.account, channel = %channel, error = %e, "cannot read a channel's history to catch up");
                    tally.failed.push(format!("channel {channel} ({e})"));
                }
            }
        }
        let notice = tally.notice();
        tracing::warn!(account = %self.settings.account, caught_up = tally.messages, channels = tally.channels, "{notice}");
        ctx.status.notice(notice);
        Ok(())
    }

    /// Hand over what `channel` got after `last`; returns how many
    /// messages were handed over and whether the history was read to its
    /// end.
    async fn catch_up_channel(
        &self,
        ctx: &ChannelContext,
        saved: &Saved,
        bot_id: &str,
        channel: &str,
        mut last: LastSeen,
    ) -> Result<(usize, bool), ChannelError> {
        let id = match snowflake(channel) {
            0 => return Ok((0, true)),
            n => ChannelId::new(n),
        };
        let place = last.place();
        let mut found = 0;
        for _ in 0..MAX_PAGES {
            let after = match snowflake(&last.message) {
                0 => return Ok((found, true)),
                n => n,
            };
            let mut page = self.history(ctx, id, MessageId::new(after)).await?;
            let full = page.len() >= usize::from(PAGE);
            page.retain(|m| snowflake(&m.id) > after);
            page.sort_by_key(|m| snowflake(&m.id));
            for mut m in page {
                // History messages do not name their guild.
                m.guild_id = last.guild.clone();
                if self.offer(ctx, bot_id, &m, &place).await? {
                    found += 1;
                }
                last.message = m.id.clone();
                saved.remember(channel, &last).await;
            }
            if !full {
                return Ok((found, true));
            }
        }
        Ok((found, false))
    }

    /// One page of `channel`'s messages after `after`, a 429 waited out.
    async fn history(
        &self,
        ctx: &ChannelContext,
        channel: ChannelId,
        after: MessageId,
    ) -> Result<Vec<Message>, ChannelError> {
        let mut waited = 0;
        loop {
            match self.rest().messages_after(channel, after, PAGE).await {
                Ok(page) => return Ok(page),
                Err(e) if e.retry_after.is_some() && waited < RATE_LIMIT_RETRIES => {
                    waited += 1;
                    let wait = e.retry_after.unwrap_or(Duration::from_secs(1));
                    tokio::select! {
                        () = ctx.shutdown.cancelled() => return Err(ChannelError::Closed),
                        () = tokio::time::sleep(wait) => {}
                    }
                }
                Err(e) => return Err(e.channel()),
            }
        }
    }
}
