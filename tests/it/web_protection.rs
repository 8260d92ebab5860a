//! Protected endpoints: TLS, mutual TLS and basic auth from a web configuration file.

use std::path::Path;
use std::sync::Arc;

use readiness_exporter::web::{self, WebConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{self, RunningExporter, TestCa};

/// bcrypt's minimum cost keeps the tests fast; the format is the same as at cost 10.
const TEST_COST: u32 = 4;

const CHECKLIST: &str = r#"
global:
  interval: 60s
  timeout: 5s
checks:
  - id: nothing_listens
    title: "A port with nothing listening"
    section: "I. Pre-Deployment"
    severity: warning
    http:
      url: http://127.0.0.1:9/
"#;

/// An exporter served with the web configuration `web_yaml`, written beside the checklist.
struct ProtectedExporter {
    _exporter: RunningExporter,
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ProtectedExporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_protected(web_yaml: &str, files: &[(&str, &str)]) -> ProtectedExporter {
    let exporter = support::start_exporter(CHECKLIST).await;
    exporter.wait_ready().await;
    let dir = exporter.dir.path();
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    let web_path = dir.join("web-config.yml");
    std::fs::write(&web_path, web_yaml).unwrap();
    let web = WebConfig::load(&web_path).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = exporter.exporter.clone();
    let task = tokio::spawn(async move {
        web::serve_with(serving, listener, Arc::new(web), std::future::pending()).await;
    });
    ProtectedExporter {
        _exporter: exporter,
        addr,
        task,
    }
}

fn hash(password: &str) -> String {
    bcrypt::hash(password, TEST_COST).unwrap()
}

fn client() -> reqwest::ClientBuilder {
    support::init();
    reqwest::Client::builder().no_proxy()
}

fn tls_client(ca: &TestCa, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut builder = client()
        .tls_certs_only(vec![
            reqwest::Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap()
        ]);
    if let Some((cert, key)) = identity {
        let pem = format!("{cert}{key}");
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

fn tls_web_config(client_ca: bool) -> String {
    let mut yaml =
        String::from("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
    if client_ca {
        yaml.push_str(
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients.crt\n",
        );
    }
    yaml
}

#[tokio::test]
async fn basic_auth_rejects_wrong_password() {
    let web_yaml = format!(
        "basic_auth_users:\n  prometheus: '{}'\n",
        hash("right horse")
    );
    let server = start_protected(&web_yaml, &[]).await;
    let url = format!("http://{}/metrics", server.addr);
    let client = client().build().unwrap();

    let missing = client.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Basic realm=\"readiness-exporter\""
    );

    let wrong = client
        .get(&url)
        .basic_auth("prometheus", Some("wrong horse"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let wrong_body = wrong.text().await.unwrap();
    assert!(!wrong_body.contains("readiness_"), "{wrong_body}");

    let unknown_user = client
        .get(&url)
        .basic_auth("grafana", Some("right horse"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown_user.status(), 401);

    let right = client
        .get(&url)
        .basic_auth("prometheus", Some("right horse"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    let body = right.text().await.unwrap();
    assert!(
        body.contains("readiness_check_success{check=\"nothing_listens\"} 0"),
        "{body}"
    );
}

#[tokio::test]
async fn basic_auth_protects_every_endpoint() {
    let web_yaml = format!(
        "basic_auth_users:\n  prometheus: '{}'\n",
        hash("right horse")
    );
    let server = start_protected(&web_yaml, &[]).await;
    let client = client().build().unwrap();
    for path in [
        "/",
        "/api/v1/checks",
        "/api/v1/gate",
        "/-/healthy",
        "/-/ready",
    ] {
        let response = client
            .get(format!("http://{}{path}", server.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
    let reload = client
        .post(format!("http://{}/-/reload", server.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 401);
}

#[tokio::test]
async fn mutual_tls_requires_client_certificate() {
    let server_ca = TestCa::new("server CA");
    let server_leaf = server_ca.valid_leaf(&["localhost", "127.0.0.1"]);
    let clients_ca = TestCa::new("clients CA");
    let client_leaf = clients_ca.valid_leaf(&["prometheus"]);
    let stranger_ca = TestCa::new("another CA");
    let stranger_leaf = stranger_ca.valid_leaf(&["prometheus"]);
    let server = start_protected(
        &tls_web_config(true),
        &[
            ("server.crt", &server_leaf.cert_pem),
            ("server.key", &server_leaf.key_pem),
            ("clients.crt", &clients_ca.cert_pem),
        ],
    )
    .await;
    let url = format!("https://127.0.0.1:{}/metrics", server.addr.port());

    let without_certificate = tls_client(&server_ca, None).get(&url).send().await;
    assert!(
        without_certificate.is_err(),
        "a client without a certificate got {:?}",
        without_certificate.map(|response| response.status())
    );

    let unknown_issuer = tls_client(
        &server_ca,
        Some((&stranger_leaf.cert_pem, &stranger_leaf.key_pem)),
    )
    .get(&url)
    .send()
    .await;
    assert!(
        unknown_issuer.is_err(),
        "a client certificate from another CA got {:?}",
        unknown_issuer.map(|response| response.status())
    );

    let trusted = tls_client(
        &server_ca,
        Some((&client_leaf.cert_pem, &client_leaf.key_pem)),
    )
    .get(&url)
    .send()
    .await
    .unwrap();
    assert_eq!(trusted.status(), 200);
    let body = trusted.text().await.unwrap();
    assert!(
        body.contains("readiness_check_info{check=\"nothing_listens\""),
        "{body}"
    );
}

#[tokio::test]
async fn plain_http_against_tls_gets_400() {
    let ca = TestCa::new("server CA");
    let leaf = ca.valid_leaf(&["localhost", "127.0.0.1"]);
    let server = start_protected(
        &tls_web_config(false),
        &[
            ("server.crt", &leaf.cert_pem),
            ("server.key", &leaf.key_pem),
        ],
    )
    .await;

    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 400 "), "{response}");
    assert!(
        response.ends_with("Client sent an HTTP request to an HTTPS server.\n"),
        "{response}"
    );
    assert!(!response.contains("readiness_"), "{response}");

    let over_tls = tls_client(&ca, None)
        .get(format!(
            "https://127.0.0.1:{}/-/healthy",
            server.addr.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(over_tls.status(), 200);
}

#[tokio::test]
async fn tls_and_basic_auth_combine() {
    let ca = TestCa::new("server CA");
    let leaf = ca.valid_leaf(&["localhost", "127.0.0.1"]);
    let web_yaml = format!(
        "{}basic_auth_users:\n  prometheus: '{}'\n",
        tls_web_config(false),
        hash("right horse")
    );
    let server = start_protected(
        &web_yaml,
        &[
            ("server.crt", &leaf.cert_pem),
            ("server.key", &leaf.key_pem),
        ],
    )
    .await;
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let client = tls_client(&ca, None);

    let wrong = client
        .get(&url)
        .basic_auth("prometheus", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = client
        .get(&url)
        .basic_auth("prometheus", Some("right horse"))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert!(right.text().await.unwrap().contains("nothing_listens"));
}

fn load_error(dir: &Path, yaml: &str) -> String {
    let path = dir.join("web-config.yml");
    std::fs::write(&path, yaml).unwrap();
    WebConfig::load(&path).unwrap_err().to_string()
}

#[test]
fn invalid_web_config_names_the_problem() {
    support::init();
    let dir = tempfile::tempdir().unwrap();
    let leaf = TestCa::new("server CA").valid_leaf(&["localhost"]);
    std::fs::write(dir.path().join("server.crt"), &leaf.cert_pem).unwrap();
    std::fs::write(dir.path().join("server.key"), &leaf.key_pem).unwrap();

    let not_bcrypt = load_error(dir.path(), "basic_auth_users:\n  prometheus: plain-text\n");
    assert!(
        not_bcrypt.contains("basic_auth_users.prometheus is not a bcrypt hash"),
        "{not_bcrypt}"
    );
    assert!(!not_bcrypt.contains("plain-text"), "{not_bcrypt}");

    let unknown_key = load_error(dir.path(), "tls_config:\n  cert_file: x\n");
    assert!(unknown_key.contains("tls_config"), "{unknown_key}");
    assert!(unknown_key.contains("supported keys are"), "{unknown_key}");

    let missing_ca = load_error(
        dir.path(),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n",
    );
    assert!(missing_ca.contains("needs client_ca_file"), "{missing_ca}");

    let missing_cert = load_error(
        dir.path(),
        "tls_server_config:\n  cert_file: absent.crt\n  key_file: server.key\n",
    );
    assert!(missing_cert.contains("absent.crt"), "{missing_cert}");

    let bad_version = load_error(
        dir.path(),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS11\n",
    );
    assert!(bad_version.contains("use TLS12 or TLS13"), "{bad_version}");
}
