use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, broadcast};

use switchboard_agents::ToolCall;
use switchboard_agents::tools::{ApprovalRequest, Approver, Decision, ToolContext};
use switchboard_channel::ChatKind;
use switchboard_memory::{SqliteStore, Store};

use super::rules::{ChatDeciders, ChatParty};
use super::{Approvals, CANCELLED, Resolution, SessionApprover};
use crate::audit::{Actor, Audit, AuditKey};
use crate::channels::ChannelSet;
use crate::events::{EventBus, EventKind, GatewayEvent};
use crate::sessions::slot::RunSlot;

const GROUP: &str = "agent:main:telegram:group:-100";

struct Desk {
    desk: Arc<Approvals>,
    store: Arc<dyn Store>,
    events: broadcast::Receiver<GatewayEvent>,
}

async fn desk() -> Desk {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().await.unwrap());
    let bus = EventBus::new(8);
    let events = bus.subscribe();
    let audit = Arc::new(Audit::new(store.clone(), AuditKey::random()));
    let desk = Arc::new(Approvals::new(
        store.clone(),
        ChannelSet::default(),
        bus,
        audit,
    ));
    Desk {
        desk,
        store,
        events,
    }
}

fn cli() -> Actor {
    Actor::cli()
}

fn party(sender: &str, kind: ChatKind, key: &str) -> ChatParty {
    ChatParty {
        channel: "telegram".into(),
        sender_id: sender.into(),
        chat_kind: kind,
        session_key: key.into(),
    }
}

/// A turn's approver for a request Bob (`telegram:7`) caused in a group.
fn approver(
    desk: &Arc<Approvals>,
    approvers: &[&str],
    slot: Option<Arc<RunSlot>>,
) -> SessionApprover {
    SessionApprover {
        desk: desk.clone(),
        announce_to: None,
        timeout: Duration::from_secs(300),
        message_id: "m".into(),
        deciders: ChatDeciders {
            agent: "main".into(),
            approvers: approvers.iter().map(|a| (*a).to_string()).collect(),
            asker: party("7", ChatKind::Group, GROUP),
        },
        run_slot: slot,
        telemetry: crate::telemetry::Telemetry::disabled(),
    }
}

fn request() -> ApprovalRequest {
    ApprovalRequest {
        call: ToolCall {
            id: "c1".into(),
            name: "exec".into(),
            arguments: "{\"command\":\"ls\"}".into(),
        },
        context: ToolContext {
            session_key: GROUP.into(),
            agent: "main".into(),
            ..ToolContext::default()
        },
        tainted_by: None,
    }
}

/// The id of the next request announced on the bus.
async fn requested(events: &mut broadcast::Receiver<GatewayEvent>) -> String {
    loop {
        if let EventKind::ApprovalRequested { id, .. } = events.recv().await.unwrap().kind {
            return id;
        }
    }
}

#[tokio::test]
async fn only_a_named_approver_decides_from_a_chat() {
    let mut d = desk().await;
    let approver = approver(&d.desk, &["telegram:99"], None);
    let waiting = tokio::spawn(approver.decide(request()));
    let id = requested(&mut d.events).await;
    assert!(id.len() >= 16, "{id}");

    let bob = party("7", ChatKind::Group, GROUP);
    match d.desk.resolve_from_chat(&id, true, &bob).await.unwrap() {
        Resolution::Refused(why) => assert!(why.contains("approvers"), "{why}"),
        other => panic!("the asker decided their own request: {other:?}"),
    }
    let r = d.store.approval_get(&id).await.unwrap().unwrap();
    assert_eq!(r.status, "pending", "a refusal decides nothing");
    assert!(!waiting.is_finished());

    let cy = party("99", ChatKind::Group, GROUP);
    let decided = match d
        .desk
        .resolve_from_chat(&id.to_uppercase(), true, &cy)
        .await
        .unwrap()
    {
        Resolution::Decided(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(decided.decided_by.as_deref(), Some("chat:telegram:99"));
    assert_eq!(
        waiting.await.unwrap(),
        Decision::Approved {
            by: "chat:telegram:99".into()
        }
    );
    let recorded = d.store.audit_all().await.unwrap();
    assert_eq!(recorded.len(), 1, "one decision, one audit record");
    assert_eq!(
        (
            recorded[0].action.as_str(),
            recorded[0].actor.as_str(),
            recorded[0].source.as_str(),
            recorded[0].target.as_str(),
        ),
        (
            "approval.decided",
            "chat:telegram:99",
            "chat:telegram",
            id.as_str()
        )
    );
    assert!(
        !recorded[0].detail.contains("arguments"),
        "{}",
        recorded[0].detail
    );
    match d.desk.resolve(&id, false, &cli()).await.unwrap() {
        Resolution::NotWaiting(r) => assert_eq!(r.status, "approved"),
        other => panic!("decided twice: {other:?}"),
    }
    assert_eq!(
        d.desk.resolve("nosuchid", true, &cli()).await.unwrap(),
        Resolution::Unknown
    );
}

#[tokio::test]
async fn a_request_whose_turn_went_away_is_cancelled_and_not_decided_later() {
    let mut d = desk().await;
    let approver = approver(&d.desk, &[], None);
    let waiting = tokio::spawn(approver.decide(request()));
    let id = requested(&mut d.events).await;
    // The turn is cancelled: its wait is dropped.
    waiting.abort();
    assert!(waiting.await.unwrap_err().is_cancelled());
    match d
        .desk
        .resolve(&id, true, &Actor::new("api", "127.0.0.1"))
        .await
        .unwrap()
    {
        Resolution::NotWaiting(r) => {
            assert_eq!(r.status, CANCELLED);
            assert_eq!(r.decided_by.as_deref(), Some("gateway (its turn ended)"));
        }
        other => panic!("approved with nothing waiting: {other:?}"),
    }
    let r = d.store.approval_get(&id).await.unwrap().unwrap();
    assert_eq!(r.status, CANCELLED);
}

#[tokio::test]
async fn a_waiting_call_gives_its_run_slot_back_until_decided() {
    let mut d = desk().await;
    let runs = Arc::new(Semaphore::new(1));
    let slot = RunSlot::new(runs.clone(), runs.clone().acquire_owned().await.unwrap());
    let approver = approver(&d.desk, &[], Some(slot.clone()));
    let waiting = tokio::spawn(approver.decide(request()));
    let id = requested(&mut d.events).await;
    assert_eq!(runs.available_permits(), 1, "another session may run");
    assert!(matches!(
        d.desk.resolve(&id, true, &cli()).await.unwrap(),
        Resolution::Decided(_)
    ));
    assert!(matches!(waiting.await.unwrap(), Decision::Approved { .. }));
    assert!(slot.holds_permit(), "the turn goes on in a slot");
    assert_eq!(runs.available_permits(), 0);
}
