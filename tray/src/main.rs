//! `switchboard-tray`: the desktop tray companion of Switchboard.
#![allow(clippy::print_stdout, clippy::print_stderr)] // a command line's output
#![cfg_attr(not(target_os = "linux"), allow(dead_code))] // the tray runs on Linux only for now

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use switchboard_tray::locate::Hints;

/// The Switchboard tray: how the gateway is, in the desktop's tray, with
/// a menu that opens the control UI.
#[derive(Debug, Parser)]
#[command(name = "switchboard-tray", version, about)]
struct Cli {
    /// The gateway's config file (TOML), for its address and token.
    #[arg(long, env = "SWITCHBOARD_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// The gateway's data directory, where its control token lives.
    #[arg(long, env = "SWITCHBOARD_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The gateway's address (default: from gateway.bind, else
    /// http://127.0.0.1:7788).
    #[arg(long, env = "SWITCHBOARD_URL", value_name = "URL")]
    url: Option<String>,
    /// Write an XDG autostart entry that starts the tray with the desktop
    /// session (with the flags given here), then exit.
    #[arg(long)]
    install_autostart: bool,
}

impl Cli {
    fn hints(&self) -> Hints {
        Hints {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            url: self.url.clone(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard-tray: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn run(_cli: &Cli) -> Result<(), switchboard_tray::Error> {
    Err(switchboard_tray::Error::Setup(
        "the tray runs on Linux (StatusNotifierItem) only for now".into(),
    ))
}

#[cfg(target_os = "linux")]
fn run(cli: &Cli) -> Result<(), switchboard_tray::Error> {
    use switchboard_tray::Error;

    let hints = cli.hints();
    if cli.install_autostart {
        return install_autostart(&hints);
    }
    let target = switchboard_tray::locate::locate(&hints, &|name: &str| std::env::var(name).ok())?;
    // One thread is plenty for a tray, and keeps it small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Setup(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(switchboard_tray::app::run(target))
}

/// Write the autostart entry for this binary with the flags given.
#[cfg(target_os = "linux")]
fn install_autostart(hints: &Hints) -> Result<(), switchboard_tray::Error> {
    use switchboard_tray::Error;

    let exe = std::env::current_exe()
        .map_err(|e| Error::Setup(format!("cannot tell where this binary is: {e}")))?;
    let config_dir = dirs::config_dir().ok_or_else(|| {
        Error::Setup("cannot find the user's config folder (is HOME set?)".into())
    })?;
    let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    let mut args = Vec::new();
    if let Some(c) = &hints.config {
        args.push("--config".to_string());
        args.push(absolute(c).display().to_string());
    }
    if let Some(d) = &hints.data_dir {
        args.push("--data-dir".to_string());
        args.push(absolute(d).display().to_string());
    }
    if let Some(u) = &hints.url {
        args.push("--url".to_string());
        args.push(u.clone());
    }
    let path = switchboard_tray::autostart::install(&config_dir, &exe, &args)?;
    println!("Wrote the autostart entry {}", path.display());
    println!(
        "The tray starts with your next desktop session; start it now with: {}",
        exe.display()
    );
    Ok(())
}
