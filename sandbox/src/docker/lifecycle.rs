//! Listing, pruning and removing a gateway's containers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::ListContainersOptions;

use super::{ContainerInfo, Sandboxes, Slot, force_remove};
use crate::{LABEL_AGENT, LABEL_MANAGED, LABEL_OWNER, LABEL_SCOPE, LABEL_SESSION, SandboxError};

impl Sandboxes {
    /// This gateway's containers (or everyone's with `all_owners`).
    pub async fn list(&self, all_owners: bool) -> Result<Vec<ContainerInfo>, SandboxError> {
        let docker = self.docker().await?;
        let mut label = vec![format!("{LABEL_MANAGED}=true")];
        if !all_owners {
            label.push(format!("{LABEL_OWNER}={}", self.owner));
        }
        let found = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([("label".to_string(), label)])),
                ..Default::default()
            }))
            .await;
        let found = match found {
            Ok(f) => f,
            Err(e) => return Err(self.fail("list containers", e).await),
        };
        let mut out: Vec<ContainerInfo> = found
            .into_iter()
            .map(|c| {
                let labels = c.labels.unwrap_or_default();
                let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
                ContainerInfo {
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_string(),
                    id: c.id.unwrap_or_default().chars().take(12).collect(),
                    scope: label(LABEL_SCOPE),
                    session: label(LABEL_SESSION),
                    agent: label(LABEL_AGENT),
                    state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                    created: c.created.unwrap_or_default(),
                    owner: label(LABEL_OWNER),
                    image: c.image.unwrap_or_default(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn remove(&self, docker: &Docker, name_or_id: &str) -> Result<(), SandboxError> {
        match docker
            .remove_container(name_or_id, Some(force_remove()))
            .await
        {
            Ok(())
            | Err(DockerError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(self.fail("remove a sandbox container", e).await),
        }
    }

    /// Remove containers idle longer than `idle_prune_secs` or older than
    /// `max_age_secs` and not running a command; also this gateway's
    /// containers left from an earlier run once they are that old. Returns
    /// the names removed.
    pub async fn prune_idle(&self) -> Result<Vec<String>, SandboxError> {
        let idle = Duration::from_secs(self.settings.idle_prune_secs);
        let max_age = Duration::from_secs(self.settings.max_age_secs);
        let docker = self.docker().await?;
        let mut removed = Vec::new();
        let slots: Vec<(String, Arc<Slot>)> = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        let mut known = Vec::new();
        for (key, slot) in slots {
            known.push(self.container_name(&key));
            let Ok(mut live) = slot.live.try_lock() else {
                continue;
            };
            let Some(l) = live.clone() else {
                continue;
            };
            let last = *slot.last_used.lock().unwrap_or_else(|e| e.into_inner());
            let stale = last.elapsed() >= idle || l.created.elapsed() >= max_age;
            if slot.busy.load(Ordering::SeqCst) == 0 && stale {
                self.remove(&docker, &l.id).await?;
                *live = None;
                removed.push(self.container_name(&key));
            }
        }
        // Forget empty slots so a gateway with many sessions stays small.
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| {
                s.busy.load(Ordering::SeqCst) > 0
                    || s.live.try_lock().map(|l| l.is_some()).unwrap_or(true)
            });
        let now = unix_now();
        for c in self.list(false).await? {
            let age = Duration::from_secs(now.saturating_sub(c.created).max(0) as u64);
            if !known.contains(&c.name) && age >= idle.min(max_age) {
                self.remove(&docker, &c.name).await?;
                removed.push(c.name);
            }
        }
        Ok(removed)
    }

    /// Remove this gateway's containers that run no command now (all of
    /// them with `force`). Returns (removed, left because busy).
    pub async fn prune(&self, force: bool) -> Result<(Vec<String>, Vec<String>), SandboxError> {
        let docker = self.docker().await?;
        let mut removed = Vec::new();
        let mut busy = Vec::new();
        for c in self.list(false).await? {
            if !force && self.running_execs(&docker, &c.name).await > 0 {
                busy.push(c.name);
                continue;
            }
            self.remove(&docker, &c.name).await?;
            removed.push(c.name);
        }
        self.forget_all().await;
        Ok((removed, busy))
    }

    async fn running_execs(&self, docker: &Docker, container: &str) -> usize {
        let Ok(info) = docker.inspect_container(container, None).await else {
            return 0;
        };
        let mut n = 0;
        for id in info.exec_ids.unwrap_or_default() {
            if let Ok(e) = docker.inspect_exec(&id).await
                && e.running == Some(true)
            {
                n += 1;
            }
        }
        n
    }

    /// Remove every container of this gateway (at shutdown).
    pub async fn remove_all(&self) -> Result<usize, SandboxError> {
        let docker = self.docker().await?;
        let all = self.list(false).await?;
        for c in &all {
            self.remove(&docker, &c.name).await?;
        }
        self.forget_all().await;
        Ok(all.len())
    }

    async fn forget_all(&self) {
        let slots: Vec<Arc<Slot>> = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for s in slots {
            *s.live.lock().await = None;
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
