//! Faulty dependencies on 127.0.0.1: HTTP(S) servers, TLS servers, DNS servers, PostgreSQL
//! servers and files that fail in one way each.
//!
//! Every server streams what it sends; none buffers a large body, so the test's own memory stays
//! flat while a check is flooded.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use super::Fault;
use crate::support::{TestCa, TestLeaf};

/// How long a slow dependency waits before it responds: longer than every cell's timeout.
pub const SLOW_DELAY: Duration = Duration::from_secs(6);
/// The size of the body, stream or file of the `huge` fault: 4 GiB.
pub const HUGE_BYTES: u64 = 4 << 30;

/// Bytes that follow no protocol the checks speak.
const GARBAGE: &[u8] =
    b"\x00\xff\xfe garbage \x13\x37{{{ ]]] \x80\x81\x82 not a protocol \r\n\x00\x00";

/// Certificates for the certificate faults: a CA the checks trust, and leaves that fail.
pub struct Certificates {
    pub ca: TestCa,
    pub ca_file: PathBuf,
    valid: TestLeaf,
    expired: TestLeaf,
    untrusted: TestLeaf,
}

impl Certificates {
    pub fn new(dir: &Path) -> Certificates {
        let ca = TestCa::new("Fault matrix CA");
        let ca_file = ca.write(dir);
        let names = ["localhost", "127.0.0.1"];
        let valid = ca.valid_leaf(&names);
        let expired = ca.leaf(&names, time::Duration::days(-30), time::Duration::days(-1));
        let untrusted = TestCa::new("Unknown CA").valid_leaf(&names);
        Certificates {
            ca,
            ca_file,
            valid,
            expired,
            untrusted,
        }
    }

    /// Returns the server configuration for `fault`: the failing leaf for a certificate fault, the
    /// valid one otherwise.
    pub fn server_config(&self, fault: Fault) -> Arc<rustls::ServerConfig> {
        match fault {
            Fault::ExpiredCert => self.expired.server_config(&[]),
            Fault::UntrustedCert => self.untrusted.server_config(&[]),
            _ => self.valid.server_config(&[]),
        }
    }
}

/// A running faulty server, stopped when dropped.
pub struct FaultServer {
    pub addr: SocketAddr,
    task: Option<JoinHandle<()>>,
    /// The bound socket that keeps a down server's port, for [`down`].
    _port: Option<tokio::net::TcpSocket>,
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Returns a port on 127.0.0.1 with nothing listening on it, for TCP and UDP.
pub async fn down() -> FaultServer {
    // A socket that is bound but never listens keeps the port, so no server started later gets
    // it, and the kernel refuses every connection to it.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    FaultServer {
        addr,
        task: None,
        _port: Some(socket),
    }
}

/// Accepts TCP connections and hands each to `serve`.
async fn tcp<F, Fut>(serve: F) -> FaultServer
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serve = Arc::new(serve);
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    });
    FaultServer {
        addr,
        task: Some(task),
        _port: None,
    }
}

/// Holds a connection open without sending anything.
async fn hang(stream: impl AsyncRead + AsyncWrite + Unpin) {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    drop(stream);
}

/// Reads one HTTP request head, up to 64 KiB.
async fn read_request(stream: &mut (impl AsyncRead + Unpin)) -> bool {
    let mut head = Vec::new();
    let mut chunk = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    true
}

/// Writes `total` bytes of `fill` in 64 KiB pieces, stopping when the peer goes away.
async fn stream_bytes(stream: &mut (impl AsyncWrite + Unpin), total: u64, chunked: bool) {
    let piece = vec![b'x'; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        let result = if chunked {
            let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
            framed.extend_from_slice(&piece);
            framed.extend_from_slice(b"\r\n");
            stream.write_all(&framed).await
        } else {
            stream.write_all(&piece).await
        };
        if result.is_err() {
            return;
        }
        sent += piece.len() as u64;
    }
}

/// Responds to one HTTP request as `fault` prescribes.
async fn http_exchange(mut stream: impl AsyncRead + AsyncWrite + Unpin, fault: Fault) {
    if !read_request(&mut stream).await {
        return;
    }
    let head = |status: u16| {
        format!("HTTP/1.1 {status} Fault\r\nconnection: close\r\ncontent-type: text/plain\r\n")
    };
    match fault {
        Fault::Hung => return hang(stream).await,
        Fault::Slow => {
            tokio::time::sleep(SLOW_DELAY).await;
            let _ = stream
                .write_all(format!("{}content-length: 2\r\n\r\nok", head(200)).as_bytes())
                .await;
        }
        Fault::Garbage => {
            let _ = stream.write_all(GARBAGE).await;
        }
        Fault::Truncated => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/pl")
                .await;
        }
        Fault::Status(code) => {
            let body = format!("status {code}");
            let response = format!("{}content-length: {}\r\n\r\n{body}", head(code), body.len());
            let _ = stream.write_all(response.as_bytes()).await;
        }
        Fault::Huge => {
            let response = format!("{}transfer-encoding: chunked\r\n\r\n", head(200));
            if stream.write_all(response.as_bytes()).await.is_ok() {
                stream_bytes(&mut stream, HUGE_BYTES, true).await;
            }
        }
        Fault::Down | Fault::ExpiredCert | Fault::UntrustedCert => {
            let _ = stream
                .write_all(format!("{}content-length: 2\r\n\r\nok", head(200)).as_bytes())
                .await;
        }
    }
    let _ = stream.shutdown().await;
}

/// Starts an HTTP server with `fault`, over TLS for the certificate faults.
pub async fn http(fault: Fault, certificates: &Certificates) -> FaultServer {
    if fault == Fault::Down {
        return down().await;
    }
    let tls = matches!(fault, Fault::ExpiredCert | Fault::UntrustedCert)
        .then(|| tokio_rustls::TlsAcceptor::from(certificates.server_config(fault)));
    tcp(move |stream| {
        let tls = tls.clone();
        async move {
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        http_exchange(stream, fault).await;
                    }
                }
                None => http_exchange(stream, fault).await,
            }
        }
    })
    .await
}

/// Starts a TLS server with `fault` at the handshake.
pub async fn tls(fault: Fault, certificates: &Certificates) -> FaultServer {
    if fault == Fault::Down {
        return down().await;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(certificates.server_config(fault));
    tcp(move |mut stream| {
        let acceptor = acceptor.clone();
        async move {
            match fault {
                Fault::Hung => hang(stream).await,
                Fault::Slow => {
                    tokio::time::sleep(SLOW_DELAY).await;
                    let _ = acceptor.accept(stream).await;
                }
                Fault::Garbage => {
                    let mut hello = [0u8; 512];
                    let _ = stream.read(&mut hello).await;
                    let _ = stream.write_all(GARBAGE).await;
                }
                Fault::Truncated => {
                    // A handshake record header that announces 64 bytes, then one byte and EOF.
                    let mut hello = [0u8; 512];
                    let _ = stream.read(&mut hello).await;
                    let _ = stream.write_all(b"\x16\x03\x03\x00\x40\x02").await;
                }
                Fault::Huge => {
                    // Handshake records of the maximum size, without end.
                    let mut hello = [0u8; 512];
                    let _ = stream.read(&mut hello).await;
                    let mut record = vec![0x16, 0x03, 0x03, 0x40, 0x00];
                    record.resize(5 + 0x4000, 0);
                    let mut sent = 0;
                    while sent < HUGE_BYTES && stream.write_all(&record).await.is_ok() {
                        sent += record.len() as u64;
                    }
                }
                _ => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        hang(stream).await;
                    }
                }
            }
        }
    })
    .await
}

/// Starts a UDP name server with `fault`. It responds to every query without an answer record.
pub async fn dns(fault: Fault) -> FaultServer {
    if fault == Fault::Down {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        drop(socket);
        return FaultServer {
            addr,
            task: None,
            _port: None,
        };
    }
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let socket = Arc::new(socket);
        let mut query = [0u8; 4096];
        loop {
            let Ok((length, peer)) = socket.recv_from(&mut query).await else {
                return;
            };
            let query = query[..length].to_vec();
            let socket = socket.clone();
            tokio::spawn(async move {
                let reply = match fault {
                    Fault::Hung => return,
                    Fault::Slow => {
                        tokio::time::sleep(SLOW_DELAY).await;
                        empty_answer(&query, 0)
                    }
                    Fault::Garbage => GARBAGE.to_vec(),
                    // The header says the message is cut off and carries nothing else.
                    Fault::Truncated => empty_answer(&query, 0x02)[..12].to_vec(),
                    _ => empty_answer(&query, 0),
                };
                let _ = socket.send_to(&reply, peer).await;
            });
        }
    });
    FaultServer {
        addr,
        task: Some(task),
        _port: None,
    }
}

/// Builds a response to `query` with its question and no answer record; `flags` adds header bits (0x02: TC).
fn empty_answer(query: &[u8], flags: u8) -> Vec<u8> {
    let mut reply = query.to_vec();
    if reply.len() < 12 {
        reply.resize(12, 0);
    }
    reply[2] = 0x81 | flags;
    reply[3] = 0x80;
    reply[6..12].fill(0);
    reply
}

/// Starts a PostgreSQL server with `fault`, speaking just enough of the protocol to fail in that way.
pub async fn postgres(fault: Fault, certificates: &Certificates) -> FaultServer {
    if fault == Fault::Down {
        return down().await;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(certificates.server_config(fault));
    tcp(move |mut stream| {
        let acceptor = acceptor.clone();
        async move {
            if fault == Fault::Hung {
                return hang(stream).await;
            }
            let Some(first) = read_startup(&mut stream).await else {
                return;
            };
            if first == SSL_REQUEST {
                if !matches!(fault, Fault::ExpiredCert | Fault::UntrustedCert) {
                    return;
                }
                let _ = stream.write_all(b"S").await;
                if let Ok(stream) = acceptor.accept(stream).await {
                    hang(stream).await;
                }
                return;
            }
            match fault {
                Fault::Slow => {
                    tokio::time::sleep(SLOW_DELAY).await;
                    let _ = stream.write_all(&auth_ok()).await;
                }
                Fault::Garbage => {
                    let _ = stream.write_all(GARBAGE).await;
                }
                Fault::Truncated => {
                    // An authentication message that announces 8 bytes of body and sends 2.
                    let _ = stream.write_all(b"R\x00\x00\x00\x08\x00").await;
                }
                Fault::Status(401) => {
                    let _ = stream.write_all(&error_response("28P01")).await;
                }
                Fault::Huge => {
                    // A notice whose length field announces almost 2 GiB, then the bytes.
                    let mut header = b"N".to_vec();
                    header.extend_from_slice(&0x7fff_fff0_u32.to_be_bytes());
                    if stream.write_all(&header).await.is_ok() {
                        stream_bytes(&mut stream, HUGE_BYTES, false).await;
                    }
                }
                _ => {}
            }
            let _ = stream.shutdown().await;
        }
    })
    .await
}

/// The request code of PostgreSQL's SSLRequest packet.
const SSL_REQUEST: u32 = 80_877_103;

/// Reads a startup packet and returns its request or protocol code.
async fn read_startup(stream: &mut (impl AsyncRead + Unpin)) -> Option<u32> {
    let length = stream.read_u32().await.ok()?;
    let code = stream.read_u32().await.ok()?;
    let mut rest = vec![0u8; (length as usize).saturating_sub(8).min(65536)];
    stream.read_exact(&mut rest).await.ok()?;
    Some(code)
}

fn auth_ok() -> Vec<u8> {
    b"R\x00\x00\x00\x08\x00\x00\x00\x00".to_vec()
}

/// Builds a FATAL ErrorResponse with SQLSTATE `code`.
fn error_response(code: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (tag, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', code),
        (b'M', "authentication failed"),
    ] {
        fields.push(tag);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut message = vec![b'E'];
    message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    message.extend_from_slice(&fields);
    message
}

/// Creates a file with `fault` in `dir`, named `name`: missing, a FIFO no one writes to,
/// garbage, a document cut off in the middle, or a sparse file of 4 GiB. `valid` is the content
/// of a good file, which the truncated fault cuts in half.
pub fn file(fault: Fault, dir: &Path, name: &str, valid: &str) -> PathBuf {
    let path = dir.join(name);
    match fault {
        Fault::Down => {}
        Fault::Hung => {
            let status = std::process::Command::new("mkfifo")
                .arg(&path)
                .status()
                .unwrap();
            assert!(status.success(), "mkfifo failed");
        }
        Fault::Garbage => std::fs::write(&path, GARBAGE).unwrap(),
        Fault::Truncated => std::fs::write(&path, &valid[..valid.len() / 2]).unwrap(),
        Fault::Huge => {
            let file = std::fs::File::create(&path).unwrap();
            file.set_len(HUGE_BYTES).unwrap();
        }
        other => panic!("no file fault {other:?}"),
    }
    path
}
