//! Integration tests: one binary, a module per topic.

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

mod alerting;
mod cli;
mod config;
mod container;
mod contract;
mod cors;
mod dashboard;
mod end_to_end;
mod helm_chart;
mod http;
#[allow(
    dead_code,
    reason = "each Kubernetes kind uses a different subset of the local API server"
)]
mod kube_api;
mod kubernetes;
mod postgres;
mod signoff;
mod web;
mod web_protection;
