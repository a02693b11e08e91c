//! The config loader, `switchboard::config::load_str`, on any text: the
//! input is the TOML file, then (after a NUL byte, if any) `NAME=value`
//! lines applied as the environment. Loading must not panic, must give
//! the same answer twice, and what it accepts must hold together: the
//! default agent and every binding's agent exist, there is a provider.
//! What it refuses is said as problems, each with a message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard::config::load_str;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (toml, env) = text.split_once('\0').unwrap_or((text, ""));
    let env: Vec<(String, String)> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let first = load_str(toml, "fuzz.toml", &env);
    match (&first, &load_str(toml, "fuzz.toml", &env)) {
        (Ok(a), Ok(b)) => assert_eq!(a.default_agent, b.default_agent),
        (Err(a), Err(b)) => assert_eq!(a, b),
        _ => panic!("two loads of the same config disagree"),
    }
    match first {
        Ok(loaded) => {
            let c = &loaded.config;
            assert!(
                c.agents.contains_key(&loaded.default_agent),
                "the default agent `{}` is not an agent",
                loaded.default_agent
            );
            assert!(!c.providers.is_empty(), "a config without providers");
            for b in &c.bindings {
                assert!(c.agents.contains_key(&b.agent), "binding to `{}`", b.agent);
            }
        }
        Err(problems) => {
            assert!(!problems.errors.is_empty(), "refused without a reason");
            for e in &problems.errors {
                assert!(
                    !e.message.trim().is_empty(),
                    "a problem without a message: {e:?}"
                );
            }
            assert!(problems.to_string().starts_with("fuzz.toml has "));
        }
    }
});
