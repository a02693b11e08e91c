//! Building sandbox images: from the Dockerfile in `deploy/sandbox/` (needs
//! a registry), offline from a Debian root filesystem made with debootstrap
//! and imported into the engine, or a tiny busybox image for tests. Every
//! step reports progress through a callback.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bollard::query_parameters::{BuildImageOptions, CreateImageOptions};
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::{SandboxError, Sandboxes};

/// The Dockerfile of the default image.
pub const DOCKERFILE: &str = include_str!("../../deploy/sandbox/Dockerfile");
/// The Debian packages of the default image, one per line (`#` comments).
pub const PACKAGES_TXT: &str = include_str!("../../deploy/sandbox/packages.txt");

/// The packages of the default image.
pub fn packages() -> Vec<&'static str> {
    PACKAGES_TXT
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// How to make the image.
#[derive(Debug, Clone)]
pub enum Recipe {
    /// `docker build` of `deploy/sandbox/Dockerfile` (pulls
    /// `debian:bookworm-slim` from a registry).
    Dockerfile,
    /// debootstrap from a Debian archive, then import; the root filesystem
    /// is kept in `cache` as a tarball and reused.
    Debootstrap {
        /// Debian suite, e.g. `bookworm`.
        suite: String,
        /// Archive URL, e.g. `http://deb.debian.org/debian`.
        mirror: String,
        /// Directory for the cached root filesystem.
        cache: PathBuf,
    },
    /// A scratch image holding Debian's static busybox and its applets.
    Busybox {
        /// The static busybox binary.
        binary: PathBuf,
    },
}

/// Progress lines go here.
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

fn io(what: &str) -> impl Fn(std::io::Error) -> SandboxError + '_ {
    move |e| SandboxError::Host(format!("{what}: {e}"))
}

impl Sandboxes {
    /// Build the image `tag` by `recipe`, reporting progress.
    pub async fn build_image(
        &self,
        recipe: &Recipe,
        tag: &str,
        progress: Progress,
    ) -> Result<(), SandboxError> {
        let (repo, version) = split_tag(tag);
        match recipe {
            Recipe::Dockerfile => self.build_dockerfile(tag, progress).await,
            Recipe::Busybox { binary } => {
                let staging = temp_dir("busybox")?;
                let made = make_busybox_root(binary, &staging, &progress);
                let result = match made {
                    Ok(()) => {
                        self.import_dir(&staging, repo, version, progress.clone())
                            .await
                    }
                    Err(e) => Err(e),
                };
                let _ = std::fs::remove_dir_all(&staging);
                result
            }
            Recipe::Debootstrap {
                suite,
                mirror,
                cache,
            } => {
                let tarball = cache.join(format!(
                    "rootfs-{suite}-{:08x}.tar",
                    crate::stable_hash(&[mirror, PACKAGES_TXT]) as u32
                ));
                if tarball.exists() {
                    progress(&format!(
                        "using the cached root filesystem {} (delete it to make a fresh one)",
                        tarball.display()
                    ));
                } else {
                    debootstrap(suite, mirror, &tarball, &progress).await?;
                }
                self.import_tarball(&tarball, repo, version, progress).await
            }
        }
    }

    async fn build_dockerfile(&self, tag: &str, progress: Progress) -> Result<(), SandboxError> {
        let staging = temp_dir("dockerfile")?;
        std::fs::write(staging.join("Dockerfile"), DOCKERFILE).map_err(io("write Dockerfile"))?;
        std::fs::write(staging.join("packages.txt"), PACKAGES_TXT)
            .map_err(io("write packages.txt"))?;
        let context = tokio::process::Command::new("tar")
            .args(["-C"])
            .arg(&staging)
            .args(["-c", "."])
            .output()
            .await
            .map_err(io("run tar"))?;
        let _ = std::fs::remove_dir_all(&staging);
        let docker = self.docker().await?;
        progress("sending the build context to the engine");
        let mut stream = docker.build_image(
            BuildImageOptions {
                t: Some(tag.to_string()),
                rm: true,
                ..Default::default()
            },
            None,
            Some(bollard::body_full(context.stdout.into())),
        );
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(line) = info.stream.or(info.status) {
                        let line = line.trim_end();
                        if !line.is_empty() {
                            progress(line);
                        }
                    }
                    if let Some(err) = info.error_detail.and_then(|e| e.message) {
                        let err: String = err;
                        return Err(build_failed(&err));
                    }
                }
                Err(bollard::errors::Error::DockerStreamError { error }) => {
                    return Err(build_failed(&error));
                }
                Err(e) => return Err(self.fail("build the image", e).await),
            }
        }
        Ok(())
    }

    /// Import a directory as a single-layer image.
    async fn import_dir(
        &self,
        dir: &Path,
        repo: &str,
        tag: &str,
        progress: Progress,
    ) -> Result<(), SandboxError> {
        let mut child = tokio::process::Command::new("tar")
            .arg("-C")
            .arg(dir)
            .args(["--numeric-owner", "-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(io("run tar"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| SandboxError::Host("tar gave no output".into()))?;
        let result = self
            .import(
                tokio_util::io::ReaderStream::new(stdout),
                repo,
                tag,
                progress,
            )
            .await;
        let _ = child.wait().await;
        result
    }

    async fn import_tarball(
        &self,
        tarball: &Path,
        repo: &str,
        tag: &str,
        progress: Progress,
    ) -> Result<(), SandboxError> {
        let file = tokio::fs::File::open(tarball)
            .await
            .map_err(io("open the root filesystem"))?;
        self.import(tokio_util::io::ReaderStream::new(file), repo, tag, progress)
            .await
    }

    async fn import(
        &self,
        body: impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
        repo: &str,
        tag: &str,
        progress: Progress,
    ) -> Result<(), SandboxError> {
        let docker = self.docker().await?;
        progress(&format!("importing into the engine as {repo}:{tag}"));
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let report = progress.clone();
        let body = body.inspect(move |chunk| {
            if let Ok(b) = chunk {
                let before = counter.fetch_add(b.len() as u64, Ordering::Relaxed);
                let after = before + b.len() as u64;
                const STEP: u64 = 32 * 1024 * 1024;
                if before / STEP != after / STEP {
                    report(&format!("  sent {} MiB", after / 1024 / 1024));
                }
            }
        });
        let mut stream = docker.create_image(
            Some(CreateImageOptions {
                from_src: Some("-".into()),
                repo: Some(repo.into()),
                tag: Some(tag.into()),
                changes: vec![
                    "USER 1000:1000".into(),
                    "WORKDIR /workspace".into(),
                    "ENV HOME=/tmp LANG=C.UTF-8".into(),
                    "CMD [\"sh\"]".into(),
                ],
                ..Default::default()
            }),
            Some(bollard::body_try_stream(body)),
            None,
        );
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                return Err(self.fail("import the image", e).await);
            }
        }
        progress(&format!(
            "imported {repo}:{tag} ({} MiB)",
            sent.load(Ordering::Relaxed) / 1024 / 1024
        ));
        Ok(())
    }
}

fn build_failed(detail: &str) -> SandboxError {
    SandboxError::Engine {
        action: "build the image".into(),
        detail: format!(
            "{detail}. Without a container registry, build offline: `switchboard sandbox build-image --from debootstrap`"
        ),
    }
}

fn split_tag(tag: &str) -> (&str, &str) {
    match tag.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (tag, "latest"),
    }
}

fn temp_dir(what: &str) -> Result<PathBuf, SandboxError> {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-{what}-{}-{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).map_err(io("make a staging directory"))?;
    Ok(dir)
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nsandbox:x:1000:1000:sandbox:/workspace:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n";

/// Lay out a busybox root in `root`.
fn make_busybox_root(binary: &Path, root: &Path, progress: &Progress) -> Result<(), SandboxError> {
    let bytes = std::fs::read(binary).map_err(|e| {
        SandboxError::Host(format!(
            "cannot read {}: {e}; install Debian's busybox-static (`apt-get install busybox-static`)",
            binary.display()
        ))
    })?;
    if bytes.windows(8).take(8192).any(|w| w == b"ld-linux") {
        return Err(SandboxError::Host(format!(
            "{} is dynamically linked and cannot run in an empty image; install Debian's busybox-static",
            binary.display()
        )));
    }
    for d in ["bin", "etc", "tmp", "workspace", "agent"] {
        std::fs::create_dir_all(root.join(d)).map_err(io("make the image's directories"))?;
    }
    std::fs::write(root.join("bin/busybox"), &bytes).map_err(io("copy busybox"))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        root.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o755),
    )
    .map_err(io("chmod busybox"))?;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .map_err(io("chmod /tmp"))?;
    let list = std::process::Command::new(binary)
        .arg("--list")
        .output()
        .map_err(io("list busybox applets"))?;
    let mut n = 0;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
            .map_err(io("link an applet"))?;
        n += 1;
    }
    std::fs::write(root.join("etc/passwd"), PASSWD).map_err(io("write /etc/passwd"))?;
    std::fs::write(root.join("etc/group"), GROUP).map_err(io("write /etc/group"))?;
    progress(&format!("laid out busybox with {n} applets"));
    Ok(())
}

/// Make the default root filesystem with debootstrap and pack it into
/// `tarball`.
async fn debootstrap(
    suite: &str,
    mirror: &str,
    tarball: &Path,
    progress: &Progress,
) -> Result<(), SandboxError> {
    if which("debootstrap").is_none() {
        return Err(SandboxError::Host(
            "debootstrap is not installed; install it (`apt-get install debootstrap`) or build with --from dockerfile where a registry is reachable".into(),
        ));
    }
    let cache = tarball.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(cache).map_err(io("make the cache directory"))?;
    let root = cache.join(format!("rootfs-{suite}.partial"));
    let _ = std::fs::remove_dir_all(&root);
    let include = packages().join(",");
    progress(&format!(
        "debootstrap {suite} from {mirror} with {include} (a few minutes; the result is cached in {})",
        cache.display()
    ));
    let mut child = tokio::process::Command::new("debootstrap")
        .args(["--variant=minbase", &format!("--include={include}"), suite])
        .arg(&root)
        .arg(mirror)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("run debootstrap"))?;
    let out = child.stdout.take();
    let err = child.stderr.take();
    let tail = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let pump = |pipe: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
        let progress = progress.clone();
        let tail = tail.clone();
        async move {
            let Some(pipe) = pipe else { return };
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                progress(&format!("  {line}"));
                let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                t.push(line);
                if t.len() > 5 {
                    t.remove(0);
                }
            }
        }
    };
    let (_, _, status) = tokio::join!(
        pump(out.map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>)),
        pump(err.map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>)),
        child.wait()
    );
    let status = status.map_err(io("wait for debootstrap"))?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&root);
        let last = tail.lock().unwrap_or_else(|e| e.into_inner()).join("\n");
        return Err(SandboxError::Host(format!(
            "debootstrap failed ({status}); it needs root and access to {mirror}. Last lines:\n{last}"
        )));
    }
    // The sandbox user, its directories, and no package caches.
    let append = |file: &str, line: &str| -> Result<(), SandboxError> {
        let path = root.join(file);
        let mut text = std::fs::read_to_string(&path).map_err(io(file))?;
        if !text.lines().any(|l| l.starts_with("sandbox:")) {
            text.push_str(line);
            std::fs::write(&path, text).map_err(io(file))?;
        }
        Ok(())
    };
    append(
        "etc/passwd",
        "sandbox:x:1000:1000:sandbox:/workspace:/bin/sh\n",
    )?;
    append("etc/group", "sandbox:x:1000:\n")?;
    for d in ["workspace", "agent"] {
        std::fs::create_dir_all(root.join(d)).map_err(io("make /workspace"))?;
    }
    for d in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        if let Ok(entries) = std::fs::read_dir(root.join(d)) {
            for e in entries.flatten() {
                if e.path().is_file() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    progress("packing the root filesystem");
    let partial = tarball.with_extension("tar.partial");
    let status = tokio::process::Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["--numeric-owner", "--exclude=./dev/*", "-cf"])
        .arg(&partial)
        .arg(".")
        .status()
        .await
        .map_err(io("run tar"))?;
    let _ = std::fs::remove_dir_all(&root);
    if !status.success() {
        return Err(SandboxError::Host(format!("tar failed ({status})")));
    }
    std::fs::rename(&partial, tarball).map_err(io("keep the root filesystem"))?;
    Ok(())
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_image_has_what_agents_reach_for() {
        let p = packages();
        for want in ["python3", "git", "curl", "jq", "ripgrep"] {
            assert!(p.contains(&want), "{want} missing from packages.txt");
        }
        assert!(DOCKERFILE.contains("packages.txt"));
    }

    #[test]
    fn tags_split_into_repository_and_tag() {
        assert_eq!(
            split_tag("switchboard-sandbox:bookworm"),
            ("switchboard-sandbox", "bookworm")
        );
        assert_eq!(
            split_tag("registry:5000/sb"),
            ("registry:5000/sb", "latest")
        );
        assert_eq!(split_tag("sb"), ("sb", "latest"));
    }
}
