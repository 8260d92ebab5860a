//! Integration tests: one binary, a module per topic.

#[allow(
    dead_code,
    reason = "each topic uses a different subset of the fixtures"
)]
mod support;

mod cli;
mod config;
mod contract;
mod cors;
mod http;
mod signoff;
mod web;
