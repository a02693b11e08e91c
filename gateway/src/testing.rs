//! Test doubles shared by the gateway's unit tests: an in-process provider
//! whose answers the test releases, and a channel that records replies.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use switchboard_agents::{
    Agent, ChatMessage, ModelRequest, Provider, ProviderError, ProviderEvent,
};
use switchboard_memory::{SqliteStore, Store};

use crate::channels::ChannelSet;
use crate::config::QueueMode;
use crate::events::EventBus;
use crate::sessions::reset::ResetPolicy;
use crate::sessions::{AgentSlot, TurnContext};
use switchboard_channel::{
    Channel, ChannelContext, ChannelError, ReplyEvent, ReplySink, ReplyTarget,
};

/// Answers `re: <last user text>` once the test adds a permit.
pub(crate) struct GatedProvider {
    pub(crate) calls: mpsc::UnboundedSender<Vec<ChatMessage>>,
    pub(crate) permits: Arc<Semaphore>,
}

impl Provider for GatedProvider {
    fn name(&self) -> &str {
        "gated"
    }
    fn model(&self) -> &str {
        "gated-model"
    }
    fn stream(
        &self,
        request: ModelRequest,
    ) -> BoxStream<'static, Result<ProviderEvent, ProviderError>> {
        let messages = request.messages;
        let last = messages
            .iter()
            .rev()
            .find(|m| m.role == switchboard_agents::MessageRole::User)
            .map(|m| switchboard_agents::untrusted::said(&m.content))
            .unwrap_or_default();
        let _ = self.calls.send(messages);
        let permits = self.permits.clone();
        futures::stream::once(async move {
            permits.acquire().await.expect("open").forget();
            Ok(ProviderEvent::TextDelta(format!("re: {last}")))
        })
        .boxed()
    }
}

/// Records every reply event, by the message it answers.
#[derive(Default)]
pub(crate) struct RecordingChannel {
    pub(crate) tx: std::sync::Mutex<Option<mpsc::UnboundedSender<(String, ReplyEvent)>>>,
}

struct RecordingSink {
    reply_to: String,
    tx: mpsc::UnboundedSender<(String, ReplyEvent)>,
}

#[async_trait]
impl ReplySink for RecordingSink {
    async fn send(&mut self, event: ReplyEvent) -> Result<(), ChannelError> {
        let _ = self.tx.send((self.reply_to.clone(), event));
        Ok(())
    }
}

#[async_trait]
impl Channel for RecordingChannel {
    fn name(&self) -> &str {
        "test"
    }
    fn account(&self) -> &str {
        "a"
    }
    async fn run(&self, ctx: ChannelContext) -> Result<(), ChannelError> {
        ctx.shutdown.cancelled().await;
        Ok(())
    }
    async fn open_reply(&self, target: &ReplyTarget) -> Result<Box<dyn ReplySink>, ChannelError> {
        let tx = self.tx.lock().unwrap().clone().expect("recording");
        Ok(Box::new(RecordingSink {
            reply_to: target.reply_to.clone().unwrap_or_default(),
            tx,
        }))
    }
}

/// A turn context over an in-memory store, one `main` agent on a
/// [`GatedProvider`] and one [`RecordingChannel`] (`test`/`a`).
pub(crate) struct Rig {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) ctx: Arc<TurnContext>,
    pub(crate) calls: mpsc::UnboundedReceiver<Vec<ChatMessage>>,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) replies: mpsc::UnboundedReceiver<(String, ReplyEvent)>,
    /// The audit log over the store (the approval desk records in it).
    pub(crate) audit: Arc<crate::audit::Audit>,
}

/// Build a [`Rig`]; the provider starts with `permits` answers allowed.
pub(crate) async fn rig(
    mode: QueueMode,
    max_runs: usize,
    mailbox: usize,
    actor_idle: Duration,
    permits: usize,
) -> Rig {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
    let (calls_tx, calls) = mpsc::unbounded_channel();
    let permits = Arc::new(Semaphore::new(permits));
    let provider = Arc::new(GatedProvider {
        calls: calls_tx,
        permits: permits.clone(),
    });
    let (reply_tx, replies) = mpsc::unbounded_channel();
    let channel = Arc::new(RecordingChannel::default());
    *channel.tx.lock().unwrap() = Some(reply_tx);
    let channels = ChannelSet::default();
    channels.add(channel);
    let mut agents = HashMap::new();
    agents.insert(
        "main".to_string(),
        AgentSlot {
            agent: Agent::new("main", "", provider),
            history_limit: 50,
            model: "gated-model".into(),
            tools: switchboard_agents::tools::ToolPolicy::default(),
            daily_token_budget: None,
            context: crate::sessions::context::ContextBudget {
                window: 32768,
                keep_recent: 8,
            },
            approvals: switchboard_agents::tools::ApprovalPolicy::default(),
            approval_timeout: Duration::from_secs(300),
            approvers: Vec::new(),
        },
    );
    let audit = Arc::new(crate::audit::Audit::new(
        store.clone(),
        crate::audit::AuditKey::random(),
    ));
    let draining = CancellationToken::new();
    let deliveries = crate::sessions::delivery::Deliveries::new(
        store.clone(),
        channels.clone(),
        Arc::new(crate::health::Health::new()),
        Duration::from_secs(60),
        draining.clone(),
    );
    let ctx = Arc::new(TurnContext {
        store: store.clone(),
        channels: channels.clone(),
        events: EventBus::new(64),
        agents: crate::sessions::Agents::new(agents),
        tools: switchboard_agents::tools::ToolRegistry::builtin(Default::default()),
        approvals: Arc::new(crate::approvals::Approvals::new(
            store.clone(),
            channels.clone(),
            EventBus::new(16),
            audit.clone(),
        )),
        runs: Arc::new(Semaphore::new(max_runs)),
        max_runs,
        reset: ResetPolicy::default(),
        queue_mode: mode,
        mailbox,
        actor_idle,
        draining,
        hard_stop: CancellationToken::new(),
        runs_waiting: AtomicU64::new(0),
        workbench: None,
        turns_done: AtomicU64::new(0),
        turns_failed: AtomicU64::new(0),
        claims: Default::default(),
        deliveries,
        memories: None,
        telemetry: crate::telemetry::Telemetry::disabled(),
        cluster: None,
    });
    Rig {
        store,
        ctx,
        calls,
        permits,
        replies,
        audit,
    }
}

/// A DM from `sender` on the test channel (`test`/`a`).
pub(crate) fn dm(sender: &str, id: &str, text: &str) -> switchboard_channel::Inbound {
    switchboard_channel::Inbound {
        channel: "test".into(),
        account: "a".into(),
        chat_kind: switchboard_channel::ChatKind::Dm,
        chat_id: format!("chat-{sender}"),
        thread_id: None,
        sender: switchboard_channel::Sender {
            id: sender.into(),
            name: Some(format!("{sender} name")),
            is_bot: false,
        },
        text: text.into(),
        attachments: vec![],
        mentioned: false,
        message_id: id.into(),
        received_at_ms: 0,
    }
}
