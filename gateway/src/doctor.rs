//! `switchboard doctor`: check what a gateway needs before it is trusted
//! with messages — the config, the data directory, the model providers and
//! the sandbox (engine, image, policy) — and name the risks.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use crate::config::LoadedConfig;

/// Print the checks; fails when one of them did.
pub async fn run(loaded: anyhow::Result<LoadedConfig>) -> anyhow::Result<()> {
    let mut problems = 0;
    let mut line = |ok: Option<bool>, text: &str| {
        let mark = match ok {
            Some(true) => "ok  ",
            Some(false) => {
                problems += 1;
                "FAIL"
            }
            None => "RISK",
        };
        println!("{mark} {text}");
    };
    let loaded = match loaded {
        Ok(l) => {
            line(Some(true), "config: valid");
            l
        }
        Err(e) => {
            line(Some(false), &format!("config: {e}"));
            anyhow::bail!("the config is not valid; fix it first");
        }
    };
    let config = &loaded.config;
    match crate::serve::data_dir(config) {
        Ok(dir) => {
            let probe = dir.join(".doctor-probe");
            let writable = std::fs::create_dir_all(&dir)
                .and_then(|()| std::fs::write(&probe, b""))
                .and_then(|()| std::fs::remove_file(&probe));
            match writable {
                Ok(()) => line(
                    Some(true),
                    &format!("data directory: {} is writable", dir.display()),
                ),
                Err(e) => line(
                    Some(false),
                    &format!("data directory: {}: {e}", dir.display()),
                ),
            }
            let bench = crate::sandbox::workbench(config, &dir);
            for (ok, text) in crate::sandbox::report(&bench).await {
                let ok = if text.starts_with("risk:") {
                    None
                } else {
                    Some(ok)
                };
                line(ok, &format!("sandbox {text}"));
            }
        }
        Err(e) => line(Some(false), &format!("data directory: {e}")),
    }
    encryption(&loaded, &mut line);
    for (name, p) in &config.providers {
        let provider =
            crate::serve::provider_for(name, p, &p.model, &crate::telemetry::Telemetry::disabled());
        match tokio::time::timeout(Duration::from_secs(10), provider.probe()).await {
            Ok(Ok(())) => line(
                Some(true),
                &format!(
                    "provider {name}: {} answers",
                    switchboard_agents::shown_url(&p.base_url)
                ),
            ),
            Ok(Err(e)) => line(Some(false), &format!("provider {name}: {e}")),
            Err(_) => line(
                Some(false),
                &format!(
                    "provider {name}: {} did not answer within 10 s",
                    switchboard_agents::shown_url(&p.base_url)
                ),
            ),
        }
    }
    if problems > 0 {
        anyhow::bail!("{problems} check(s) failed");
    }
    Ok(())
}

/// Encryption at rest: off is a risk; the key file must be private.
fn encryption(loaded: &LoadedConfig, line: &mut impl FnMut(Option<bool>, &str)) {
    use std::os::unix::fs::PermissionsExt as _;

    use crate::config::EncryptionMode;
    let enc = &loaded.config.store.encryption;
    let Ok(data_dir) = crate::serve::data_dir(&loaded.config) else {
        return;
    };
    let loc = crate::vault::Location {
        data_dir,
        config_dir: crate::vault::config_dir(loaded.path.as_deref()),
        encryption: enc.clone(),
        url: loaded.config.store.url.clone(),
    };
    match enc.mode {
        EncryptionMode::Off => line(
            None,
            "encryption at rest: off ([store.encryption] mode = \"off\"): transcripts, messages and memories are stored in plain text; set mode = \"keyfile\" (the default)",
        ),
        mode => {
            line(
                Some(true),
                &format!(
                    "encryption at rest: {} (keyring {})",
                    mode.as_str(),
                    loc.keyring().display()
                ),
            );
            if mode == EncryptionMode::Keyfile
                && let Ok(meta) = std::fs::metadata(loc.key_file())
                && meta.permissions().mode() & 0o077 != 0
            {
                line(
                    None,
                    &format!(
                        "key file {} can be read by other users: run `chmod 600` on it",
                        loc.key_file().display()
                    ),
                );
            }
            if loc.key_file().starts_with(&loc.data_dir) || loc.keyring().starts_with(&loc.data_dir)
            {
                line(
                    None,
                    "the key file or keyring is inside the data directory: a copy of the data directory alone can then be read; keep them in the config directory",
                );
            }
        }
    }
}
