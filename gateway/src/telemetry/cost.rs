//! What model calls cost: the `[providers.<name>.pricing]` table and the pure
//! function that turns a call's [`Usage`] into millionths of a US dollar.
//!
//! A price is in US dollars per million tokens, so tokens times price is
//! exactly micro-dollars. Every provider reports `input_tokens` including the
//! tokens served from its cache (see [`Usage`]), so the uncached part of a
//! prompt is `input_tokens - cached_tokens` for OpenAI-compatible endpoints and
//! Anthropic alike. Anthropic's cache writes (`cache_creation_input_tokens`)
//! are counted as uncached input and priced at the input price, though
//! Anthropic bills them higher.
//!
//! This module knows nothing of providers, the store or metrics: it prices.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchboard_agents::Usage;

/// `[providers.<name>.pricing]`: what the provider charges, in US dollars per
/// million tokens.
///
/// ```toml
/// [providers.openai.pricing]
/// input_per_mtok = 2.50
/// output_per_mtok = 10.00
/// cached_per_mtok = 1.25
///
/// [providers.openai.pricing.models."gpt-4o-mini"]
/// input_per_mtok = 0.15
/// output_per_mtok = 0.60
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pricing {
    /// US dollars per million uncached input (prompt) tokens. Default 0.
    pub input_per_mtok: f64,
    /// US dollars per million output (completion) tokens. Default 0.
    pub output_per_mtok: f64,
    /// US dollars per million input tokens served from the provider's cache.
    /// Default: `input_per_mtok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_per_mtok: Option<f64>,
    /// `[providers.<name>.pricing.models."<model>"]`: prices of other models on
    /// the same provider (an agent's `model` or a fallback's), by the model's
    /// exact name; a model listed here is priced by its entry alone. Default:
    /// none, every model at the prices above.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, ModelPrice>,
}

/// `[providers.<name>.pricing.models."<model>"]`: one model's prices, in US
/// dollars per million tokens.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// US dollars per million uncached input tokens. Required.
    pub input_per_mtok: f64,
    /// US dollars per million output tokens. Required.
    pub output_per_mtok: f64,
    /// US dollars per million cached input tokens. Default: this model's
    /// `input_per_mtok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_per_mtok: Option<f64>,
}

/// The prices one model is charged at, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Price {
    /// Per million uncached input tokens.
    pub input: f64,
    /// Per million output tokens.
    pub output: f64,
    /// Per million cached input tokens.
    pub cached: f64,
}

impl Price {
    /// What `u` costs at these prices, in millionths of a US dollar, rounded
    /// to the nearest. Cached tokens are a part of `input_tokens`; the rest of
    /// the input is priced as uncached. Ignores `u.cost_micros`.
    pub fn cost_micros(&self, u: &Usage) -> u64 {
        let uncached = u.input_tokens.saturating_sub(u.cached_tokens);
        // Tokens × dollars per million tokens = micro-dollars.
        let micros = uncached as f64 * self.input
            + u.cached_tokens as f64 * self.cached
            + u.output_tokens as f64 * self.output;
        // `as` saturates: a NaN (refused by validation) gives 0.
        micros.round().max(0.0) as u64
    }
}

impl Pricing {
    /// The prices of `model`: its entry in `models`, or the provider's prices.
    pub fn for_model(&self, model: &str) -> Price {
        match self.models.get(model) {
            Some(m) => Price {
                input: m.input_per_mtok,
                output: m.output_per_mtok,
                cached: m.cached_per_mtok.unwrap_or(m.input_per_mtok),
            },
            None => Price {
                input: self.input_per_mtok,
                output: self.output_per_mtok,
                cached: self.cached_per_mtok.unwrap_or(self.input_per_mtok),
            },
        }
    }

    /// What `u` cost on `model`, in millionths of a US dollar.
    pub fn cost_micros(&self, model: &str, u: &Usage) -> u64 {
        self.for_model(model).cost_micros(u)
    }

    /// Every price that is negative, NaN or infinite, as (dotted key, what is
    /// wrong and what to do); `path` is this table's key, e.g.
    /// `providers.openai.pricing`.
    pub fn problems(&self, path: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut check = |key: String, price: Option<f64>| {
            if let Some(p) = price
                && !(p.is_finite() && p >= 0.0)
            {
                out.push((
                    key,
                    format!("is {p}: a price must be a number ≥ 0 (US dollars per million tokens)"),
                ));
            }
        };
        check(format!("{path}.input_per_mtok"), Some(self.input_per_mtok));
        check(
            format!("{path}.output_per_mtok"),
            Some(self.output_per_mtok),
        );
        check(format!("{path}.cached_per_mtok"), self.cached_per_mtok);
        for (name, m) in &self.models {
            let at = format!("{path}.models.{}", key_segment(name));
            check(format!("{at}.input_per_mtok"), Some(m.input_per_mtok));
            check(format!("{at}.output_per_mtok"), Some(m.output_per_mtok));
            check(format!("{at}.cached_per_mtok"), m.cached_per_mtok);
        }
        out
    }

    /// Refuse negative, NaN or infinite prices: the error names each key, e.g.
    /// "providers.openai.pricing.input_per_mtok is -1: a price must be a
    /// number ≥ 0 (US dollars per million tokens)".
    pub fn validate(&self, path: &str) -> Result<(), String> {
        let problems = self.problems(path);
        if problems.is_empty() {
            return Ok(());
        }
        Err(problems
            .iter()
            .map(|(key, why)| format!("{key} {why}"))
            .collect::<Vec<_>>()
            .join("; "))
    }
}

/// A TOML key segment: bare when it can be, quoted otherwise (`"gpt-4.1"`).
fn key_segment(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Millionths of a US dollar as dollars, for JSON (`cost_usd`).
pub fn micros_to_usd(micros: i64) -> f64 {
    micros as f64 / 1_000_000.0
}

/// Millionths of a US dollar for people: `$0` for nothing, four decimals
/// below a dollar (`$0.0123`, `$0.0004`), `<$0.0001` for less than that but
/// not nothing, and cents from a dollar up (`$1.23`, `$1234.50`); rounded to
/// the nearest, negative amounts with a leading `-`.
pub fn format_usd(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let m = micros.unsigned_abs();
    if m == 0 {
        return "$0".to_string();
    }
    // Ten-thousandths of a dollar (100 micro-dollars each), rounded.
    let tenth_mills = (m + 50) / 100;
    if tenth_mills == 0 {
        return format!("{sign}<$0.0001");
    }
    if tenth_mills < 10_000 {
        return format!("{sign}$0.{tenth_mills:04}");
    }
    let cents = (m + 5_000) / 10_000;
    format!("{sign}${}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, cached: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cached_tokens: cached,
            cost_micros: 0,
        }
    }

    fn pricing(toml_text: &str) -> Pricing {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn a_known_usage_costs_what_the_price_list_says() {
        let p = pricing("input_per_mtok = 3\noutput_per_mtok = 15\ncached_per_mtok = 0.30\n");
        // 10,000 prompt tokens of which 8,000 cached, 1,000 answer tokens:
        // 2,000 × $3 + 8,000 × $0.30 + 1,000 × $15 per million
        // = 6,000 + 2,400 + 15,000 micro-dollars.
        assert_eq!(p.cost_micros("any", &usage(10_000, 8_000, 1_000)), 23_400);
        assert_eq!(p.cost_micros("any", &usage(0, 0, 0)), 0);
    }

    #[test]
    fn cost_is_rounded_to_the_nearest_micro_dollar() {
        let p = pricing("input_per_mtok = 0.15\noutput_per_mtok = 0.6\n");
        // 3 × 0.15 = 0.45 → 0; 7 × 0.15 = 1.05 → 1; 1 × 0.6 = 0.6 → 1.
        assert_eq!(p.cost_micros("m", &usage(3, 0, 0)), 0);
        assert_eq!(p.cost_micros("m", &usage(7, 0, 0)), 1);
        assert_eq!(p.cost_micros("m", &usage(0, 0, 1)), 1);
    }

    #[test]
    fn cached_tokens_cost_the_input_price_when_no_cached_price_is_set() {
        let p = pricing("input_per_mtok = 2\noutput_per_mtok = 8\n");
        assert_eq!(p.for_model("m").cached, 2.0);
        // All of the input costs the input price, cached or not.
        assert_eq!(
            p.cost_micros("m", &usage(1_000, 600, 0)),
            p.cost_micros("m", &usage(1_000, 0, 0))
        );
        assert_eq!(p.cost_micros("m", &usage(1_000, 600, 0)), 2_000);
    }

    #[test]
    fn more_cached_than_input_tokens_does_not_underflow() {
        let p = pricing("input_per_mtok = 1\ncached_per_mtok = 0.5\n");
        assert_eq!(p.cost_micros("m", &usage(10, 20, 0)), 10);
    }

    #[test]
    fn a_model_entry_wins_over_the_provider_prices() {
        let p = pricing(
            "input_per_mtok = 2.5\noutput_per_mtok = 10\n\
             [models.\"gpt-4o-mini\"]\ninput_per_mtok = 0.15\noutput_per_mtok = 0.6\n",
        );
        assert_eq!(
            p.for_model("gpt-4o-mini"),
            Price {
                input: 0.15,
                output: 0.6,
                cached: 0.15
            }
        );
        assert_eq!(
            p.for_model("gpt-4o"),
            Price {
                input: 2.5,
                output: 10.0,
                cached: 2.5
            }
        );
        let u = usage(1_000_000, 0, 1_000_000);
        assert_eq!(p.cost_micros("gpt-4o-mini", &u), 750_000);
        assert_eq!(p.cost_micros("gpt-4o", &u), 12_500_000);
    }

    #[test]
    fn unknown_keys_and_incomplete_model_entries_are_refused() {
        assert!(toml::from_str::<Pricing>("input_per_token = 1\n").is_err());
        assert!(toml::from_str::<Pricing>("[models.m]\ninput_per_mtok = 1\n").is_err());
        assert_eq!(pricing(""), Pricing::default());
    }

    #[test]
    fn bad_prices_are_refused_naming_the_key() {
        let mut p = pricing("input_per_mtok = -1\noutput_per_mtok = 10\n");
        assert_eq!(
            p.validate("providers.openai.pricing").unwrap_err(),
            "providers.openai.pricing.input_per_mtok is -1: a price must be a number ≥ 0 (US dollars per million tokens)"
        );
        p.input_per_mtok = 1.0;
        assert_eq!(p.validate("providers.openai.pricing"), Ok(()));
        p.cached_per_mtok = Some(f64::NAN);
        p.models.insert(
            "gpt-4.1".into(),
            ModelPrice {
                input_per_mtok: f64::INFINITY,
                output_per_mtok: 1.0,
                cached_per_mtok: None,
            },
        );
        let keys: Vec<String> = p
            .problems("providers.openai.pricing")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            [
                "providers.openai.pricing.cached_per_mtok",
                "providers.openai.pricing.models.\"gpt-4.1\".input_per_mtok",
            ]
        );
    }

    #[test]
    fn amounts_are_shown_in_dollars() {
        assert_eq!(format_usd(0), "$0");
        assert_eq!(format_usd(49), "<$0.0001");
        assert_eq!(format_usd(50), "$0.0001");
        assert_eq!(format_usd(12_345), "$0.0123");
        assert_eq!(format_usd(400), "$0.0004");
        assert_eq!(format_usd(999_949), "$0.9999");
        assert_eq!(format_usd(999_950), "$1.00");
        assert_eq!(format_usd(1_234_567), "$1.23");
        assert_eq!(format_usd(1_234_500_000), "$1234.50");
        assert_eq!(format_usd(-12_345), "-$0.0123");
        assert_eq!(micros_to_usd(23_400), 0.0234);
    }
}
