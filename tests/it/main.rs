//! Integration tests: one binary, a module per topic.

#[allow(
    dead_code,
    reason = "each monitoring test uses a different subset of the fixtures"
)]
mod monitoring_support;
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
#[allow(
    dead_code,
    reason = "each topic uses a different subset of the helpers"
)]
mod testbed;
#[allow(
    dead_code,
    reason = "each Vault test uses a different subset of the fixtures"
)]
mod vault_support;

mod alerting;
mod cli;
mod config;
mod container;
mod contract;
mod cors;
mod dashboard;
mod dns;
mod elasticsearch;
mod end_to_end;
mod fault_matrix;
mod fuzz;
mod fuzz_responses;
mod grafana;
mod helm_chart;
mod http;
#[allow(
    dead_code,
    reason = "each Kubernetes kind uses a different subset of the local API server"
)]
mod kube_api;
mod kubernetes;
mod loki;
mod monitoring;
mod postgres;
mod reload_under_load;
mod secret_canary;
mod shutdown;
mod signoff;
mod tls;
mod vault;
mod web;
mod web_protection;
