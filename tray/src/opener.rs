//! Opening a link in the desktop's browser: `xdg-open` (`open` on macOS),
//! or the program `SWITCHBOARD_TRAY_OPENER` names (tests use it), run with
//! the URL as its only argument.

use std::ffi::OsString;
use std::process::Stdio;

use crate::Error;

/// The variable that replaces the opener.
pub const OPENER_VAR: &str = "SWITCHBOARD_TRAY_OPENER";

/// The opener when none is set.
pub const DEFAULT_OPENER: &str = if cfg!(target_os = "macos") {
    "open"
} else {
    "xdg-open"
};

/// The program to run: `configured` (the variable's value) unless empty.
pub fn opener_program(configured: Option<OsString>) -> OsString {
    configured
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_OPENER.into())
}

/// Open `url` (a secret until used: it is never logged). The opener runs
/// on its own; it is reaped when it exits.
pub fn open(url: &str) -> Result<(), Error> {
    let program = opener_program(std::env::var_os(OPENER_VAR));
    let mut command = tokio::process::Command::new(&program);
    // The browser and whatever it starts get none of the tray's settings,
    // the control token least of all.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SWITCHBOARD_") {
            command.env_remove(&name);
        }
    }
    let mut child = command
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| Error::Opener {
            program: program.to_string_lossy().into_owned(),
            source,
        })?;
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_replaces_the_default_opener() {
        assert_eq!(opener_program(None), OsString::from(DEFAULT_OPENER));
        assert_eq!(
            opener_program(Some("".into())),
            OsString::from(DEFAULT_OPENER)
        );
        assert_eq!(
            opener_program(Some("/tmp/record-url".into())),
            OsString::from("/tmp/record-url")
        );
    }
}
