//! The registry of channel accounts the gateway runs: the one place where
//! channels are registered.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use async_trait::async_trait;
use switchboard_channel::{
    Channel, ChannelError, ChannelState, ReplyEvent, ReplySink, ReplyTarget,
};
use switchboard_memory::Store;

use crate::clock::now_ms;

/// Every channel account, by (channel, account). Clones share one set:
/// an account added or removed by a config reload is seen by every part
/// that replies.
#[derive(Default, Clone)]
pub struct ChannelSet {
    accounts: Arc<RwLock<Accounts>>,
}

/// The accounts by (channel, account).
type Accounts = HashMap<(String, String), Arc<dyn Channel>>;

impl std::fmt::Debug for ChannelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.read().keys()).finish()
    }
}

impl ChannelSet {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Accounts> {
        self.accounts.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Register one channel account (replacing one of the same name).
    pub fn add(&self, channel: Arc<dyn Channel>) {
        self.accounts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                (channel.name().to_string(), channel.account().to_string()),
                channel,
            );
    }

    /// Take an account out: replies to it are dropped from now on.
    pub fn remove(&self, channel: &str, account: &str) -> Option<Arc<dyn Channel>> {
        self.accounts
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(channel.to_string(), account.to_string()))
    }

    /// The account a message came through.
    pub fn get(&self, channel: &str, account: &str) -> Option<Arc<dyn Channel>> {
        self.read()
            .get(&(channel.to_string(), account.to_string()))
            .cloned()
    }

    /// All accounts.
    pub fn all(&self) -> Vec<Arc<dyn Channel>> {
        self.read().values().cloned().collect()
    }

    /// Open a reply to `target`; a channel that is gone or fails to open
    /// gives a sink that drops events (the turn is still stored).
    pub async fn open_reply(&self, target: &ReplyTarget) -> Box<dyn ReplySink> {
        match self.get(&target.channel, &target.account) {
            Some(ch) => match ch.open_reply(target).await {
                Ok(sink) => sink,
                Err(e) => {
                    tracing::warn!(channel = %target.channel, account = %target.account, error = %e, "cannot open a reply");
                    Box::new(NullSink)
                }
            },
            None => {
                tracing::warn!(channel = %target.channel, account = %target.account, "no such channel account; reply dropped");
                Box::new(NullSink)
            }
        }
    }

    /// Open a reply to `target`, or say why it cannot be opened (the
    /// account is gone, the platform refused).
    pub async fn try_open_reply(&self, target: &ReplyTarget) -> Result<Box<dyn ReplySink>, String> {
        match self.get(&target.channel, &target.account) {
            Some(ch) => ch.open_reply(target).await.map_err(|e| e.to_string()),
            None => Err(format!(
                "channel account {}/{} is not configured",
                target.channel, target.account
            )),
        }
    }

    /// Send one standalone notice to `target`.
    pub async fn notify(&self, target: &ReplyTarget, text: String) {
        let mut sink = self.open_reply(target).await;
        if let Err(e) = sink.send(ReplyEvent::Notice { text }).await {
            tracing::warn!(channel = %target.channel, error = %e, "notice not delivered");
        }
    }
}

/// A sink that drops everything.
#[derive(Debug)]
pub struct NullSink;

#[async_trait]
impl ReplySink for NullSink {
    async fn send(&mut self, _event: ReplyEvent) -> Result<(), ChannelError> {
        Ok(())
    }
}

/// One channel account's [`ChannelState`], kept in the store so that a
/// listener finds it again after a restart (Discord's session to resume).
#[derive(Debug)]
pub struct StoredState {
    store: Arc<dyn Store>,
    channel: String,
    account: String,
}

impl StoredState {
    /// The state of account `account` of `channel`.
    pub fn new(store: Arc<dyn Store>, channel: &str, account: &str) -> Self {
        Self {
            store,
            channel: channel.to_string(),
            account: account.to_string(),
        }
    }
}

fn unavailable(e: switchboard_memory::StoreError) -> ChannelError {
    ChannelError::Unavailable(format!("cannot keep the channel state: {e}"))
}

#[async_trait]
impl ChannelState for StoredState {
    async fn get(&self, key: &str) -> Result<Option<String>, ChannelError> {
        self.store
            .channel_state_get(&self.channel, &self.account, key)
            .await
            .map_err(unavailable)
    }

    async fn set(&self, entries: &[(&str, &str)]) -> Result<(), ChannelError> {
        let entries: Vec<(String, String)> = entries
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect();
        self.store
            .channel_state_set(&self.channel, &self.account, &entries, now_ms())
            .await
            .map_err(unavailable)
    }

    async fn remove(&self, keys: &[&str]) -> Result<(), ChannelError> {
        let keys: Vec<String> = keys.iter().map(|k| (*k).to_string()).collect();
        self.store
            .channel_state_remove(&self.channel, &self.account, &keys)
            .await
            .map_err(unavailable)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, String)>, ChannelError> {
        self.store
            .channel_state_list(&self.channel, &self.account, prefix)
            .await
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_memory::SqliteStore;

    #[tokio::test]
    async fn channel_state_is_kept_per_account_and_listed_by_prefix() {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
        let main = StoredState::new(store.clone(), "discord", "main");
        let other = StoredState::new(store.clone(), "discord", "other");
        main.set(&[
            ("seq", "3"),
            ("last:2", "b"),
            ("last:1", "a"),
            ("lastly", "x"),
        ])
        .await
        .unwrap();
        other.set(&[("seq", "9")]).await.unwrap();
        // Setting again replaces.
        main.set(&[("seq", "4")]).await.unwrap();
        assert_eq!(main.get("seq").await.unwrap().as_deref(), Some("4"));
        assert_eq!(other.get("seq").await.unwrap().as_deref(), Some("9"));
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(
            main.list("last:").await.unwrap(),
            [pair("last:1", "a"), pair("last:2", "b")]
        );
        assert!(other.list("last:").await.unwrap().is_empty());
        main.remove(&["seq", "missing"]).await.unwrap();
        assert_eq!(main.get("seq").await.unwrap(), None);
        assert_eq!(other.get("seq").await.unwrap().as_deref(), Some("9"));
        assert_eq!(main.list("").await.unwrap().len(), 3);
    }
}
