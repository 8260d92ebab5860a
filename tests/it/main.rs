//! Integration tests: one binary, a module per topic.

mod alerting;
mod container;
mod dashboard;
mod end_to_end;
mod helm_chart;
#[allow(
    dead_code,
    reason = "each topic uses a different subset of the fixtures"
)]
mod support;
#[allow(
    dead_code,
    reason = "each topic uses a different subset of the helpers"
)]
mod testbed;
mod web_protection;
