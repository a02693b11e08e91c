//! Saving a platform's file download for the agent, with the size limit
//! every adapter applies.

use std::path::Path;

use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use crate::ChannelError;

/// Refuse `name` up front when the platform says it is over `max_bytes`.
pub fn check_size(name: &str, size: Option<u64>, max_bytes: u64) -> Result<(), ChannelError> {
    match size {
        Some(s) if s > max_bytes => Err(ChannelError::Rejected(format!(
            "{name} is {} KB, over the {} KB limit",
            s / 1024,
            max_bytes / 1024
        ))),
        _ => Ok(()),
    }
}

/// Write the body `chunks` of file `name` into `dest`, stopping with an
/// error once it passes `max_bytes`; returns the bytes written.
pub async fn save<S, B, E>(
    mut chunks: S,
    name: &str,
    dest: &Path,
    max_bytes: u64,
) -> Result<u64, ChannelError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let cannot_write =
        |e: std::io::Error| ChannelError::Rejected(format!("cannot write {}: {e}", dest.display()));
    let mut out = tokio::fs::File::create(dest).await.map_err(cannot_write)?;
    let mut written = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk =
            chunk.map_err(|e| ChannelError::Unavailable(format!("download failed: {e}")))?;
        let chunk = chunk.as_ref();
        written += chunk.len() as u64;
        if written > max_bytes {
            return Err(ChannelError::Rejected(format!(
                "{name} is over the {} KB limit",
                max_bytes / 1024
            )));
        }
        out.write_all(chunk).await.map_err(cannot_write)?;
    }
    out.flush().await.map_err(cannot_write)?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_download_past_the_limit_is_refused() {
        let dir = std::env::temp_dir().join(format!("sb-download-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("f");
        let chunks =
            || futures::stream::iter([Ok::<_, String>(vec![1u8; 600]), Ok(vec![2u8; 600])]);
        assert_eq!(save(chunks(), "f", &dest, 2000).await.unwrap(), 1200);
        assert_eq!(std::fs::read(&dest).unwrap().len(), 1200);
        let err = save(chunks(), "f", &dest, 1000).await.unwrap_err();
        assert!(err.to_string().contains("over the"), "{err}");
        assert!(check_size("f", Some(5000), 1024).is_err());
        assert!(check_size("f", None, 1024).is_ok());
        let failing = futures::stream::iter([Err::<Vec<u8>, _>("reset by peer")]);
        let err = save(failing, "f", &dest, 1000).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
