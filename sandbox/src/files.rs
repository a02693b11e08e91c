//! File access for the tools, confined to the workspace. Every operation
//! runs as a small POSIX shell script inside the sandbox (or the host
//! runner), so a symlink planted by a command is resolved where it lives and
//! can never lead the gateway itself to a host file. Paths are checked twice:
//! lexically here, and after resolving symlinks in the script.

use crate::{ExecOutput, ExecRequest, Place, SandboxError, Workbench};

/// Most bytes `edit_file` reads and rewrites.
pub const EDIT_LIMIT: usize = 4 * 1024 * 1024;

/// Shared by the scripts: is `$1` inside one of the remaining arguments?
const INSIDE: &str = r#"
inside() { r="$1"; shift; for root in "$@"; do root=$(readlink -f -- "$root"); case "$r" in "$root"|"$root"/*) return 0;; esac; done; return 1; }
"#;

const READ: &str = r#"
P="$1"; OFF="$2"; MAX="$3"; shift 3
[ -e "$P" ] || { echo "there is no file $P" >&2; exit 3; }
R=$(readlink -f -- "$P")
inside "$R" "$@" || { echo "$P leads outside the workspace (to $R)" >&2; exit 4; }
[ -d "$R" ] && { echo "$P is a directory; use list_files to see what is in it" >&2; exit 5; }
[ -f "$R" ] || { echo "$P is not a regular file" >&2; exit 5; }
tail -c +"$((OFF + 1))" -- "$R" | head -c "$MAX"
"#;

const WRITE: &str = r#"
P="$1"; shift 1
D=$(dirname -- "$P")
A="$D"; while [ ! -e "$A" ]; do A=$(dirname -- "$A"); done
RA=$(readlink -f -- "$A")
inside "$RA" "$@" || { echo "$P leads outside the workspace (through $RA)" >&2; exit 4; }
mkdir -p -- "$D" || exit 6
RD=$(readlink -f -- "$D")
inside "$RD" "$@" || { echo "$P leads outside the workspace (to $RD)" >&2; exit 4; }
if [ -L "$P" ]; then
  RP=$(readlink -f -- "$P")
  inside "$RP" "$@" || { echo "$P leads outside the workspace (to $RP)" >&2; exit 4; }
fi
[ -d "$P" ] && { echo "$P is a directory" >&2; exit 5; }
cat > "$P"
"#;

const LIST: &str = r#"
P="$1"; DEPTH="$2"; LIMIT="$3"; shift 3
[ -e "$P" ] || { echo "there is no directory $P" >&2; exit 3; }
R=$(readlink -f -- "$P")
inside "$R" "$@" || { echo "$P leads outside the workspace (to $R)" >&2; exit 4; }
[ -d "$R" ] || { echo "$P is a file; use read_file to read it" >&2; exit 5; }
cd "$R" || exit 5
find . -mindepth 1 -maxdepth "$DEPTH" | sort | head -n "$LIMIT" | while IFS= read -r f; do
  if [ -d "$f" ]; then echo "${f#./}/"; else echo "${f#./}"; fi
done
"#;

/// `path` made absolute (relative paths start in the first root) and
/// normalised, if it lies in one of `roots`; for writes, that root must be
/// writable.
pub fn resolve(roots: &[(String, bool)], path: &str, write: bool) -> Result<String, SandboxError> {
    let Some((base, _)) = roots.first() else {
        return Err(SandboxError::NotAvailable);
    };
    let path = path.trim();
    let joined = if path.starts_with('/') {
        path.to_string()
    } else if path.is_empty() || path == "." {
        base.clone()
    } else {
        format!("{base}/{path}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let normal = format!("/{}", parts.join("/"));
    let names: Vec<&str> = roots.iter().map(|(r, _)| r.as_str()).collect();
    let Some((root, writable)) = roots
        .iter()
        .find(|(r, _)| normal == *r || normal.starts_with(&format!("{r}/")))
    else {
        return Err(SandboxError::Path(format!(
            "`{path}` is outside the workspace; use a path under {} (relative paths start in {base})",
            names.join(" or ")
        )));
    };
    if write && !writable {
        return Err(SandboxError::Path(format!(
            "`{path}` is in {root}, which is mounted read-only ([sandbox] workspace = \"ro\"); write under {base} instead"
        )));
    }
    Ok(normal)
}

fn script(body: &str, args: &[&str], roots: &[(String, bool)]) -> ExecRequest {
    let mut argv: Vec<String> = vec![
        "sh".into(),
        "-c".into(),
        format!("{INSIDE}{body}"),
        "sh".into(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv.extend(roots.iter().map(|(r, _)| r.clone()));
    ExecRequest {
        argv,
        ..ExecRequest::default()
    }
}

fn failed(out: &ExecOutput, what: &str) -> SandboxError {
    let msg = out.stderr_text().trim().to_string();
    match out.exit_code {
        Some(4) => SandboxError::Path(msg),
        _ if out.timed_out => SandboxError::File(format!("{what} did not finish in time")),
        _ if msg.is_empty() => SandboxError::File(format!(
            "{what} failed (exit code {})",
            out.exit_code.map_or("unknown".into(), |c| c.to_string())
        )),
        _ => SandboxError::File(msg),
    }
}

/// What [`read_file`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChunk {
    /// The path as resolved.
    pub path: String,
    /// Up to the asked number of bytes from the offset.
    pub bytes: Vec<u8>,
    /// Whether the file goes on past these bytes.
    pub more: bool,
}

/// Read up to `max` bytes of `path` from byte `offset`.
pub async fn read_file(
    bench: &Workbench,
    place: &Place,
    path: &str,
    offset: u64,
    max: usize,
) -> Result<FileChunk, SandboxError> {
    let roots = bench.roots(place)?;
    let resolved = resolve(&roots, path, false)?;
    let mut req = script(
        READ,
        &[&resolved, &offset.to_string(), &(max + 1).to_string()],
        &roots,
    );
    req.max_output = Some(max + 1);
    let out = bench.exec(place, req).await?;
    if !out.success() {
        return Err(failed(&out, "reading the file"));
    }
    let mut bytes = out.stdout;
    let more = bytes.len() > max;
    bytes.truncate(max);
    Ok(FileChunk {
        path: resolved,
        bytes,
        more,
    })
}

/// Write `content` to `path` (parents made as needed), replacing it.
pub async fn write_file(
    bench: &Workbench,
    place: &Place,
    path: &str,
    content: &[u8],
) -> Result<String, SandboxError> {
    let roots = bench.roots(place)?;
    let resolved = resolve(&roots, path, true)?;
    let mut req = script(WRITE, &[&resolved], &roots);
    req.stdin = Some(content.to_vec());
    let out = bench.exec(place, req).await?;
    if !out.success() {
        return Err(failed(&out, "writing the file"));
    }
    Ok(resolved)
}

/// Replace the one occurrence of `old` in `path` by `new`. Fails, changing
/// nothing, when `old` is missing or occurs more than once.
pub async fn edit_file(
    bench: &Workbench,
    place: &Place,
    path: &str,
    old: &str,
    new: &str,
) -> Result<String, SandboxError> {
    if old.is_empty() {
        return Err(SandboxError::File(
            "old_text is empty; give the exact text to replace (use write_file to create a file)"
                .into(),
        ));
    }
    let roots = bench.roots(place)?;
    resolve(&roots, path, true)?;
    let chunk = read_file(bench, place, path, 0, EDIT_LIMIT).await?;
    if chunk.more {
        return Err(SandboxError::File(format!(
            "{} is larger than {} MiB; edit it with exec (e.g. sed) instead",
            chunk.path,
            EDIT_LIMIT / 1024 / 1024
        )));
    }
    let text = String::from_utf8(chunk.bytes).map_err(|_| {
        SandboxError::File(format!(
            "{} is not UTF-8 text; edit it with exec instead",
            chunk.path
        ))
    })?;
    let count = text.matches(old).count();
    match count {
        0 => Err(SandboxError::File(format!(
            "old_text was not found in {}; read the file and copy the text exactly, including whitespace",
            chunk.path
        ))),
        1 => {
            let updated = text.replacen(old, new, 1);
            write_file(bench, place, path, updated.as_bytes()).await?;
            Ok(chunk.path)
        }
        n => Err(SandboxError::File(format!(
            "old_text occurs {n} times in {}; include more of the surrounding text so it matches once",
            chunk.path
        ))),
    }
}

/// The entries under `path` down to `depth` levels, directories marked with
/// a trailing `/`, at most `limit` of them.
pub async fn list_files(
    bench: &Workbench,
    place: &Place,
    path: &str,
    depth: u32,
    limit: usize,
) -> Result<(String, Vec<String>, bool), SandboxError> {
    let roots = bench.roots(place)?;
    let resolved = resolve(&roots, path, false)?;
    let req = script(
        LIST,
        &[
            &resolved,
            &depth.clamp(1, 10).to_string(),
            &(limit + 1).to_string(),
        ],
        &roots,
    );
    let out = bench.exec(place, req).await?;
    if !out.success() {
        return Err(failed(&out, "listing the directory"));
    }
    let mut entries: Vec<String> = out.stdout_text().lines().map(str::to_string).collect();
    let more = entries.len() > limit;
    entries.truncate(limit);
    Ok((resolved, entries, more))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots() -> Vec<(String, bool)> {
        vec![("/workspace".into(), true), ("/agent".into(), false)]
    }

    #[test]
    fn relative_paths_start_in_the_workspace() {
        assert_eq!(
            resolve(&roots(), "notes/a.txt", false).unwrap(),
            "/workspace/notes/a.txt"
        );
        assert_eq!(resolve(&roots(), "", false).unwrap(), "/workspace");
        assert_eq!(resolve(&roots(), "./x/../y", true).unwrap(), "/workspace/y");
        assert_eq!(
            resolve(&roots(), "/agent/README", false).unwrap(),
            "/agent/README"
        );
    }

    #[test]
    fn escapes_are_refused_before_anything_runs() {
        for p in [
            "../etc/passwd",
            "/etc/passwd",
            "/workspace/../../etc",
            "/workspacex/a",
            "/",
        ] {
            let err = resolve(&roots(), p, false).unwrap_err().to_string();
            assert!(err.contains("outside the workspace"), "{p}: {err}");
        }
    }

    #[test]
    fn read_only_roots_refuse_writes() {
        let err = resolve(&roots(), "/agent/x", true).unwrap_err().to_string();
        assert!(err.contains("read-only"), "{err}");
        assert!(resolve(&roots(), "/agent/x", false).is_ok());
    }
}
