//! Sealing what is not sealed under an active key: the first start with
//! encryption (plain values) and `keys rotate --reencrypt` (values under
//! retired keys), resumable batch by batch.

use std::collections::HashMap;

use super::{BATCH, SUBJECT_KEY, SealedStore, aad};
use crate::crypto;
use crate::{Cell, Column, MemoryRecord, StoreError};

impl SealedStore {
    /// Seal every value not sealed under an active key: plain values (the
    /// upgrade of a data directory written before encryption, or with it
    /// off) and values under retired keys (`keys rotate --reencrypt`), in
    /// batches of one transaction each, so that a run stopped half-way
    /// goes on where it stopped. `progress` hears each column's count so
    /// far. Returns how many values were rewritten.
    pub async fn seal_all(
        &self,
        upgrading: bool,
        progress: &mut (dyn FnMut(Column, u64) + Send),
    ) -> Result<u64, StoreError> {
        let mut total = 0;
        // Whose each person key is (for values re-sealed from a retired
        // one: the row itself may not say, e.g. an earlier conversation).
        let owners: HashMap<String, String> = self
            .inner
            .meta_list(SUBJECT_KEY)
            .await?
            .into_iter()
            .filter_map(|(k, kid)| Some((kid, k.strip_prefix(SUBJECT_KEY)?.to_string())))
            .collect();
        for column in Column::ALL {
            let mut after: Option<String> = None;
            let mut done = 0u64;
            let mut plain_memories: Option<HashMap<String, MemoryRecord>> = None;
            loop {
                let cells = self.inner.cells(column, after.as_deref(), BATCH).await?;
                let Some(last) = cells.last() else { break };
                after = Some(last.row.clone());
                let mut writes = Vec::new();
                for cell in &cells {
                    if let Some(sealed) = self
                        .reseal(column, cell, upgrading, &owners, &mut plain_memories)
                        .await?
                    {
                        writes.push((cell.row.clone(), sealed));
                    }
                }
                if !writes.is_empty() {
                    self.inner.cells_write(column, &writes).await?;
                    done += writes.len() as u64;
                    total += writes.len() as u64;
                    progress(column, done);
                }
            }
        }
        Ok(total)
    }

    /// The value `cell` should hold instead, if it is not sealed under an
    /// active key yet.
    async fn reseal(
        &self,
        column: Column,
        cell: &Cell,
        upgrading: bool,
        owners: &HashMap<String, String>,
        plain_memories: &mut Option<HashMap<String, MemoryRecord>>,
    ) -> Result<Option<String>, StoreError> {
        let binding = aad(column, &cell.context);
        let what = || format!("{} of {}", column.name(), cell.context.replace('\0', "/"));
        if let Some(kid) = crypto::key_id(&cell.value)
            && crypto::parse(&cell.value).is_some()
        {
            match self.ring.key_by_id(kid) {
                Some((_, _, false)) => return Ok(None),
                Some((shared, key, true)) => match key.open(&binding, &cell.value) {
                    Ok(plain) => {
                        let owner = owners.get(kid).map(String::as_str);
                        let subject = if shared {
                            None
                        } else {
                            owner.or(cell.subject.as_deref())
                        };
                        let (kid, key) = self.key_for(subject).await?;
                        return Ok(Some(key.seal(&kid, &binding, &plain)));
                    }
                    // Plain text that only looks sealed (someone wrote it
                    // before encryption was on) is sealed as it is.
                    Err(_) if upgrading => {}
                    Err(error) => {
                        return Err(StoreError::Crypto {
                            what: what(),
                            error,
                        });
                    }
                },
                None if upgrading => {}
                None => {
                    return Err(StoreError::Crypto {
                        what: what(),
                        error: crypto::CryptoError::UnknownKey(kid.to_string()),
                    });
                }
            }
        }
        if column == Column::MemoryText {
            // A plain memory keeps its tags and vector in columns of their
            // own; sealed, they go with the text.
            if plain_memories.is_none() {
                let all = self.inner.memory_list(None, None).await?;
                *plain_memories = Some(all.into_iter().map(|m| (m.id.clone(), m)).collect());
            }
            let Some(m) = plain_memories
                .as_ref()
                .and_then(|all| all.get(&cell.context))
            else {
                return Ok(None);
            };
            let m = m.clone();
            return Ok(Some(self.seal_memory(&m).await?));
        }
        let (kid, key) = self.key_for(cell.subject.as_deref()).await?;
        Ok(Some(key.seal(&kid, &binding, cell.value.as_bytes())))
    }
}
