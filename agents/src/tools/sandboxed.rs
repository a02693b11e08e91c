//! The shell and file tools. They run where the [`Workbench`] says — in the
//! conversation's sandbox container, or on the host only when the operator
//! opted in — and are not offered at all where it says neither. Failures
//! (engine down, image missing, path outside the workspace) come back as
//! error outputs the model can read; nothing falls back to the host.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::{Value, json};
use switchboard_sandbox::{ExecOutput, ExecRequest, Place, Workbench, files};

use super::{Tool, ToolContext, ToolOutput, ToolRegistry};
use crate::ToolSpec;

/// Most bytes `read_file` returns in one call.
const READ_LIMIT: usize = 64 * 1024;
/// Most entries `list_files` returns.
const LIST_LIMIT: usize = 500;

/// Register `exec`, `read_file`, `write_file`, `edit_file` and `list_files`
/// on `bench`.
pub fn register(registry: &mut ToolRegistry, bench: Arc<Workbench>) {
    for kind in [
        Kind::Exec,
        Kind::ReadFile,
        Kind::WriteFile,
        Kind::EditFile,
        Kind::ListFiles,
    ] {
        registry.register(Arc::new(SandboxTool {
            kind,
            bench: bench.clone(),
        }));
    }
}

fn place(ctx: &ToolContext) -> Place {
    Place::new(ctx.session_key.clone(), ctx.agent.clone())
}

fn str_arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, ToolOutput> {
    args[name]
        .as_str()
        .ok_or_else(|| ToolOutput::error(format!("`{name}` is required and must be a string")))
}

/// The slack given on top of the sandbox's own limit before the agent
/// loop gives up on a call.
const MARGIN: Duration = Duration::from_secs(30);

/// How an exec's result reads to the model.
pub fn describe_exec(out: &ExecOutput, memory_mb: u64) -> ToolOutput {
    let mut text = String::new();
    let stdout = out.stdout_text();
    let stderr = out.stderr_text();
    if !stdout.is_empty() {
        text.push_str(&stdout);
        if !stdout.ends_with('\n') {
            text.push('\n');
        }
    }
    if !stderr.is_empty() {
        text.push_str("[stderr]\n");
        text.push_str(&stderr);
        if !stderr.ends_with('\n') {
            text.push('\n');
        }
    }
    if out.dropped > 0 {
        text.push_str(&format!(
            "[output cut off: {} more bytes were not kept; redirect to a file and read parts of it]\n",
            out.dropped
        ));
    }
    if out.timed_out {
        text.push_str(&format!(
            "[stopped: the command ran past its {} s limit and was killed]\n",
            out.timeout.as_secs()
        ));
        return ToolOutput::error(text);
    }
    match out.exit_code {
        Some(0) => {
            if text.is_empty() {
                text.push_str("[exit code 0, no output]");
            } else {
                text.push_str("[exit code 0]");
            }
            ToolOutput::ok(text)
        }
        Some(137) => {
            text.push_str(&format!(
                "[exit code 137: killed, most likely by the sandbox's {memory_mb} MiB memory limit]"
            ));
            ToolOutput::error(text)
        }
        Some(code) => {
            text.push_str(&format!("[exit code {code}]"));
            ToolOutput::error(text)
        }
        None => {
            text.push_str("[exit code unknown]");
            ToolOutput::error(text)
        }
    }
}

/// Which of the five tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exec,
    ReadFile,
    WriteFile,
    EditFile,
    ListFiles,
}

/// One of the shell and file tools, on a workbench.
#[derive(Debug)]
pub struct SandboxTool {
    kind: Kind,
    bench: Arc<Workbench>,
}

fn spec(name: &str, description: &str, parameters: Value) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: description.into(),
        parameters,
    }
}

impl Tool for SandboxTool {
    fn spec(&self) -> ToolSpec {
        match self.kind {
            Kind::Exec => spec(
                "exec",
                "Run a shell command (sh -c) in this conversation's sandbox, starting in /workspace. Returns stdout, stderr and the exit code.",
                json!({
                    "type": "object",
                    "properties": {
                        "command": { "type": "string", "description": "The shell command line." },
                        "timeout_secs": { "type": "integer", "minimum": 1, "description": "Stop it after this many seconds (capped by the sandbox's limit)." }
                    },
                    "required": ["command"],
                    "additionalProperties": false
                }),
            ),
            Kind::ReadFile => spec(
                "read_file",
                "Read a file from the workspace (relative paths start in /workspace). Returns at most 64 KiB from `offset`.",
                json!({
                    "type": "object",
                    "properties": {
                        "path": { "type": "string" },
                        "offset": { "type": "integer", "minimum": 0, "description": "Byte to start at (default 0)." }
                    },
                    "required": ["path"],
                    "additionalProperties": false
                }),
            ),
            Kind::WriteFile => spec(
                "write_file",
                "Create or replace a file in the workspace with `content` (parent directories are made).",
                json!({
                    "type": "object",
                    "properties": { "path": { "type": "string" }, "content": { "type": "string" } },
                    "required": ["path", "content"],
                    "additionalProperties": false
                }),
            ),
            Kind::EditFile => spec(
                "edit_file",
                "Replace `old_text` with `new_text` in a workspace file. `old_text` must occur exactly once.",
                json!({
                    "type": "object",
                    "properties": {
                        "path": { "type": "string" },
                        "old_text": { "type": "string" },
                        "new_text": { "type": "string" }
                    },
                    "required": ["path", "old_text", "new_text"],
                    "additionalProperties": false
                }),
            ),
            Kind::ListFiles => spec(
                "list_files",
                "List a workspace directory (default /workspace); directories end with `/`.",
                json!({
                    "type": "object",
                    "properties": {
                        "path": { "type": "string" },
                        "depth": { "type": "integer", "minimum": 1, "maximum": 10, "description": "Levels to descend (default 2)." }
                    },
                    "additionalProperties": false
                }),
            ),
        }
    }

    fn offered(&self, ctx: &ToolContext) -> bool {
        self.bench.offers(&place(ctx))
    }

    fn timeout(&self) -> Duration {
        match self.kind {
            Kind::Exec => Duration::from_secs(self.bench.settings().exec_timeout_secs) + MARGIN,
            _ => Duration::from_secs(60),
        }
    }

    fn call(&self, args: Value, ctx: ToolContext) -> BoxFuture<'static, ToolOutput> {
        let bench = self.bench.clone();
        let kind = self.kind;
        Box::pin(async move {
            let place = place(&ctx);
            let result = match kind {
                Kind::Exec => exec(&bench, &place, &args, ctx.traceparent.as_deref()).await,
                Kind::ReadFile => read(&bench, &place, &args).await,
                Kind::WriteFile => write(&bench, &place, &args).await,
                Kind::EditFile => edit(&bench, &place, &args).await,
                Kind::ListFiles => list(&bench, &place, &args).await,
            };
            result.unwrap_or_else(|e| e)
        })
    }
}

type Outcome = Result<ToolOutput, ToolOutput>;

fn failed(e: switchboard_sandbox::SandboxError) -> ToolOutput {
    ToolOutput::error(e.to_string())
}

async fn exec(
    bench: &Workbench,
    place: &Place,
    args: &Value,
    traceparent: Option<&str>,
) -> Outcome {
    let mut req = ExecRequest::shell(str_arg(args, "command")?);
    if let Some(tp) = traceparent {
        req.env.push(format!("TRACEPARENT={tp}"));
    }
    req.timeout = args["timeout_secs"].as_u64().map(Duration::from_secs);
    let out = bench.exec(place, req).await.map_err(failed)?;
    Ok(describe_exec(&out, bench.settings().memory_mb))
}

async fn read(bench: &Workbench, place: &Place, args: &Value) -> Outcome {
    let path = str_arg(args, "path")?;
    let offset = args["offset"].as_u64().unwrap_or(0);
    let chunk = files::read_file(bench, place, path, offset, READ_LIMIT)
        .await
        .map_err(failed)?;
    let mut text = String::from_utf8_lossy(&chunk.bytes).into_owned();
    if chunk.more {
        text.push_str(&format!(
            "\n[the file goes on; read again with offset {}]",
            offset + chunk.bytes.len() as u64
        ));
    }
    Ok(ToolOutput::ok(text))
}

async fn write(bench: &Workbench, place: &Place, args: &Value) -> Outcome {
    let (path, content) = (str_arg(args, "path")?, str_arg(args, "content")?);
    let at = files::write_file(bench, place, path, content.as_bytes())
        .await
        .map_err(failed)?;
    Ok(ToolOutput::ok(format!(
        "wrote {} bytes to {at}",
        content.len()
    )))
}

async fn edit(bench: &Workbench, place: &Place, args: &Value) -> Outcome {
    let path = str_arg(args, "path")?;
    let (old, new) = (str_arg(args, "old_text")?, str_arg(args, "new_text")?);
    let at = files::edit_file(bench, place, path, old, new)
        .await
        .map_err(failed)?;
    Ok(ToolOutput::ok(format!("edited {at}")))
}

async fn list(bench: &Workbench, place: &Place, args: &Value) -> Outcome {
    let path = args["path"].as_str().unwrap_or("");
    let depth = args["depth"].as_u64().unwrap_or(2) as u32;
    let (dir, entries, more) = files::list_files(bench, place, path, depth, LIST_LIMIT)
        .await
        .map_err(failed)?;
    let mut text = format!("{dir}:\n");
    if entries.is_empty() {
        text.push_str("(empty)");
    }
    text.push_str(&entries.join("\n"));
    if more {
        text.push_str(&format!(
            "\n[more than {LIST_LIMIT} entries; list a subdirectory]"
        ));
    }
    Ok(ToolOutput::ok(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_results_read_plainly() {
        let ok = describe_exec(
            &ExecOutput {
                exit_code: Some(0),
                stdout: b"hi\n".to_vec(),
                ..Default::default()
            },
            512,
        );
        assert_eq!(ok.content, "hi\n[exit code 0]");
        assert!(!ok.is_error);
        let oom = describe_exec(
            &ExecOutput {
                exit_code: Some(137),
                ..Default::default()
            },
            512,
        );
        assert!(oom.content.contains("512 MiB memory limit"));
        let slow = describe_exec(
            &ExecOutput {
                timed_out: true,
                timeout: Duration::from_secs(5),
                dropped: 10,
                stdout: b"partial".to_vec(),
                ..Default::default()
            },
            512,
        );
        assert!(slow.is_error);
        assert!(slow.content.contains("10 more bytes"));
        assert!(slow.content.contains("past its 5 s limit"));
    }

    #[test]
    fn tools_are_not_offered_where_nothing_may_run_them() {
        let off = Arc::new(Workbench::new(
            switchboard_sandbox::SandboxSettings {
                mode: switchboard_sandbox::SandboxMode::Off,
                ..Default::default()
            },
            "/nonexistent",
            Default::default(),
        ));
        let mut reg = ToolRegistry::default();
        register(&mut reg, off);
        let ctx = ToolContext {
            session_key: "agent:main:webchat:dm:op".into(),
            agent: "main".into(),
            channel: "webchat".into(),
            chat_kind: "dm".into(),
            ..Default::default()
        };
        let policy = super::super::ToolPolicy {
            profile: super::super::Profile::Coding,
            ..Default::default()
        };
        assert!(reg.select(&policy, &ctx).is_empty());
    }
}
