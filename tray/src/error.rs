//! The tray's errors: each says what was wrong and what to do.

use std::path::PathBuf;

/// What can go wrong in the tray.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file could not be read or is not TOML.
    #[error("cannot use the config {}: {why}. Check the path given with --config or SWITCHBOARD_CONFIG", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The gateway's address is not one the tray can use.
    #[error("{0}")]
    Address(String),
    /// No data directory could be found for the token file.
    #[error(
        "cannot find a data directory for this user (is HOME set?): pass --data-dir, set SWITCHBOARD_DATA_DIR, or set SWITCHBOARD_TOKEN"
    )]
    NoDataDir,
    /// No control token is given and the token file does not exist (yet).
    #[error(
        "no control token: set SWITCHBOARD_TOKEN, or run the tray as the user whose data directory ({}) holds control-token (the gateway writes it at its first start)",
        dir.display()
    )]
    NoToken {
        /// The data directory that lacks `control-token`.
        dir: PathBuf,
    },
    /// The token file exists but cannot be read.
    #[error("cannot read the control token {}: {source}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The gateway could not be reached or its answer not read.
    #[error("cannot reach the gateway at {url}: {why}")]
    Unreachable {
        /// The gateway's address.
        url: String,
        /// Why.
        why: String,
    },
    /// The gateway answered, but not with what was asked for.
    #[error("the gateway at {url} answered HTTP {status}: {hint}")]
    Refused {
        /// The gateway's address.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What it means and what to do.
        hint: String,
    },
    /// The D-Bus session bus or the tray host is not usable.
    #[error("{0}")]
    Dbus(String),
    /// Starting or stopping the gateway failed, or is not the tray's to do.
    #[error("{0}")]
    Power(String),
    /// The browser could not be started.
    #[error(
        "cannot open the browser with `{program}`: {source}. Set SWITCHBOARD_TRAY_OPENER to a program that opens a URL"
    )]
    Opener {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The autostart entry could not be written.
    #[error("cannot write the autostart entry {}: {source}", path.display())]
    Autostart {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Setting the process up (signals, runtime) failed.
    #[error("{0}")]
    Setup(String),
}
