//! Raw sockets for the attacks: frames built by hand, the hello, and reading until the
//! server closes.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One frame: a 4-byte big-endian length, then the body.
pub fn frame(message: &Value) -> Vec<u8> {
    let body = serde_json::to_vec(message).unwrap();
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

pub fn hello() -> Vec<u8> {
    hello_claiming(Value::Null)
}

/// A hello that claims the peer id `id` (JSON null: none).
pub fn hello_claiming(id: Value) -> Vec<u8> {
    frame(
        &json!({"hello": {"protocol": 1, "id": id, "group": null, "hub": false,
                            "version": "hostile", "max_frame": 1 << 20}}),
    )
}

pub fn call(id: u64, tag: &str, args: Value) -> Vec<u8> {
    frame(&json!({"call": {"id": id, "tag": tag, "args": args, "timeout_ms": 30_000}}))
}

/// Connects and says hello (the server's hello is left unread).
pub async fn said_hello(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&hello()).await.unwrap();
    stream
}

/// Connects and says hello claiming to be `id` (the server's hello is left unread).
pub async fn said_hello_as(addr: SocketAddr, id: &net::PeerId) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(&hello_claiming(json!(id.to_string())))
        .await
        .unwrap();
    stream
}

/// Reads (and drops) everything until the server closes, waiting at most `limit`;
/// returns the frames' bodies as text, best effort (what came may not be framed), or
/// `None` if it is still open after `limit`.
pub async fn until_closed<R: AsyncRead + Unpin>(stream: &mut R, limit: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let read = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    // Only the start of what came is kept: replies can be large.
                    if seen.len() < 64 * 1024 {
                        seen.extend_from_slice(&buf[..n]);
                    }
                }
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    Some(String::from_utf8_lossy(&seen).into_owned())
}

/// The hello the server sends first.
pub async fn their_hello(stream: &mut TcpStream) -> Value {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).await.unwrap();
    serde_json::from_slice(&body).unwrap()
}

/// Reads everything until the server closes, waiting at most `limit`; the last bytes
/// read (up to 64 KiB), or `None` if it is still open after `limit`.
pub async fn tail_until_closed<R: AsyncRead + Unpin>(
    stream: &mut R,
    limit: Duration,
) -> Option<Vec<u8>> {
    let mut tail: Vec<u8> = Vec::new();
    let read = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    tail.extend_from_slice(&buf[..n]);
                    if tail.len() > 64 * 1024 {
                        tail.drain(..tail.len() - 64 * 1024);
                    }
                }
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    Some(tail)
}
