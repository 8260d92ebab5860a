//! Integration tests: one binary, a module per topic.

mod monitoring;
#[allow(
    dead_code,
    reason = "each monitoring test uses a different subset of the fixtures"
)]
mod monitoring_support;
mod postgres;
#[allow(
    dead_code,
    reason = "each PostgreSQL test uses a different subset of the fixtures"
)]
mod postgres_support;
#[allow(
    dead_code,
    reason = "each topic uses a different subset of the fixtures"
)]
mod support;

mod cli;
mod config;
mod contract;
mod cors;
mod elasticsearch;
mod grafana;
mod http;
mod loki;
mod signoff;
mod web;
