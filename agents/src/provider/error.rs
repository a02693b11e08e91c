//! What can go wrong talking to a model provider.

/// A failed model call. `Display` is written for the person who will read it
/// in their chat: it says what happened and what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The endpoint could not be reached at all (refused, DNS, TLS).
    #[error(
        "cannot reach the model provider `{provider}` at {url}: {reason}. \
         Check that it is running and that its base_url is right."
    )]
    Unreachable {
        /// The provider's config name.
        provider: String,
        /// The base URL tried.
        url: String,
        /// Why the connection failed.
        reason: String,
    },
    /// The endpoint answered with an HTTP error.
    #[error("the model provider `{provider}` answered {status}: {message}")]
    Http {
        /// The provider's config name.
        provider: String,
        /// The HTTP status code.
        status: u16,
        /// The provider's error message, or the start of its body.
        message: String,
        /// Seconds the provider asked us to wait (`Retry-After`), if any.
        retry_after: Option<u64>,
    },
    /// No data arrived within the timeout.
    #[error("the model provider `{provider}` sent nothing for {seconds} s and was given up on")]
    Timeout {
        /// The provider's config name.
        provider: String,
        /// The timeout that passed.
        seconds: u64,
    },
    /// The answer could not be understood.
    #[error("the model provider `{provider}` sent something unreadable: {detail}")]
    Protocol {
        /// The provider's config name.
        provider: String,
        /// What was wrong.
        detail: String,
    },
}

impl ProviderError {
    /// Whether the provider refused the request because the prompt does
    /// not fit the model's context window.
    pub fn is_context_overflow(&self) -> bool {
        const SIGNS: &[&str] = &[
            "context length",
            "context_length",
            "maximum context",
            "context window",
            "too many tokens",
            "prompt is too long",
            "exceeds the context",
            "input is too long",
        ];
        match self {
            ProviderError::Http {
                status, message, ..
            } if matches!(status, 400 | 413 | 422) => {
                let m = message.to_ascii_lowercase();
                SIGNS.iter().any(|s| m.contains(s))
            }
            _ => false,
        }
    }

    /// Whether the same request may succeed later (unreachable, 429, 5xx,
    /// timeouts).
    pub fn is_retryable(&self) -> bool {
        match self {
            ProviderError::Unreachable { .. } | ProviderError::Timeout { .. } => true,
            ProviderError::Http { status, .. } => *status == 429 || *status >= 500,
            ProviderError::Protocol { .. } => false,
        }
    }
}

/// `url` as it may be shown and logged: credentials in it (`user:pw@`, a
/// query such as `?api-key=…`) replaced by `••••`.
pub fn shown_url(url: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((u, _)) => (u, "?••••"),
        None => (url, ""),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return format!("{url}{query}");
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, format!("/{p}")),
        None => (rest, String::new()),
    };
    let host = match authority.rsplit_once('@') {
        Some((_, h)) => format!("••••@{h}"),
        None => authority.to_string(),
    };
    format!("{scheme}://{host}{path}{query}")
}

#[cfg(test)]
mod shown_url_tests {
    use super::shown_url;

    #[test]
    fn credentials_are_not_shown() {
        assert_eq!(
            shown_url("https://bob:pw@api.example/v1?api-key=k"),
            "https://••••@api.example/v1?••••"
        );
        assert_eq!(
            shown_url("http://127.0.0.1:11434/v1"),
            "http://127.0.0.1:11434/v1"
        );
    }
}
