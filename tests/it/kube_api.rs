//! A local Kubernetes API server for tests, on 127.0.0.1 over HTTPS with a certificate made at
//! test time. It serves discovery, get and list with label and field selectors, and pagination
//! with `limit` and `continue`. It checks a bearer token and returns 401, 403 and 404 Status
//! objects shaped like the real API server's. The exporter reaches it through the real `kube` client and a kubeconfig
//! file the test writes; `kubectl` reaches it the same way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::support::{http_server, TestCa, TestServer};

/// The bearer token the kubeconfig carries and the server accepts.
pub const TOKEN: &str = "test-reader-token";

/// The user the 403 messages name, as the API server names a service account.
const USER: &str = "system:serviceaccount:readiness:readiness-exporter";

/// A resource type the server serves.
#[derive(Clone, Debug)]
struct ResourceType {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
}

const RESOURCE_TYPES: &[ResourceType] = &[
    ResourceType {
        group: "",
        version: "v1",
        plural: "pods",
        kind: "Pod",
        namespaced: true,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "secrets",
        kind: "Secret",
        namespaced: true,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "configmaps",
        kind: "ConfigMap",
        namespaced: true,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        kind: "ServiceAccount",
        namespaced: true,
    },
    ResourceType {
        group: "",
        version: "v1",
        plural: "namespaces",
        kind: "Namespace",
        namespaced: false,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        plural: "deployments",
        kind: "Deployment",
        namespaced: true,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        kind: "StatefulSet",
        namespaced: true,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        kind: "DaemonSet",
        namespaced: true,
    },
    ResourceType {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        kind: "ReplicaSet",
        namespaced: true,
    },
    ResourceType {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingresses",
        kind: "Ingress",
        namespaced: true,
    },
    ResourceType {
        group: "networking.k8s.io",
        version: "v1",
        plural: "networkpolicies",
        kind: "NetworkPolicy",
        namespaced: true,
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "roles",
        kind: "Role",
        namespaced: true,
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "rolebindings",
        kind: "RoleBinding",
        namespaced: true,
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterroles",
        kind: "ClusterRole",
        namespaced: false,
    },
    ResourceType {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterrolebindings",
        kind: "ClusterRoleBinding",
        namespaced: false,
    },
    ResourceType {
        group: "aquasecurity.github.io",
        version: "v1alpha1",
        plural: "vulnerabilityreports",
        kind: "VulnerabilityReport",
        namespaced: true,
    },
];

/// The group of the trivy-operator CRDs, served only when [`FakeApi::install_crds`] was called.
const CRD_GROUP: &str = "aquasecurity.github.io";

/// A verb on a resource type: verb, API group (empty for the core group) and plural name.
pub type Permission = (String, String, String);

/// One request the server received: method, path and decoded query parameters.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub query: BTreeMap<String, String>,
}

#[derive(Default)]
struct State {
    objects: Vec<Value>,
    forbidden: BTreeSet<(String, String, Option<String>)>,
    crds_installed: bool,
    hidden_groups: BTreeSet<String>,
    allowed: Option<BTreeSet<Permission>>,
    used: BTreeSet<Permission>,
    requests: Vec<Recorded>,
    raw_response: Option<(u16, Bytes)>,
}

/// The running server, its kubeconfig and its state.
pub struct FakeApi {
    pub server: TestServer,
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
    state: Arc<Mutex<State>>,
}

impl FakeApi {
    /// Starts the server and writes `kubeconfig` (context `fake`) into a temp dir.
    pub async fn start() -> FakeApi {
        crate::support::init();
        let ca = TestCa::new("fake kubernetes CA");
        let leaf = ca.valid_leaf(&["127.0.0.1"]);
        let state = Arc::new(Mutex::new(State::default()));
        let handler_state = state.clone();
        let server = http_server(
            Some(leaf.server_config(&[])),
            Arc::new(move |request| handle(&handler_state, request)),
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        let ca_data = base64::engine::general_purpose::STANDARD.encode(&ca.cert_pem);
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: https://{addr}\n    certificate-authority-data: {ca_data}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: reader\n- name: wrong-token\n  context:\n    cluster: fake\n    user: stranger\ncurrent-context: fake\nusers:\n- name: reader\n  user:\n    token: {TOKEN}\n- name: stranger\n  user:\n    token: not-the-token\n",
                addr = server.addr
            ),
        )
        .unwrap();
        FakeApi {
            server,
            kubeconfig,
            dir,
            state,
        }
    }

    /// The `kubernetes:` block of an exporter configuration that uses this server.
    pub fn config_block(&self) -> String {
        format!(
            "kubernetes:\n  kubeconfig: {}\n  context: fake\n",
            self.kubeconfig.display()
        )
    }

    /// Adds objects; each carries `apiVersion`, `kind` and `metadata.name`.
    pub fn add(&self, objects: impl IntoIterator<Item = Value>) {
        self.state.lock().unwrap().objects.extend(objects);
    }

    /// Adds an object from a file under the shared API shapes directory, or a list's items.
    pub fn add_file(&self, path: &Path) -> Value {
        let value: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        if let Some(items) = value.get("items").and_then(Value::as_array) {
            let api_version = value["apiVersion"].clone();
            let kind = value["kind"]
                .as_str()
                .unwrap()
                .trim_end_matches("List")
                .to_string();
            for item in items {
                let mut item = item.clone();
                item["apiVersion"] = api_version.clone();
                item["kind"] = json!(kind);
                self.add([item]);
            }
        } else {
            self.add([value.clone()]);
        }
        value
    }

    /// Rejects `verb` on `plural` in `namespace` (`None`: every namespace) with 403.
    pub fn forbid(&self, verb: &str, plural: &str, namespace: Option<&str>) {
        self.state.lock().unwrap().forbidden.insert((
            verb.to_string(),
            plural.to_string(),
            namespace.map(str::to_string),
        ));
    }

    /// Serves the trivy-operator CRDs' group.
    pub fn install_crds(&self) {
        self.state.lock().unwrap().crds_installed = true;
    }

    /// Rejects every get or list outside `allowed` with 403, as RBAC with only these rules would.
    pub fn restrict_to(&self, allowed: BTreeSet<Permission>) {
        self.state.lock().unwrap().allowed = Some(allowed);
    }

    /// Every permission that requests have needed so far.
    pub fn used_permissions(&self) -> BTreeSet<Permission> {
        self.state.lock().unwrap().used.clone()
    }

    /// Stops serving an API group, as a cluster without that API would.
    pub fn hide_group(&self, group: &str) {
        self.state
            .lock()
            .unwrap()
            .hidden_groups
            .insert(group.to_string());
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Removes every object and clears the recorded requests.
    pub fn clear(&self) {
        let mut state = self.state.lock().unwrap();
        state.objects.clear();
        state.requests.clear();
    }

    /// Responds to every get and list with `status` and `body` as they are (`None`: serve objects
    /// again). Discovery and authentication keep working.
    pub fn set_raw_response(&self, response: Option<(u16, Bytes)>) {
        self.state.lock().unwrap().raw_response = response;
    }
}

fn json_response(status: u16, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn status_response(
    code: u16,
    reason: &str,
    message: &str,
    details: Value,
) -> Response<Full<Bytes>> {
    json_response(
        code,
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "details": details,
            "code": code,
        }),
    )
}

fn not_served() -> Response<Full<Bytes>> {
    status_response(
        404,
        "NotFound",
        "the server could not find the requested resource",
        json!({}),
    )
}

fn handle(state: &Mutex<State>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    let query: BTreeMap<String, String> = request
        .uri()
        .query()
        .map(|query| {
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let mut state = state.lock().unwrap();
    state.requests.push(Recorded {
        path: path.clone(),
        query: query.clone(),
    });

    let authorized = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == format!("Bearer {TOKEN}").as_bytes());
    if !authorized {
        return status_response(401, "Unauthorized", "Unauthorized", json!({}));
    }
    if request.method() != http::Method::GET {
        return status_response(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
            json!({}),
        );
    }

    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let served = |group: &str| {
        (group != CRD_GROUP || state.crds_installed) && !state.hidden_groups.contains(group)
    };
    match segments.as_slice() {
        ["version"] => json_response(
            200,
            &json!({
                "major": "1", "minor": "33", "gitVersion": "v1.33.0", "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean", "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2",
                "compiler": "gc", "platform": "linux/amd64"
            }),
        ),
        ["api"] => json_response(
            200,
            &json!({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:443"}]
            }),
        ),
        ["apis"] => {
            let mut groups: BTreeMap<&str, &str> = BTreeMap::new();
            for resource in RESOURCE_TYPES
                .iter()
                .filter(|r| !r.group.is_empty() && served(r.group))
            {
                groups.insert(resource.group, resource.version);
            }
            let groups: Vec<Value> = groups
                .into_iter()
                .map(|(group, version)| {
                    let version = json!({"groupVersion": format!("{group}/{version}"), "version": version});
                    json!({"name": group, "versions": [version.clone()], "preferredVersion": version})
                })
                .collect();
            json_response(
                200,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            )
        }
        ["api", "v1"] => resource_list("", "v1"),
        ["apis", group, version] if served(group) => resource_list(group, version),
        ["api", "v1", _, ..] | ["apis", _, _, _, ..] if state.raw_response.is_some() => {
            let (status, body) = state.raw_response.clone().unwrap();
            let mut response = Response::new(Full::new(body));
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            response
        }
        ["api", "v1", rest @ ..] => serve_objects(&mut state, "", "v1", rest, &query),
        ["apis", group, version, rest @ ..] if served(group) => {
            serve_objects(&mut state, group, version, rest, &query)
        }
        _ => not_served(),
    }
}

fn resource_list(group: &str, version: &str) -> Response<Full<Bytes>> {
    let resources: Vec<Value> = RESOURCE_TYPES
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            json!({
                "name": r.plural, "singularName": r.kind.to_ascii_lowercase(), "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "list", "watch"]
            })
        })
        .collect();
    if resources.is_empty() {
        return not_served();
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json_response(
        200,
        &json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources
        }),
    )
}

fn api_version_of(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

fn serve_objects(
    state: &mut State,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &BTreeMap<String, String>,
) -> Response<Full<Bytes>> {
    let (namespace, plural, name) = match rest {
        ["namespaces", namespace, plural] => (Some(*namespace), *plural, None),
        ["namespaces", namespace, plural, name] => (Some(*namespace), *plural, Some(*name)),
        [plural] => (None, *plural, None),
        [plural, name] => (None, *plural, Some(*name)),
        _ => return not_served(),
    };
    let Some(resource) = RESOURCE_TYPES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
    else {
        return not_served();
    };
    let verb = if name.is_some() { "get" } else { "list" };
    let permission = (verb.to_string(), group.to_string(), plural.to_string());
    state.used.insert(permission.clone());
    let outside_allowed = state
        .allowed
        .as_ref()
        .is_some_and(|allowed| !allowed.contains(&permission));
    let forbidden = outside_allowed
        || state.forbidden.contains(&(
            verb.to_string(),
            plural.to_string(),
            namespace.map(str::to_string),
        ))
        || state
            .forbidden
            .contains(&(verb.to_string(), plural.to_string(), None));
    let qualified = if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    };
    if forbidden {
        let object = match name {
            Some(name) => format!("{qualified} \"{name}\""),
            None => qualified.clone(),
        };
        let scope = match namespace {
            Some(namespace) => format!("in the namespace \"{namespace}\""),
            None => "at the cluster scope".to_string(),
        };
        let message = format!(
            "{object} is forbidden: User \"{USER}\" cannot {verb} resource \"{plural}\" in API group \"{group}\" {scope}"
        );
        let mut details = json!({"group": group, "kind": plural});
        if let Some(name) = name {
            details["name"] = json!(name);
        }
        return status_response(403, "Forbidden", &message, details);
    }

    let api_version = api_version_of(group, version);
    let in_scope = |object: &&Value| {
        object["apiVersion"] == json!(api_version)
            && object["kind"] == json!(resource.kind)
            && namespace.is_none_or(|namespace| object["metadata"]["namespace"] == json!(namespace))
    };
    if let Some(name) = name {
        return match state
            .objects
            .iter()
            .filter(in_scope)
            .find(|o| o["metadata"]["name"] == json!(name))
        {
            Some(object) => json_response(200, object),
            None => status_response(
                404,
                "NotFound",
                &format!("{qualified} \"{name}\" not found"),
                json!({"name": name, "group": group, "kind": plural}),
            ),
        };
    }

    let mut matching: Vec<&Value> = state
        .objects
        .iter()
        .filter(in_scope)
        .filter(|object| {
            query
                .get("labelSelector")
                .is_none_or(|selector| labels_match(selector, &object["metadata"]["labels"]))
        })
        .filter(|object| {
            query
                .get("fieldSelector")
                .is_none_or(|selector| fields_match(selector, object))
        })
        .collect();
    matching.sort_by_key(|object| {
        (
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    });
    let start: usize = match query.get("continue") {
        Some(token) => match token.strip_prefix("offset-").and_then(|n| n.parse().ok()) {
            Some(start) => start,
            None => {
                return status_response(400, "BadRequest", "continue key is not valid", json!({}));
            }
        },
        None => 0,
    };
    let limit: usize = query
        .get("limit")
        .and_then(|limit| limit.parse().ok())
        .filter(|limit| *limit > 0)
        .unwrap_or(usize::MAX);
    let end = start.saturating_add(limit).min(matching.len());
    // Items of a list carry no apiVersion and kind, as the real API server sends them.
    let items: Vec<Value> = matching[start.min(end)..end]
        .iter()
        .map(|object| {
            let mut item = (*object).clone();
            if let Some(map) = item.as_object_mut() {
                map.remove("apiVersion");
                map.remove("kind");
            }
            item
        })
        .collect();
    let mut metadata = json!({"resourceVersion": "1000"});
    if end < matching.len() {
        metadata["continue"] = json!(format!("offset-{end}"));
        metadata["remainingItemCount"] = json!(matching.len() - end);
    }
    json_response(
        200,
        &json!({
            "kind": format!("{}List", resource.kind), "apiVersion": api_version, "metadata": metadata, "items": items
        }),
    )
}

/// Evaluates a label selector string the way the API server does, for `=`, `==`, `!=`, `in`,
/// `notin`, `key` and `!key`.
fn labels_match(selector: &str, labels: &Value) -> bool {
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in selector.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts.iter().all(|part| {
        let part = part.trim();
        if let Some(key) = part.strip_prefix('!') {
            return label(key.trim()).is_none();
        }
        if let Some((key, value)) = part.split_once("!=") {
            return label(key.trim()) != Some(value.trim());
        }
        if let Some((key, value)) = part.split_once("==").or_else(|| part.split_once('=')) {
            return label(key.trim()) == Some(value.trim());
        }
        if let Some((key, values)) = part.split_once(" notin ") {
            let values: Vec<&str> = values
                .trim()
                .trim_matches(|c| c == '(' || c == ')')
                .split(',')
                .map(str::trim)
                .collect();
            return !label(key.trim()).is_some_and(|value| values.contains(&value));
        }
        if let Some((key, values)) = part.split_once(" in ") {
            let values: Vec<&str> = values
                .trim()
                .trim_matches(|c| c == '(' || c == ')')
                .split(',')
                .map(str::trim)
                .collect();
            return label(key.trim()).is_some_and(|value| values.contains(&value));
        }
        label(part).is_some()
    })
}

/// Evaluates a field selector of `path=value` and `path!=value` terms on dotted JSON paths.
fn fields_match(selector: &str, object: &Value) -> bool {
    selector.split(',').all(|term| {
        let (path, value, negated) = match term.split_once("!=") {
            Some((path, value)) => (path, value, true),
            None => {
                let (path, value) = term
                    .split_once("==")
                    .or_else(|| term.split_once('='))
                    .unwrap_or((term, ""));
                (path, value, false)
            }
        };
        let found = path
            .split('.')
            .try_fold(object, |value, key| value.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default();
        (found == value) != negated
    })
}
