//! A message's way into the model's view: its files fetched into the
//! session's workspace, and its text as the model reads it, marked as
//! untrusted when it is not the operator's.

use switchboard_agents::untrusted;

use super::{Job, TurnContext};

/// The largest attachment fetched.
const MAX_ATTACHMENT_BYTES: u64 = 20 * 1024 * 1024;

/// Fetch a message's files into the session's workspace (`inbox/`), where
/// the sandboxed tools find them; what cannot be fetched is said in the
/// description instead.
pub(super) async fn fetch_attachments(ctx: &TurnContext, key: &str, job: &mut Job) {
    if job.inbound.attachments.is_empty() {
        return;
    }
    let place = switchboard_sandbox::Place::new(key, job.agent.clone());
    let bench = ctx.workbench.as_ref().filter(|w| w.offers(&place));
    let Some(channel) = ctx.channels.get(&job.inbound.channel, &job.inbound.account) else {
        return;
    };
    for a in &mut job.inbound.attachments {
        if a.local_path.is_some() || a.file_id.is_none() {
            continue;
        }
        let Some(bench) = bench else {
            a.local_path = Some("not downloaded: this conversation has no file tools".into());
            continue;
        };
        let name = safe_name(&a.name);
        // Opened from the host without following links: a command in the
        // sandbox may have replaced `inbox` or the file with one.
        let file = match bench.create_file(&place, &["inbox", &name]) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(session = %key, file = %a.name, error = %e, "refused to save an attachment");
                a.local_path = Some(format!("not saved: {e}"));
                continue;
            }
        };
        let mut out = tokio::fs::File::from_std(file);
        let fetched = match channel.fetch(a, &mut out, MAX_ATTACHMENT_BYTES).await {
            Ok(bytes) => tokio::io::AsyncWriteExt::flush(&mut out)
                .await
                .map(|()| bytes)
                .map_err(|e| switchboard_channel::ChannelError::Rejected(e.to_string())),
            Err(e) => Err(e),
        };
        match fetched {
            Ok(bytes) => {
                a.size = Some(bytes);
                a.local_path = Some(format!("{}/inbox/{name}", switchboard_sandbox::WORKSPACE));
            }
            Err(e) => {
                tracing::warn!(file = %a.name, error = %e, "cannot fetch an attachment");
                // Emptied rather than removed by path: the name may be a
                // link by now.
                let _ = out.set_len(0).await;
                a.local_path = Some(format!("not downloaded: {e}"));
            }
        }
    }
}

/// A file name that stays inside its directory.
fn safe_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let clean = clean.trim_start_matches('.').to_string();
    if clean.is_empty() {
        "file".into()
    } else {
        clean
    }
}

/// The message as the model reads it: the text and what came with it. A
/// message from someone other than the operator (see
/// `ToolPolicy::from_operator`) is marked untrusted, and so is what the
/// platform says of its attachments (names come from the sender).
pub(super) fn user_text(ctx: &TurnContext, job: &Job) -> String {
    let mut files = String::new();
    for a in &job.inbound.attachments {
        if !files.is_empty() {
            files.push('\n');
        }
        files.push_str(&format!("[attachment: {}", a.name));
        if let Some(m) = &a.mime {
            files.push_str(&format!(", {m}"));
        }
        if let Some(n) = a.size {
            files.push_str(&format!(", {} KB", n.div_ceil(1024)));
        }
        match &a.local_path {
            Some(p) if p.starts_with('/') => files.push_str(&format!(", saved at {p}")),
            Some(why) => files.push_str(&format!(", {why}")),
            None => {}
        }
        files.push(']');
    }
    let inbound = &job.inbound;
    let subject = job.subject();
    let slot = ctx.agents.get(&job.agent);
    let fallback;
    let policy = match &slot {
        Some(slot) => &slot.tools,
        None => {
            fallback = switchboard_agents::tools::ToolPolicy::default();
            &fallback
        }
    };
    // A scheduled job's message is the operator's (a job an agent made
    // went through the `schedule` tool, which the policy gates); a
    // webhook's (`hook:<name>`) is not.
    let scheduled = inbound
        .message_id
        .starts_with(switchboard_channel::GATEWAY_MESSAGE_PREFIX)
        && inbound.sender.id.starts_with("cron:");
    let from_operator =
        scheduled || policy.from_operator(&inbound.channel, inbound.chat_kind.as_str(), &subject);
    let mut text = if from_operator || inbound.text.is_empty() {
        inbound.text.clone()
    } else {
        untrusted::wrap_message(&subject, inbound.sender.name.as_deref(), &inbound.text)
    };
    if !files.is_empty() {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&untrusted::wrap_data("attachment", &files));
    }
    text
}
