//! Who did something and from where, as an audit record names them; for
//! a request, read from its headers and its client's address (the peer's,
//! or the one a trusted proxy forwarded, as [`AppState::client`] says).

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use crate::http::AppState;

/// Who did something (`id`) and from where (`source`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Who: `cli` (the command line), `api` (a client with the control
    /// token), `ui` (a signed-in browser), `ws` (a WebSocket client),
    /// `chat:<channel>:<sender>` (a person in a chat) or `gateway` (the
    /// gateway itself). The same text is stored as who decided an approval
    /// or added a sender.
    pub id: String,
    /// From where: the client's IP address, `cli`, `chat:<channel>` or
    /// `gateway`.
    pub source: String,
}

impl Actor {
    /// `id` acting from `source`.
    pub fn new(id: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            source: source.into(),
        }
    }

    /// The command line, on the gateway's machine, with the store opened
    /// itself.
    pub fn cli() -> Self {
        Self::new("cli", "cli")
    }

    /// The gateway on its own (start-up, retention).
    pub fn gateway() -> Self {
        Self::new("gateway", "gateway")
    }

    /// A person in a chat of `channel`, as `sender` (`<channel>:<id>`).
    pub fn chat(channel: &str, sender: &str) -> Self {
        Self::new(format!("chat:{sender}"), format!("chat:{channel}"))
    }

    /// The client of a request with `headers` from `client`: `cli` when
    /// the command line says it is it, `api` for another holder of the
    /// token, `ui` for a browser (no token); from the client's IP address.
    pub fn of_request(headers: &HeaderMap, client: Option<IpAddr>) -> Self {
        let cli = headers
            .get("x-switchboard-client")
            .and_then(|v| v.to_str().ok())
            == Some("cli");
        let id = if cli {
            "cli"
        } else if headers.contains_key(header::AUTHORIZATION) {
            "api"
        } else {
            "ui"
        };
        let source = client.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        Self::new(id, source)
    }

    /// The same client, named `id` (e.g. `ws` for a WebSocket).
    pub fn named(mut self, id: &str) -> Self {
        self.id = id.to_string();
        self
    }
}

/// A handler's view of who sent the request (never refused).
impl FromRequestParts<Arc<AppState>> for Actor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let client = state.client(&parts.headers, &parts.extensions);
        Ok(Self::of_request(&parts.headers, Some(client)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_its_client_and_address() {
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(
            Actor::of_request(&h, Some(peer)),
            Actor::new("ui", "192.0.2.7")
        );
        h.insert(header::AUTHORIZATION, "Bearer x".parse().unwrap());
        assert_eq!(Actor::of_request(&h, Some(peer)).id, "api");
        h.insert("x-switchboard-client", "cli".parse().unwrap());
        assert_eq!(Actor::of_request(&h, None), Actor::new("cli", "unknown"));
    }
}
