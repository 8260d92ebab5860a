//! Integration tests: one binary, a module per topic.

mod alerting;
mod dashboard;
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
