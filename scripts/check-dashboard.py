#!/usr/bin/env python3
"""Validate dashboards/readiness.json.

Checks, in order:
1. the dashboard against Grafana's dashboard JSON schema, each Prometheus query against the
   Prometheus data query schema, and the options of stat and time series panels against their
   panel schemas (the schema files are read from --schema-dir and never copied here);
2. that every panel, query and variable takes its data source from the `datasource` variable,
   so no data source uid is hard-coded, and that the dashboard uid is fixed;
3. that every PromQL expression parses, by handing them to `promtool check rules` as
   recording rules after Grafana's variables are replaced with sample values.

Needs the Python package `jsonschema` and `promtool` on PATH.
"""

import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile

import jsonschema

# Sample values for Grafana's variables, so that expressions become plain PromQL.
VARIABLES = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range": "1h",
    "job": ".*",
    "section": ".*",
}
EXPECTED_UID = "readiness-exporter"
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}


def load_schema(schema_dir, name, definition=None):
    """Load a schema file; with `definition`, point its root at that definition."""
    schema = json.loads((schema_dir / name).read_text())
    if definition is not None:
        schema = dict(schema)
        schema["$ref"] = f"#/definitions/{definition}"
    return schema


def validate(schema, instance, where, problems):
    validator = jsonschema.Draft7Validator(schema)
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path)):
        path = "/".join(str(part) for part in error.absolute_path)
        problems.append(f"{where}: {path or '(root)'}: {error.message}")


def all_panels(dashboard):
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def substitute(expr):
    def replace(match):
        name = match.group(1) or match.group(2)
        if name not in VARIABLES:
            raise KeyError(f"unknown Grafana variable ${name} in expression: {expr}")
        return VARIABLES[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, expr)


def label_values_selector(query):
    """The series selector of a `label_values(selector, label)` variable query."""
    match = re.fullmatch(r"label_values\((.*),\s*\w+\)", query.strip())
    if not match:
        raise ValueError(f"unsupported variable query: {query}")
    return match.group(1)


def check_schemas(dashboard, schema_dir, problems):
    validate(load_schema(schema_dir, "dashboard.jsonschema.json"), dashboard, "dashboard", problems)
    query_schema = load_schema(schema_dir, "prometheus.jsonschema.json")
    stat_options = load_schema(schema_dir, "stat.jsonschema.json", "Options")
    timeseries_options = load_schema(schema_dir, "timeseries.jsonschema.json", "Options")
    timeseries_field = load_schema(schema_dir, "timeseries.jsonschema.json", "FieldConfig")
    for panel in all_panels(dashboard):
        where = f"panel {panel.get('id')} ({panel.get('title')})"
        for target in panel.get("targets", []):
            validate(query_schema, target, f"{where} query {target.get('refId')}", problems)
        if panel["type"] == "stat":
            validate(stat_options, panel.get("options", {}), f"{where} options", problems)
        if panel["type"] == "timeseries":
            validate(timeseries_options, panel.get("options", {}), f"{where} options", problems)
            custom = panel.get("fieldConfig", {}).get("defaults", {}).get("custom", {})
            validate(timeseries_field, custom, f"{where} field config", problems)


def check_structure(dashboard, problems):
    if dashboard.get("uid") != EXPECTED_UID:
        problems.append(f"dashboard uid is {dashboard.get('uid')!r}, expected {EXPECTED_UID!r}")
    variables = dashboard["templating"]["list"]
    if not any(v["type"] == "datasource" and v["name"] == "datasource" for v in variables):
        problems.append("no data source variable named `datasource`")
    for variable in variables:
        if variable["type"] == "query" and variable.get("datasource") != DATASOURCE_REF:
            problems.append(f"variable {variable['name']} does not use ${{datasource}}")
    ids = set()
    for panel in all_panels(dashboard):
        where = f"panel {panel.get('id')} ({panel.get('title')})"
        if panel["id"] in ids:
            problems.append(f"{where}: duplicate panel id")
        ids.add(panel["id"])
        if panel["type"] == "row":
            continue
        if panel.get("datasource") != DATASOURCE_REF:
            problems.append(f"{where}: data source is not ${{datasource}}")
        if not panel.get("targets"):
            problems.append(f"{where}: no query")
        for target in panel.get("targets", []):
            if target.get("datasource") != DATASOURCE_REF:
                problems.append(f"{where} query {target.get('refId')}: data source is not ${{datasource}}")


def expressions(dashboard):
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            yield f"variable {variable['name']}", label_values_selector(variable["query"])
    for panel in all_panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} query {target['refId']}", target["expr"]


def check_promql(dashboard, problems):
    rules = []
    for index, (where, expr) in enumerate(expressions(dashboard)):
        try:
            rules.append({"record": f"dashboard:expression_{index}", "expr": substitute(expr), "labels": {"where": where}})
        except (KeyError, ValueError) as error:
            problems.append(f"{where}: {error}")
    with tempfile.TemporaryDirectory() as directory:
        path = pathlib.Path(directory) / "dashboard.rules.json"
        # JSON is valid YAML, so promtool reads this file as a rules file.
        path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}, indent=1))
        result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
        if result.returncode != 0:
            problems.append("promtool rejected an expression:\n" + result.stdout + result.stderr)
    return len(rules)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema-dir", required=True, type=pathlib.Path)
    parser.add_argument("dashboard", nargs="?", default="dashboards/readiness.json", type=pathlib.Path)
    args = parser.parse_args()

    dashboard = json.loads(args.dashboard.read_text())
    problems = []
    check_schemas(dashboard, args.schema_dir, problems)
    check_structure(dashboard, problems)
    count = check_promql(dashboard, problems)
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    print(f"dashboard: schema valid, {count} PromQL expressions parsed by promtool")
    return 0


if __name__ == "__main__":
    sys.exit(main())
