//! Check kinds that read a Prometheus server's HTTP API (`/api/v1/...`): scrape targets, rule
//! groups, discovered Alertmanagers and instant queries.
//!
//! Every endpoint wraps its data in the same envelope: `status` is `success` or `error`, an
//! error carries `errorType` and `error`, and any response may carry `warnings`. Loki's query
//! API uses the same envelope and result types, so the `loki` kind reuses the sample reader.

pub mod alertmanagers;
pub mod query;
pub mod rules;
pub mod targets;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::api_client::{describe_bounds, out_of_bounds, ApiClient, ApiResponse};
use super::postgres::Policy;
use super::{Measure, MeasureFamily, Outcome, Reason};
use crate::config::BuildContext;

/// The response envelope of the Prometheus HTTP API.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<T> {
    status: String,
    data: Option<T>,
    error_type: Option<String>,
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
}

/// The data of a successful response, with the warnings that came with it.
pub(crate) struct Success<T> {
    pub data: T,
    pub warnings: Vec<String>,
}

/// Requests `segments` below the base URL and unpacks the envelope. A response with status
/// `error` becomes an error outcome: `timeout` for the server's own query timeout, and
/// `query_failed` for anything else, with the server's message.
pub(crate) async fn call<T: DeserializeOwned>(
    client: &ApiClient,
    segments: &[&str],
    query: &[(&str, &str)],
) -> Result<Success<T>, Outcome> {
    let response = client.get(segments, query, &[]).await?;
    unpack(&response, &format!("`/{}`", segments.join("/")))
}

/// Unpacks the envelope of a response from `what` (an endpoint, for messages).
pub(crate) fn unpack<T: DeserializeOwned>(
    response: &ApiResponse,
    what: &str,
) -> Result<Success<T>, Outcome> {
    let Ok(envelope) = serde_json::from_slice::<Envelope<serde_json::Value>>(&response.body) else {
        return Err(Outcome::error(
            Reason::InvalidResponse,
            format!(
                "{what} returned status {} and a body that is not a Prometheus API response: `{}`; check that `server.url` is the server's base URL",
                response.status,
                response.text_excerpt()
            ),
        ));
    };
    if envelope.status != "success" {
        let error_type = super::http::truncate(&envelope.error_type.unwrap_or_default(), 40);
        let reason = match error_type.as_str() {
            "timeout" | "canceled" => Reason::Timeout,
            _ => Reason::QueryFailed,
        };
        return Err(Outcome::error(
            reason,
            format!(
                "{what} returned an error ({error_type}, status {}): {}",
                response.status,
                super::http::truncate(&envelope.error.unwrap_or_default(), 300)
            ),
        ));
    }
    let data = envelope.data.unwrap_or(serde_json::Value::Null);
    match serde_json::from_value(data) {
        Ok(data) => Ok(Success {
            data,
            warnings: envelope.warnings,
        }),
        Err(err) => Err(Outcome::error(
            Reason::InvalidResponse,
            format!(
                "{what} returned data of an unexpected shape: {}",
                super::http::truncate(&err.to_string(), 200)
            ),
        )),
    }
}

/// The `data` of an instant query: a result type and its result.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryData {
    result_type: String,
    result: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: serde_json::Map<String, serde_json::Value>,
    value: (f64, String),
}

/// The number an instant query returned, or why there is none.
#[derive(Debug, PartialEq)]
pub(crate) enum QueryValue {
    /// One sample.
    Number(f64),
    /// An empty vector.
    Empty,
}

impl QueryData {
    /// Reads the one number of a scalar or a one-element vector. Other result types and
    /// vectors of several series are an `invalid_response` error with the fix in the message.
    pub(crate) fn value(&self) -> Result<QueryValue, Outcome> {
        let invalid = |message: String| Outcome::error(Reason::InvalidResponse, message);
        // A parse error quotes the value it rejected, which can be as long as the response.
        let excerpt = |err: serde_json::Error| super::http::truncate(&err.to_string(), 200);
        match self.result_type.as_str() {
            "scalar" => {
                let (_, text): (f64, String) = serde_json::from_value(self.result.clone())
                    .map_err(|err| invalid(format!("the scalar result is malformed: {}", excerpt(err))))?;
                parse_sample(&text).map(QueryValue::Number)
            }
            "vector" => {
                let samples: Vec<VectorSample> = serde_json::from_value(self.result.clone())
                    .map_err(|err| invalid(format!("the vector result is malformed: {}", excerpt(err))))?;
                match samples.as_slice() {
                    [] => Ok(QueryValue::Empty),
                    [sample] => parse_sample(&sample.value.1).map(QueryValue::Number),
                    several => Err(invalid(format!(
                        "the query returned {} series ({}); aggregate them into one, for example with sum(), max() or min()",
                        several.len(),
                        describe_series(several)
                    ))),
                }
            }
            "streams" => Err(invalid(
                "the query returned log lines, not a number; make it a metric query such as `sum(count_over_time({app=\"api\"}[5m]))`".to_string(),
            )),
            other => Err(invalid(format!(
                "the query returned a result of type `{}`; an instant query that returns one number (a scalar or one series) is required",
                super::http::truncate(other, 40)
            ))),
        }
    }
}

fn parse_sample(text: &str) -> Result<f64, Outcome> {
    text.parse::<f64>().map_err(|_| {
        Outcome::error(
            Reason::InvalidResponse,
            format!(
                "the sample value `{}` is not a number",
                super::http::truncate(text, 40)
            ),
        )
    })
}

/// Formats the label sets of the first three series, for the message about too many series.
/// Each label set is cut to 200 characters.
fn describe_series(samples: &[VectorSample]) -> String {
    let shown: Vec<String> = samples
        .iter()
        .take(3)
        .map(|sample| {
            let labels: Vec<String> = sample
                .metric
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            format!("{{{}}}", super::http::truncate(&labels.join(", "), 200))
        })
        .collect();
    let more = if samples.len() > 3 { ", ..." } else { "" };
    format!("{}{more}", shown.join(", "))
}

/// The outcome of a query whose response carries warnings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WarningPolicy {
    /// The check is an error: the result may be partial.
    Error,
    /// The check fails.
    Fail,
    /// The value is compared as usual; the warnings are only listed in the message.
    Evaluate,
}

impl WarningPolicy {
    /// Parses `error`, `fail` or `evaluate`, recording a problem for anything else.
    pub(crate) fn build(
        value: Option<&str>,
        field: &str,
        ctx: &mut BuildContext<'_>,
    ) -> Option<WarningPolicy> {
        match value {
            None | Some("error") => Some(WarningPolicy::Error),
            Some("fail") => Some(WarningPolicy::Fail),
            Some("evaluate") => Some(WarningPolicy::Evaluate),
            Some(other) => {
                ctx.problem(
                    field,
                    format!("unknown policy `{other}`; use error, fail or evaluate"),
                );
                None
            }
        }
    }
}

/// The shared judgement of a query's number: empty and NaN policies, warnings, and bounds.
#[derive(Debug)]
pub(crate) struct Threshold {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub on_empty: Policy,
    pub on_nan: Policy,
    pub on_warning: WarningPolicy,
}

impl Threshold {
    /// Judges the result of a query. `family` receives the value when there is one.
    pub(crate) fn judge(
        &self,
        data: Result<QueryValue, Outcome>,
        warnings: &[String],
        family: &'static MeasureFamily,
    ) -> Outcome {
        let warned = if warnings.is_empty() {
            String::new()
        } else {
            let shown: Vec<String> = warnings
                .iter()
                .take(3)
                .map(|warning| {
                    super::api_client::redact_queries(&super::http::truncate(warning, 200))
                })
                .collect();
            format!(" (warnings: {})", shown.join("; "))
        };
        if !warnings.is_empty() && self.on_warning != WarningPolicy::Evaluate {
            let message = format!(
                "the server answered with warnings, so the result may be incomplete and is not judged{warned}; set `on_warning: evaluate` to judge it anyway"
            );
            return match self.on_warning {
                WarningPolicy::Fail => Outcome::fail(Reason::QueryWarnings, message),
                _ => Outcome::error(Reason::QueryWarnings, message),
            };
        }
        let value = match data {
            Ok(QueryValue::Number(value)) => value,
            Ok(QueryValue::Empty) => {
                return self.on_empty.apply(
                    Reason::EmptyResult,
                    format!(
                        "the query returned no series (on_empty: {}){warned}",
                        self.on_empty.as_str()
                    ),
                )
            }
            Err(outcome) => return outcome,
        };
        if value.is_nan() {
            // NaN is a real result (0/0, for example a rate over no requests), but no bound can
            // accept it, so the policy decides. The series is left out because NaN is not a
            // usable measurement.
            return self.on_nan.apply(
                Reason::NanValue,
                format!(
                    "the query returned NaN (on_nan: {}){warned}",
                    self.on_nan.as_str()
                ),
            );
        }
        let measures = vec![Measure::new(family, value)];
        let outcome = match out_of_bounds(value, self.min, self.max) {
            Some(problem) => Outcome::fail(
                Reason::ValueOutOfRange,
                format!("the query returned {problem}{warned}"),
            ),
            None => Outcome::pass(format!(
                "the query returned {value}{}{warned}",
                describe_bounds(self.min, self.max)
            )),
        };
        outcome.with_value(value).with_measures(measures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(result_type: &str, result: serde_json::Value) -> QueryData {
        QueryData {
            result_type: result_type.to_string(),
            result,
        }
    }

    #[test]
    fn vector_of_one_is_a_number() {
        let value = data(
            "vector",
            serde_json::json!([{"metric": {}, "value": [1.5, "0.25"]}]),
        )
        .value()
        .unwrap();
        assert_eq!(value, QueryValue::Number(0.25));
    }

    #[test]
    fn empty_vector_is_empty() {
        let value = data("vector", serde_json::json!([])).value().unwrap();
        assert_eq!(value, QueryValue::Empty);
    }

    #[test]
    fn scalar_nan_parses() {
        let value = data("scalar", serde_json::json!([1.5, "NaN"]))
            .value()
            .unwrap();
        assert!(matches!(value, QueryValue::Number(v) if v.is_nan()));
    }

    mod properties {
        use proptest::prelude::*;

        use super::super::*;
        use crate::check::prometheus::query::QUERY_VALUE;

        /// Arbitrary JSON documents, a few levels deep, with long strings among the leaves.
        fn json_value() -> impl Strategy<Value = serde_json::Value> {
            let leaf = prop_oneof![
                Just(serde_json::Value::Null),
                any::<bool>().prop_map(serde_json::Value::from),
                any::<f64>().prop_map(serde_json::Value::from),
                "\\PC{0,20}|NaN|\\+Inf|-Inf|1e400|x{2000,6000}".prop_map(serde_json::Value::from),
            ];
            leaf.prop_recursive(4, 64, 8, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
                    prop::collection::btree_map("[a-zA-Z]{0,10}|x{300,2000}", inner, 0..8)
                        .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
                ]
            })
        }

        /// An envelope with arbitrary parts, shaped like a Prometheus API response.
        fn envelope() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..256),
                (
                    "success|error|x{0,3000}",
                    "vector|scalar|matrix|streams|string|x{0,3000}",
                    json_value(),
                    prop::option::of("timeout|canceled|bad_data|x{0,3000}"),
                    prop::option::of("\\PC{0,40}|x{0,3000}"),
                    prop::collection::vec("\\PC{0,40}|x{0,3000}", 0..5),
                )
                    .prop_map(
                        |(status, result_type, result, error_type, error, warnings)| {
                            serde_json::json!({
                                "status": status,
                                "data": {"resultType": result_type, "result": result},
                                "errorType": error_type,
                                "error": error,
                                "warnings": warnings,
                            })
                            .to_string()
                            .into_bytes()
                        }
                    ),
            ]
        }

        fn threshold(on_warning: WarningPolicy) -> Threshold {
            Threshold {
                min: Some(1.0),
                max: Some(5.0),
                on_empty: Policy::Fail,
                on_nan: Policy::Fail,
                on_warning,
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn query_responses_give_bounded_outcomes(body in envelope(), status in 100u16..600) {
                let response = ApiResponse { status, body };
                let outcome = match unpack::<QueryData>(&response, "`/api/v1/query`") {
                    Ok(success) => {
                        for policy in [WarningPolicy::Error, WarningPolicy::Fail, WarningPolicy::Evaluate] {
                            let outcome = threshold(policy).judge(
                                success.data.value(),
                                &success.warnings,
                                &QUERY_VALUE,
                            );
                            prop_assert!(outcome.message.chars().count() < 2048, "{}", outcome.message);
                        }
                        continue_with(success.data.value())
                    }
                    Err(outcome) => outcome,
                };
                prop_assert!(outcome.message.chars().count() < 2048, "{}", outcome.message);
            }
        }

        fn continue_with(value: Result<QueryValue, Outcome>) -> Outcome {
            match value {
                Ok(_) => Outcome::pass(""),
                Err(outcome) => outcome,
            }
        }
    }

    #[test]
    fn several_series_are_rejected() {
        let outcome = data(
            "vector",
            serde_json::json!([
                {"metric": {"job": "a"}, "value": [1.5, "1"]},
                {"metric": {"job": "b"}, "value": [1.5, "0"]}
            ]),
        )
        .value()
        .unwrap_err();
        assert_eq!(outcome.reason, Reason::InvalidResponse);
        assert!(outcome.message.contains("2 series"), "{}", outcome.message);
    }
}
