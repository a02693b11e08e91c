//! `switchboard-tray --install-autostart`: an XDG autostart entry
//! (`$XDG_CONFIG_HOME/autostart/switchboard-tray.desktop`, by default
//! `~/.config/autostart/`) that starts this binary with the desktop
//! session.

use std::path::{Path, PathBuf};

use crate::Error;

/// The entry's file name.
pub const FILE_NAME: &str = "switchboard-tray.desktop";

/// Where the entry goes under the user's config folder.
pub fn entry_path(config_dir: &Path) -> PathBuf {
    config_dir.join("autostart").join(FILE_NAME)
}

/// One argument of `Exec=`, quoted as the Desktop Entry specification
/// wants: in double quotes when it holds a reserved character, with `"`,
/// `` ` ``, `$` and `\` escaped inside; `%` doubled (field codes); then
/// `\` escaped again, as in every string value.
pub fn exec_arg(arg: &str) -> String {
    let reserved = |c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '"' | '\''
                    | '\\'
                    | '>'
                    | '<'
                    | '~'
                    | '|'
                    | '&'
                    | ';'
                    | '$'
                    | '*'
                    | '?'
                    | '#'
                    | '('
                    | ')'
                    | '`'
            )
    };
    let arg = arg.replace('%', "%%");
    let quoted = if arg.contains(reserved) {
        let mut q = String::from("\"");
        for c in arg.chars() {
            if matches!(c, '"' | '`' | '$' | '\\') {
                q.push('\\');
            }
            q.push(c);
        }
        q.push('"');
        q
    } else {
        arg
    };
    quoted.replace('\\', "\\\\")
}

/// The entry that runs `exe` with `args`.
pub fn desktop_entry(exe: &Path, args: &[String]) -> String {
    let mut exec = vec![exec_arg(&exe.to_string_lossy())];
    exec.extend(args.iter().map(|a| exec_arg(a)));
    format!(
        "[Desktop Entry]\n\
         Type=Application\n\
         Name=Switchboard tray\n\
         Comment=How the Switchboard gateway is, in the system tray\n\
         Exec={}\n\
         Terminal=false\n\
         NoDisplay=true\n\
         X-GNOME-Autostart-enabled=true\n",
        exec.join(" ")
    )
}

/// Write the entry for `exe` with `args` under `config_dir` (the user's
/// config folder); returns where it went.
pub fn install(config_dir: &Path, exe: &Path, args: &[String]) -> Result<PathBuf, Error> {
    let path = entry_path(config_dir);
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, desktop_entry(exe, args))
    };
    write().map_err(|source| Error::Autostart {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_quotes_what_the_spec_reserves() {
        assert_eq!(
            exec_arg("/usr/bin/switchboard-tray"),
            "/usr/bin/switchboard-tray"
        );
        assert_eq!(exec_arg("/home/a b/tray"), "\"/home/a b/tray\"");
        assert_eq!(exec_arg("/x/$HOME"), "\"/x/\\\\$HOME\"");
        assert_eq!(exec_arg("50%"), "50%%");
    }

    #[test]
    fn the_entry_runs_this_binary_with_its_flags() {
        let e = desktop_entry(
            Path::new("/opt/sb/switchboard-tray"),
            &["--config".into(), "/home/a/sb.toml".into()],
        );
        assert!(e.starts_with("[Desktop Entry]\nType=Application\n"), "{e}");
        assert!(
            e.contains("\nExec=/opt/sb/switchboard-tray --config /home/a/sb.toml\n"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("sb-tray-autostart-{}", std::process::id()));
        let path = install(&dir, Path::new("/opt/sb/switchboard-tray"), &[]).unwrap();
        assert_eq!(path, dir.join("autostart/switchboard-tray.desktop"));
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .contains("Exec=/opt/sb/switchboard-tray\n")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
