//! Integration tests: one binary, a module per topic.

mod dns;
#[allow(
    dead_code,
    reason = "each topic uses a different subset of the fixtures"
)]
mod support;
mod tls;
