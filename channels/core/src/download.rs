//! Saving a platform's file download for the agent, with the size limit
//! every adapter applies.

use futures::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

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

/// Write the body `chunks` of file `name` into `out`, stopping with an
/// error once it passes `max_bytes`; returns the bytes written.
pub async fn save<S, B, E>(
    mut chunks: S,
    name: &str,
    out: &mut (dyn AsyncWrite + Unpin + Send),
    max_bytes: u64,
) -> Result<u64, ChannelError>
where
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    let cannot_write =
        |e: std::io::Error| ChannelError::Rejected(format!("cannot write {name}: {e}"));
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
        let chunks =
            || futures::stream::iter([Ok::<_, String>(vec![1u8; 600]), Ok(vec![2u8; 600])]);
        let mut dest = Vec::new();
        assert_eq!(save(chunks(), "f", &mut dest, 2000).await.unwrap(), 1200);
        assert_eq!(dest.len(), 1200);
        let mut dest = Vec::new();
        let err = save(chunks(), "f", &mut dest, 1000).await.unwrap_err();
        assert!(dest.len() <= 1000);
        assert!(err.to_string().contains("over the"), "{err}");
        assert!(check_size("f", Some(5000), 1024).is_err());
        assert!(check_size("f", None, 1024).is_ok());
        let failing = futures::stream::iter([Err::<Vec<u8>, _>("reset by peer")]);
        let err = save(failing, "f", &mut Vec::new(), 1000).await.unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }
}
