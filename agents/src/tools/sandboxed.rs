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
    registry.register(Arc::new(Exec(bench.clone())));
    registry.register(Arc::new(ReadFile(bench.clone())));
    registry.register(Arc::new(WriteFile(bench.clone())));
    registry.register(Arc::new(EditFile(bench.clone())));
    registry.register(Arc::new(ListFiles(bench)));
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

/// `exec`: a shell command in the sandbox.
#[derive(Debug)]
pub struct Exec(Arc<Workbench>);

impl Tool for Exec {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "exec".into(),
            description: "Run a shell command (sh -c) in this conversation's sandbox, starting in /workspace. Returns stdout, stderr and the exit code.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "command": { "type": "string", "description": "The shell command line." },
                    "timeout_secs": { "type": "integer", "minimum": 1, "description": "Stop it after this many seconds (capped by the sandbox's limit)." }
                },
                "required": ["command"],
                "additionalProperties": false
            }),
        }
    }

    fn offered(&self, ctx: &ToolContext) -> bool {
        self.0.offers(&place(ctx))
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.0.settings().exec_timeout_secs) + MARGIN
    }

    fn call(&self, args: Value, ctx: ToolContext) -> BoxFuture<'static, ToolOutput> {
        let bench = self.0.clone();
        Box::pin(async move {
            let command = match str_arg(&args, "command") {
                Ok(c) => c.to_string(),
                Err(e) => return e,
            };
            let mut req = ExecRequest::shell(command);
            req.timeout = args["timeout_secs"].as_u64().map(Duration::from_secs);
            match bench.exec(&place(&ctx), req).await {
                Ok(out) => describe_exec(&out, bench.settings().memory_mb),
                Err(e) => ToolOutput::error(e.to_string()),
            }
        })
    }
}

/// `read_file`: a text file from the workspace.
#[derive(Debug)]
pub struct ReadFile(Arc<Workbench>);

impl Tool for ReadFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "read_file".into(),
            description: "Read a file from the workspace (relative paths start in /workspace). Returns at most 64 KiB from `offset`.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": { "type": "string" },
                    "offset": { "type": "integer", "minimum": 0, "description": "Byte to start at (default 0)." }
                },
                "required": ["path"],
                "additionalProperties": false
            }),
        }
    }

    fn offered(&self, ctx: &ToolContext) -> bool {
        self.0.offers(&place(ctx))
    }

    fn call(&self, args: Value, ctx: ToolContext) -> BoxFuture<'static, ToolOutput> {
        let bench = self.0.clone();
        Box::pin(async move {
            let path = match str_arg(&args, "path") {
                Ok(p) => p.to_string(),
                Err(e) => return e,
            };
            let offset = args["offset"].as_u64().unwrap_or(0);
            match files::read_file(&bench, &place(&ctx), &path, offset, READ_LIMIT).await {
                Ok(chunk) => {
                    let mut text = String::from_utf8_lossy(&chunk.bytes).into_owned();
                    if chunk.more {
                        text.push_str(&format!(
                            "\n[the file goes on; read again with offset {}]",
                            offset + chunk.bytes.len() as u64
                        ));
                    }
                    ToolOutput::ok(text)
                }
                Err(e) => ToolOutput::error(e.to_string()),
            }
        })
    }
}

/// `write_file`: create or replace a file in the workspace.
#[derive(Debug)]
pub struct WriteFile(Arc<Workbench>);

impl Tool for WriteFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "write_file".into(),
            description: "Create or replace a file in the workspace with `content` (parent directories are made).".into(),
            parameters: json!({
                "type": "object",
                "properties": { "path": { "type": "string" }, "content": { "type": "string" } },
                "required": ["path", "content"],
                "additionalProperties": false
            }),
        }
    }

    fn offered(&self, ctx: &ToolContext) -> bool {
        self.0.offers(&place(ctx))
    }

    fn call(&self, args: Value, ctx: ToolContext) -> BoxFuture<'static, ToolOutput> {
        let bench = self.0.clone();
        Box::pin(async move {
            let (path, content) = match (str_arg(&args, "path"), str_arg(&args, "content")) {
                (Ok(p), Ok(c)) => (p.to_string(), c.to_string()),
                (Err(e), _) | (_, Err(e)) => return e,
            };
            match files::write_file(&bench, &place(&ctx), &path, content.as_bytes()).await {
                Ok(at) => ToolOutput::ok(format!("wrote {} bytes to {at}", content.len())),
                Err(e) => ToolOutput::error(e.to_string()),
            }
        })
    }
}

/// `edit_file`: replace one exact piece of text.
#[derive(Debug)]
pub struct EditFile(Arc<Workbench>);

impl Tool for EditFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "edit_file".into(),
            description: "Replace `old_text` with `new_text` in a workspace file. `old_text` must occur exactly once.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": { "type": "string" },
                    "old_text": { "type": "string" },
                    "new_text": { "type": "string" }
                },
                "required": ["path", "old_text", "new_text"],
                "additionalProperties": false
            }),
        }
    }

    fn offered(&self, ctx: &ToolContext) -> bool {
        self.0.offers(&place(ctx))
    }

    fn call(&self, args: Value, ctx: ToolContext) -> BoxFuture<'static, ToolOutput> {
        let bench = self.0.clone();
        Box::pin(async move {
            let (path, old, new) = match (
                str_arg(&args, "path"),
                str_arg(&args, "old_text"),
                str_arg(&args, "new_text"),
            ) {
                (Ok(p), Ok(o), Ok(n)) => (p.to_string(), o.to_string(), n.to_string()),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
            };
            match files::edit_file(&bench, &place(&ctx), &path, &old, &new).await {
                Ok(at) => ToolOutput::ok(format!("edited {at}")),
                Err(e) => ToolOutput::error(e.to_string()),
            }
        })
    }
}

/// `list_files`: what is in a workspace directory.
#[derive(Debug)]
pub struct ListFiles(Arc<Workbench>);

impl Tool for ListFiles {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "list_files".into(),
            description:
                "List a workspace directory (default /workspace); directories end with `/`.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "path": { "type": "string" },
                    "depth": { "type": "integer", "minimum": 1, "maximum": 10, "description": "Levels to descend (default 2)." }
                },
                "additionalProperties": false
            }),
        }
    }

    fn offered(&self, ctx: &ToolContext) -> bool {
        self.0.offers(&place(ctx))
    }

    fn call(&self, args: Value, ctx: ToolContext) -> BoxFuture<'static, ToolOutput> {
        let bench = self.0.clone();
        Box::pin(async move {
            let path = args["path"].as_str().unwrap_or("").to_string();
            let depth = args["depth"].as_u64().unwrap_or(2) as u32;
            match files::list_files(&bench, &place(&ctx), &path, depth, LIST_LIMIT).await {
                Ok((dir, entries, more)) => {
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
                    ToolOutput::ok(text)
                }
                Err(e) => ToolOutput::error(e.to_string()),
            }
        })
    }
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
