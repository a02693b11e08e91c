//! Each model request, measured: a provider wrapped so that every request
//! runs in a `chat <model>` span (OpenTelemetry's GenAI conventions:
//! `gen_ai.system`, `gen_ai.request.model`, token usage) and counts in
//! `switchboard_model_requests_total`, `switchboard_model_tokens_total`
//! and `switchboard_cost_usd_total`; its usage gains what it cost, from
//! the provider's price table.

use std::sync::Arc;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use switchboard_agents::{ModelRequest, Provider, ProviderError, ProviderEvent, Usage};

use super::Telemetry;
use super::cost::Pricing;
use super::metrics::{ModelLabels, RequestLabels, TokenLabels};

/// A provider whose requests are measured.
pub struct Observed {
    inner: Arc<dyn Provider>,
    telemetry: Arc<Telemetry>,
    /// `openai` or `anthropic`: the `gen_ai.system` of its spans.
    system: &'static str,
    pricing: Option<Pricing>,
}

impl Observed {
    /// `inner`, measured into `telemetry`, priced by `pricing`.
    pub fn new(
        inner: Arc<dyn Provider>,
        telemetry: Arc<Telemetry>,
        system: &'static str,
        pricing: Option<Pricing>,
    ) -> Self {
        Self {
            inner,
            telemetry,
            system,
            pricing,
        }
    }
}

impl Provider for Observed {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn model(&self) -> &str {
        self.inner.model()
    }

    fn probe(&self) -> BoxFuture<'static, Result<(), ProviderError>> {
        self.inner.probe()
    }

    fn stream(
        &self,
        request: ModelRequest,
    ) -> BoxStream<'static, Result<ProviderEvent, ProviderError>> {
        let model = self.inner.model().to_string();
        let span = tracing::info_span!(
            "chat",
            otel.name = %format_args!("chat {model}"),
            otel.kind = "client",
            gen_ai.operation.name = "chat",
            gen_ai.system = self.system,
            gen_ai.provider.name = self.system,
            gen_ai.request.model = %model,
            provider = %self.inner.name(),
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            gen_ai.usage.cache_read.input_tokens = tracing::field::Empty,
            "error.type" = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
        );
        // The request's task starts in this span (the provider spawns it
        // in the current one) and sends its `traceparent`.
        let inner = span.in_scope(|| self.inner.stream(request));
        let call = Box::new(Call {
            telemetry: self.telemetry.clone(),
            provider: self.inner.name().to_string(),
            model,
            pricing: self.pricing.clone(),
            span,
            usage: Usage::default(),
            finished: false,
        });
        futures::stream::unfold((inner, call), |(mut inner, mut call)| async move {
            match inner.next().await {
                Some(Ok(ProviderEvent::Usage(mut u))) => {
                    u.cost_micros = call.cost(&u);
                    call.usage.add(u);
                    Some((Ok(ProviderEvent::Usage(u)), (inner, call)))
                }
                Some(Err(e)) => {
                    call.finish(status_of(&e));
                    Some((Err(e), (inner, call)))
                }
                Some(other) => Some((other, (inner, call))),
                None => {
                    call.finish("ok".to_string());
                    None
                }
            }
        })
        .boxed()
    }
}

/// The status label of a failed request.
fn status_of(e: &ProviderError) -> String {
    match e {
        ProviderError::Http { status, .. } => status.to_string(),
        ProviderError::Timeout { .. } => "timeout".into(),
        ProviderError::Unreachable { .. } => "unreachable".into(),
        ProviderError::Protocol { .. } => "protocol".into(),
    }
}

/// One request being measured; counted once, when it ends (a request
/// dropped before its end, a cancelled turn's, counts as `cancelled`).
struct Call {
    telemetry: Arc<Telemetry>,
    provider: String,
    model: String,
    pricing: Option<Pricing>,
    span: tracing::Span,
    usage: Usage,
    finished: bool,
}

impl Call {
    fn cost(&self, u: &Usage) -> u64 {
        self.pricing
            .as_ref()
            .map_or(0, |p| p.cost_micros(&self.model, u))
    }

    fn finish(&mut self, status: String) {
        if self.finished {
            return;
        }
        self.finished = true;
        let m = &self.telemetry.metrics;
        let u = self.usage;
        if status != "ok" {
            self.span.record("error.type", status.as_str());
            self.span.record("otel.status_code", "ERROR");
        }
        m.model_requests
            .get_or_create(&RequestLabels {
                provider: self.provider.clone(),
                model: self.model.clone(),
                status,
            })
            .inc();
        for (kind, n) in [
            ("input", u.input_tokens),
            ("output", u.output_tokens),
            ("cached", u.cached_tokens),
        ] {
            // Created even at zero: a family an operator graphs exists
            // from the first request.
            m.model_tokens
                .get_or_create(&TokenLabels {
                    provider: self.provider.clone(),
                    model: self.model.clone(),
                    kind,
                })
                .inc_by(n);
        }
        if self.pricing.is_some() {
            m.cost_usd
                .get_or_create(&ModelLabels {
                    provider: self.provider.clone(),
                    model: self.model.clone(),
                })
                .inc_by(u.cost_micros as f64 / 1_000_000.0);
        }
        self.span
            .record("gen_ai.usage.input_tokens", as_i64(u.input_tokens));
        self.span
            .record("gen_ai.usage.output_tokens", as_i64(u.output_tokens));
        self.span.record(
            "gen_ai.usage.cache_read.input_tokens",
            as_i64(u.cached_tokens),
        );
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.finish("cancelled".to_string());
    }
}

/// A count as OpenTelemetry's integer (which is signed; `tracing`'s
/// unsigned values would reach it as text).
fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
