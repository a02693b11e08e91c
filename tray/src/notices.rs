//! Which desktop notifications two snapshots call for: an approval or a
//! pairing request that arrived, a channel that went down. Pure, like
//! [`crate::model`].

use std::collections::HashSet;

use crate::model::{Approval, ComponentState, Page, PairingRequest, Snapshot, short};

/// A desktop notification to show; its action opens `page`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// One line.
    pub summary: String,
    /// What it is about and what to do.
    pub body: String,
    /// The page its action opens.
    pub page: Page,
}

/// More new requests of one kind than this become one notice.
const MAX_EACH: usize = 3;

/// The longest problem a summary carries.
const SUMMARY_MAX: usize = 100;

/// The notices for going from `old` (none: the tray just connected) to
/// `new`. Requests count as new when `old` did not have them, so a
/// reconnect does not repeat them; a channel is down when it was running in
/// `old` and is failed, degraded or restarting in `new`.
pub fn notifications(old: Option<&Snapshot>, new: &Snapshot) -> Vec<Notice> {
    let mut out = Vec::new();

    let seen: HashSet<&str> = old
        .map(|o| o.approvals.iter().map(|a| a.id.as_str()).collect())
        .unwrap_or_default();
    let fresh: Vec<&Approval> = new
        .approvals
        .iter()
        .filter(|a| !seen.contains(a.id.as_str()))
        .collect();
    if fresh.len() > MAX_EACH {
        out.push(Notice {
            summary: format!("{} approvals waiting", fresh.len()),
            body: "Tool calls wait for your decision: approve or deny them in the control UI."
                .into(),
            page: Page::Approvals,
        });
    } else {
        out.extend(fresh.into_iter().map(approval));
    }

    let seen: HashSet<(&str, &str)> = old
        .map(|o| {
            o.pairing
                .iter()
                .map(|p| (p.channel.as_str(), p.code.as_str()))
                .collect()
        })
        .unwrap_or_default();
    let fresh: Vec<&PairingRequest> = new
        .pairing
        .iter()
        .filter(|p| !seen.contains(&(p.channel.as_str(), p.code.as_str())))
        .collect();
    if fresh.len() > MAX_EACH {
        out.push(Notice {
            summary: format!("{} pairing requests waiting", fresh.len()),
            body: "Unknown senders ask to talk to the assistant: approve or deny them in the control UI."
                .into(),
            page: Page::Pairing,
        });
    } else {
        out.extend(fresh.into_iter().map(pairing));
    }

    if let Some(old) = old {
        for (name, key, now) in new.channels() {
            let was_running = old
                .components
                .get(key)
                .is_some_and(|c| c.state == ComponentState::Running);
            if !was_running || !now.state.troubled() {
                continue;
            }
            let problem = now.problem().unwrap_or(now.state.word());
            let body = match now.state {
                ComponentState::Restarting => {
                    "The gateway is restarting its listener; messages wait until it is back."
                }
                ComponentState::Degraded => {
                    "Its listener runs but reports a problem; messages may be late or missed."
                }
                _ => "Its listener stopped; see Channels in the control UI.",
            };
            out.push(Notice {
                summary: format!("{name} is down: {}", short(problem, SUMMARY_MAX)),
                body: body.into(),
                page: Page::Channels,
            });
        }
    }
    out
}

fn approval(a: &Approval) -> Notice {
    let who = if a.agent.is_empty() {
        "An agent".to_string()
    } else {
        format!("Agent {}", a.agent)
    };
    Notice {
        summary: format!("Approval waiting: {}", a.tool),
        body: format!(
            "{who} wants to run {} in {}. Approve or deny it in the control UI.",
            a.tool, a.session_key
        ),
        page: Page::Approvals,
    }
}

fn pairing(p: &PairingRequest) -> Notice {
    let place = if p.account.is_empty() {
        p.channel.clone()
    } else {
        format!("{}/{}", p.channel, p.account)
    };
    Notice {
        summary: format!("Pairing request from {} on {place}", p.who()),
        body: format!(
            "{} (id {}) asks to talk to the assistant; code {}. Approve or deny it in the control UI.",
            p.who(),
            p.sender_id,
            p.code
        ),
        page: Page::Pairing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::snapshot;

    #[test]
    fn a_new_approval_is_announced_once_and_opens_approvals() {
        let before = snapshot(&[("telegram/main", "running", None)], &[], &[]);
        let after = snapshot(&[("telegram/main", "running", None)], &["ab12"], &[]);
        let n = notifications(Some(&before), &after);
        assert_eq!(n.len(), 1, "{n:?}");
        assert_eq!(n[0].summary, "Approval waiting: exec");
        assert!(
            n[0].body
                .contains("Agent main wants to run exec in agent:main:webchat:dm:amy")
        );
        assert_eq!(n[0].page, Page::Approvals);
        assert!(notifications(Some(&after), &after).is_empty(), "not twice");
        let more = snapshot(
            &[("telegram/main", "running", None)],
            &["ab12", "cd34"],
            &[],
        );
        let n = notifications(Some(&after), &more);
        assert_eq!(n.len(), 1);
    }

    #[test]
    fn what_waits_when_the_tray_connects_is_announced() {
        let now = snapshot(
            &[("telegram/main", "failed", Some("boom"))],
            &["ab12"],
            &["ABCD1234"],
        );
        let n = notifications(None, &now);
        assert_eq!(
            n.len(),
            2,
            "requests, but no channel went down while watched: {n:?}"
        );
        assert_eq!(n[1].summary, "Pairing request from Ann on telegram/main");
        assert!(n[1].body.contains("code ABCD1234"));
        assert_eq!(n[1].page, Page::Pairing);
    }

    #[test]
    fn many_new_requests_make_one_notice_per_kind() {
        let before = snapshot(&[], &[], &[]);
        let after = snapshot(&[], &["a", "b", "c", "d"], &["C1", "C2", "C3", "C4", "C5"]);
        let n = notifications(Some(&before), &after);
        assert_eq!(
            n.iter().map(|n| n.summary.as_str()).collect::<Vec<_>>(),
            ["4 approvals waiting", "5 pairing requests waiting"]
        );
    }

    #[test]
    fn a_channel_that_goes_down_is_announced_with_its_problem() {
        let up = snapshot(
            &[
                ("telegram/main", "running", None),
                ("discord/main", "starting", None),
            ],
            &[],
            &[],
        );
        let down = snapshot(
            &[
                ("telegram/main", "restarting", Some("401 Unauthorized")),
                ("discord/main", "failed", Some("never ran")),
            ],
            &[],
            &[],
        );
        let n = notifications(Some(&up), &down);
        assert_eq!(n.len(), 1, "only the one that was running: {n:?}");
        assert_eq!(n[0].summary, "telegram/main is down: 401 Unauthorized");
        assert_eq!(n[0].page, Page::Channels);
        assert!(
            notifications(Some(&down), &down).is_empty(),
            "still down is not news"
        );
        for state in ["failed", "degraded"] {
            let d = snapshot(&[("telegram/main", state, None)], &[], &[]);
            let n = notifications(Some(&up), &d);
            assert_eq!(n.len(), 1, "{state}");
            assert_eq!(n[0].summary, format!("telegram/main is down: {state}"));
        }
        let stopped = snapshot(&[("telegram/main", "stopped", None)], &[], &[]);
        assert!(
            notifications(Some(&up), &stopped).is_empty(),
            "stopped on purpose"
        );
    }
}
