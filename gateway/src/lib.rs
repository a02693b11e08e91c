//! Switchboard: a self-hosted, multi-channel messaging gateway for a personal
//! AI assistant.
//!
//! This crate is the binary's library and the only one that wires the parts
//! together (see `shared/ARCHITECTURE.md`):
//!
//! - [`config`]: the TOML config, environment overrides and validation;
//! - [`pipeline`]: admit (durable, deduplicated ingress), access policy,
//!   rate limit, routing to an agent and a session key;
//! - [`sessions`]: one actor per session, queue modes, resets, the global
//!   cap on concurrent runs;
//! - [`memories`]: long-term memory — per-person (or per-agent) scopes,
//!   the in-memory search index, recall and the flush before compaction;
//! - [`http`]: health, the OpenAI-compatible web chat API, the control API
//!   and the WebSocket;
//! - [`webchat`]: the built-in web chat channel;
//! - [`retention`]: pruning what `[retention]` no longer keeps;
//! - [`audit`]: the tamper-evident audit log of security-relevant events;
//! - [`supervisor`] and [`health`]: long-running tasks and their state;
//! - [`telemetry`]: metrics, traces, the log's format and cost;
//! - [`serve`]: start-up, the signal, and the drain;
//! - [`cli`]: the `switchboard` command line.

pub mod approvals;
pub mod audit;
pub mod auth;
pub mod channels;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod cron;
pub mod doctor;
pub mod events;
pub mod health;
pub mod http;
pub mod lock;
pub mod memories;
pub mod pipeline;
pub mod reload;
pub mod retention;
pub mod sandbox;
pub mod security;
pub mod serve;
pub mod sessions;
pub mod staged;
pub mod supervisor;
pub mod telemetry;
pub mod token;
pub mod ui;
pub mod vault;
pub mod webchat;
pub mod wiring;

#[cfg(test)]
mod testing;
