//! Bad input over real sockets: garbage, oversized and malformed frames, wrong handshakes,
//! silence, oversized calls and replies, and 1,000 calls on one connection. Each time the
//! offending connection alone is refused, while a well-behaved client keeps calling on its
//! own connection and gets every answer right.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::support::loopback;

/// The longest any awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(3);

/// The frame limit of servers under attack, small so that tests stay light.
const SMALL_FRAME: usize = 64 * 1024;

/// Answers the index it is given and who called, so the well-behaved client can check both
/// the answer and that its connection was never replaced.
#[net::connect]
fn echo_from(caller: net::Caller, i: u64) -> (u64, String) {
    let from = caller.addr().map(|a| a.to_string()).unwrap_or_default();
    (i, from)
}

/// A reply of `len` bytes, to overflow a caller's frame limit.
#[net::connect]
fn blob(len: usize) -> String {
    "x".repeat(len)
}

// ---- the well-behaved client ---------------------------------------------------------

/// A server, and a client peer calling it in a loop on its own connection for the whole
/// test; `finish` checks that every call was answered right on that one connection.
struct Fixture {
    server: net::Peer,
    good: net::Peer,
    /// How many calls the good client has had answered; closed when its loop ends.
    answered: watch::Receiver<u64>,
    /// Set to end the good client's loop.
    stop: Arc<AtomicBool>,
    /// The loop; ends with the number of calls made, or what went wrong.
    task: JoinHandle<Result<u64, String>>,
}

impl Fixture {
    async fn start(server_config: net::Config) -> Fixture {
        let server = net::Peer::start(server_config).await.unwrap();
        let good = net::Peer::start(loopback()).await.unwrap();
        let (count, answered) = watch::channel(0);
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(good_client(
            server.addr(),
            good.clone(),
            count,
            stop.clone(),
        ));
        let fixture = Fixture {
            server,
            good,
            answered,
            stop,
            task,
        };
        fixture.carries_on(3).await;
        fixture
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Waits until the good client has had `n` more calls answered.
    async fn carries_on(&self, n: u64) {
        let mut answered = self.answered.clone();
        let target = *answered.borrow() + n;
        let waited = tokio::time::timeout(DEADLINE, answered.wait_for(|&a| a >= target))
            .await
            .map(|got| got.map(|_| ()));
        match waited {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the well-behaved client stopped early"),
            Err(_) => panic!("the well-behaved client made no progress for {DEADLINE:?}"),
        }
    }

    /// Checks the good client once more, stops it, and checks it never saw a wrong answer
    /// or a second connection.
    async fn finish(self) {
        self.carries_on(3).await;
        self.stop.store(true, Ordering::SeqCst);
        let calls = self.task.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
        assert!(calls >= 6, "only {calls} calls");
        assert_eq!(self.good.connection_count(), 1);
        self.good.shutdown().await;
        self.server.shutdown().await;
    }
}

async fn good_client(
    server: SocketAddr,
    me: net::Peer,
    answered: watch::Sender<u64>,
    stop: Arc<AtomicBool>,
) -> Result<u64, String> {
    let mut steady = crate::support::Steady::default();
    let mut i = 0;
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let (got, from) = echo_from(i)
            .on(server)
            .via(&me)
            .timeout(DEADLINE)
            .await
            .map_err(|e| format!("well-behaved call {i} failed: {e}"))?;
        steady.check(i, got, Some(from))?;
        answered.send_replace(i);
    }
    Ok(i)
}

// ---- raw sockets ---------------------------------------------------------------------

/// One frame: 4-byte big-endian length, then the JSON body.
fn frame(message: &Value) -> Vec<u8> {
    frame_bytes(&serde_json::to_vec(message).unwrap())
}

fn frame_bytes(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

fn hello(protocol: u32) -> Value {
    json!({"hello": {"protocol": protocol, "id": null, "group": null, "hub": false,
                     "version": "wire_abuse", "max_frame": 1 << 20}})
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

/// The next frame, or `None` once the other side has closed (end of stream, or a reset
/// when it left unread bytes behind). Fails the test after `DEADLINE`.
async fn read_frame(stream: &mut TcpStream) -> Option<Value> {
    let read = async {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    match tokio::time::timeout(DEADLINE, read).await {
        Err(_) => panic!("the connection was neither closed nor sent a frame within {DEADLINE:?}"),
        Ok(Ok(body)) => Some(serde_json::from_slice(&body).unwrap()),
        Ok(Err(e)) => {
            use std::io::ErrorKind::*;
            assert!(
                matches!(e.kind(), UnexpectedEof | ConnectionReset | BrokenPipe),
                "{e}"
            );
            None
        }
    }
}

/// Every frame until the other side closes.
async fn read_until_closed(stream: &mut TcpStream) -> Vec<Value> {
    let mut frames = Vec::new();
    while let Some(frame) = read_frame(stream).await {
        frames.push(frame);
    }
    frames
}

/// Sends our hello and reads the server's.
async fn handshake(stream: &mut TcpStream) {
    stream.write_all(&frame(&hello(1))).await.unwrap();
    let theirs = read_frame(stream)
        .await
        .expect("closed during the handshake");
    assert_eq!(theirs["hello"]["protocol"], 1, "{theirs}");
}

/// The message of the error frame among `frames`, if one came.
fn error_message(frames: &[Value]) -> Option<String> {
    frames
        .iter()
        .find_map(|f| f["error"]["message"].as_str().map(str::to_owned))
}

/// Deterministic noise (xorshift), so that a failure can be replayed.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

// ---- the tests -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_close_that_connection_only() {
    let fx = Fixture::start(loopback().max_frame(SMALL_FRAME)).await;

    // An HTTP request: "GET " reads as a 1.2 GB length.
    let mut http = connect(fx.addr()).await;
    http.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let frames = read_until_closed(&mut http).await;
    assert!(frames[0].get("hello").is_some(), "{frames:?}");
    if let Some(message) = error_message(&frames) {
        assert!(message.contains("NET_MAX_FRAME"), "{message}");
    }
    fx.carries_on(3).await;

    // Unframed JSON is app-net's format (docs/APPNET.md): a request that is not one gets
    // app-net's error shape, unframed, and the connection closes.
    let mut json = connect(fx.addr()).await;
    json.write_all(br#"{"command":"info","args":[]}"#)
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(DEADLINE, json.read_to_end(&mut answer))
        .await
        .expect("the app-net answer did not end")
        .unwrap();
    let answer: Value = serde_json::from_slice(&answer).expect("an app-net JSON answer");
    assert_eq!(answer["payload"], "error", "{answer}");
    fx.carries_on(3).await;

    // Noise before and after a handshake: more than a frame limit of it, so that whatever
    // length its first bytes spell, the server has a whole frame to refuse.
    for (seed, shake) in [(1, false), (2, true), (3, true)] {
        let mut stream = connect(fx.addr()).await;
        if shake {
            handshake(&mut stream).await;
        }
        // The server may close while we write; only its reading side matters.
        let _ = stream.write_all(&noise(2 * SMALL_FRAME, seed)).await;
        let frames = read_until_closed(&mut stream).await;
        assert!(frames.len() <= 2, "{frames:?}");
        fx.carries_on(3).await;
    }
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_gets_an_error_and_close() {
    let fx = Fixture::start(loopback().max_frame(SMALL_FRAME)).await;

    // A frame of exactly the limit is fine: a pass_through call padded to 64 KiB.
    let mut stream = connect(fx.addr()).await;
    handshake(&mut stream).await;
    let empty = r#"{"call":{"id":1,"tag":"pass_through","args":[""]}}"#;
    let pad = "y".repeat(SMALL_FRAME - empty.len());
    let body = format!(r#"{{"call":{{"id":1,"tag":"pass_through","args":["{pad}"]}}}}"#);
    assert_eq!(body.len(), SMALL_FRAME);
    stream
        .write_all(&frame_bytes(body.as_bytes()))
        .await
        .unwrap();
    let reply = read_frame(&mut stream).await.unwrap();
    assert_eq!(reply["reply"]["outcome"]["ok"], pad.as_str());

    // One byte more is refused: only the length is sent, the server must not wait for
    // the body.
    let over = (SMALL_FRAME as u32 + 1).to_be_bytes();
    stream.write_all(&over).await.unwrap();
    let frames = read_until_closed(&mut stream).await;
    let message = error_message(&frames).expect("no error frame before the close");
    assert!(
        message.contains(&format!("{SMALL_FRAME}-byte limit (NET_MAX_FRAME)")),
        "{message}"
    );
    fx.carries_on(3).await;

    // Before the handshake too.
    let mut stream = connect(fx.addr()).await;
    stream.write_all(&over).await.unwrap();
    let frames = read_until_closed(&mut stream).await;
    let message = error_message(&frames).expect("no error frame before the close");
    assert!(
        message.contains(&format!("{SMALL_FRAME}-byte limit (NET_MAX_FRAME)")),
        "{message}"
    );
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_after_the_handshake_is_named_and_closed() {
    let fx = Fixture::start(loopback().max_frame(SMALL_FRAME)).await;
    for (body, says) in [
        (&b"{not json"[..], "key must be a string"),
        (
            br#"{"launch":{"missiles":true}}"#,
            "unknown variant `launch`",
        ),
        (
            br#"{"call":{"id":-1,"tag":"null","args":[]}}"#,
            "invalid value",
        ),
        (b"", "EOF while parsing"),
    ] {
        let mut stream = connect(fx.addr()).await;
        handshake(&mut stream).await;
        stream.write_all(&frame_bytes(body)).await.unwrap();
        let frames = read_until_closed(&mut stream).await;
        let message = error_message(&frames).expect("no error frame before the close");
        assert!(message.contains("malformed frame"), "{message}");
        assert!(message.contains(says), "{message} should say {says}");
        assert!(message.contains("docs/PROTOCOL.md"), "{message}");
        fx.carries_on(2).await;
    }
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_first_frame_or_protocol_version_is_refused_with_reasons() {
    let fx = Fixture::start(loopback()).await;
    let cases = [
        // Not a hello: a call straight away.
        (
            frame(&json!({"call": {"id": 1, "tag": "null", "args": []}})),
            vec!["the first frame must be a hello"],
        ),
        // Not JSON at all.
        (
            frame_bytes(b"hello?"),
            vec!["the first frame must be a hello", "expected"],
        ),
        // Another protocol version.
        (frame(&hello(99)), vec!["protocol 1", "you speak 99"]),
        // Another version whose hello has other fields: still a version mismatch.
        (
            frame(&json!({"hello": {"protocol": 99, "peer": "x"}})),
            vec!["protocol 1", "you speak 99"],
        ),
    ];
    for (first, says) in cases {
        let mut stream = connect(fx.addr()).await;
        stream.write_all(&first).await.unwrap();
        let frames = read_until_closed(&mut stream).await;
        assert!(
            frames.first().is_some_and(|f| f.get("hello").is_some()),
            "{frames:?}"
        );
        let message = error_message(&frames).expect("no error frame before the close");
        for part in says {
            assert!(message.contains(part), "{message:?} should say {part:?}");
        }
        fx.carries_on(2).await;
    }
    fx.finish().await;
}

/// A fake server answering every connection with `answer` and recording what the client
/// sent until it closed.
async fn fake_server(answer: Value) -> (SocketAddr, JoinHandle<Vec<Value>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(&frame(&answer)).await.unwrap();
        read_until_closed(&mut stream).await
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_refuses_a_server_of_another_version() {
    let me = net::Peer::start(loopback()).await.unwrap();

    let (addr, server) = fake_server(hello(99)).await;
    let err = net::pass_through(json!(1))
        .on(addr)
        .via(&me)
        .timeout(DEADLINE)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            net::Error::Incompatible {
                ours: 1,
                theirs: 99,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("protocol 99") && text.contains("speaks 1"),
        "{text}"
    );
    // The fake server was told too.
    let sent = tokio::time::timeout(DEADLINE, server)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent[0]["hello"]["protocol"], 1, "{sent:?}");
    let told = error_message(&sent).expect("the server was not told why");
    assert!(told.contains("protocol 1") && told.contains("99"), "{told}");

    // A server that refuses with an error frame: its reason reaches the caller.
    let (addr, _server) = fake_server(json!({"error": {"message": "go away"}})).await;
    let err = net::pass_through(json!(1))
        .on(addr)
        .via(&me)
        .timeout(DEADLINE)
        .await
        .unwrap_err();
    assert!(matches!(err, net::Error::Protocol { .. }), "{err:?}");
    assert!(err.to_string().contains("go away"), "{err}");
    me.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arguments_over_the_servers_frame_limit_fail_locally() {
    let fx = Fixture::start(loopback().max_frame(SMALL_FRAME)).await;
    let me = net::Peer::start(loopback()).await.unwrap();
    assert_eq!(
        net::pass_through(json!("small"))
            .on(fx.addr())
            .via(&me)
            .await
            .unwrap(),
        "small"
    );

    let big = "z".repeat(SMALL_FRAME);
    let err = net::pass_through(json!(big))
        .on(fx.addr())
        .via(&me)
        .await
        .unwrap_err();
    match &err {
        net::Error::FrameTooLarge { size, max, .. } => {
            assert!(*size > SMALL_FRAME, "{err}");
            assert_eq!(*max, SMALL_FRAME, "{err}");
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert!(err.to_string().contains("NET_MAX_FRAME"), "{err}");

    // Nothing was sent, so the connection is still good for the next call.
    assert_eq!(
        net::pass_through(json!("after"))
            .on(fx.addr())
            .via(&me)
            .await
            .unwrap(),
        "after"
    );
    assert_eq!(me.connection_count(), 1);
    me.shutdown().await;
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_over_the_callers_frame_limit_is_a_clear_remote_error() {
    let fx = Fixture::start(loopback()).await;
    let me = net::Peer::start(loopback().max_frame(SMALL_FRAME))
        .await
        .unwrap();

    let started = Instant::now();
    let err = blob(2 * SMALL_FRAME)
        .on(fx.addr())
        .via(&me)
        .timeout(DEADLINE)
        .await
        .unwrap_err();
    assert!(started.elapsed() < DEADLINE, "took {:?}", started.elapsed());
    match &err {
        net::Error::Remote { message, .. } => {
            assert!(message.contains("frame limit"), "{err}");
            assert!(message.contains("NET_MAX_FRAME"), "{err}");
            assert!(message.contains(&SMALL_FRAME.to_string()), "{err}");
        }
        other => panic!("expected a remote error, got {other:?}"),
    }

    // The connection survives: a reply under the limit still comes.
    assert_eq!(
        blob(100).on(fx.addr()).via(&me).await.unwrap(),
        "x".repeat(100)
    );
    assert_eq!(me.connection_count(), 1);
    me.shutdown().await;
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_blocks_nobody() {
    let fx = Fixture::start(loopback()).await;

    // Connections that never say hello. The server's hello comes at once all the same.
    let mut silent = Vec::new();
    for _ in 0..3 {
        let mut stream = connect(fx.addr()).await;
        let theirs = read_frame(&mut stream).await.expect("closed at once");
        assert_eq!(theirs["hello"]["protocol"], 1);
        silent.push(stream);
    }

    // Meanwhile the well-behaved client is served, and so is a newcomer.
    fx.carries_on(5).await;
    let newcomer = net::Peer::start(loopback()).await.unwrap();
    assert_eq!(
        net::pass_through(json!([1, 2]))
            .on(fx.addr())
            .via(&newcomer)
            .timeout(DEADLINE)
            .await
            .unwrap(),
        json!([1, 2])
    );
    newcomer.shutdown().await;
    fx.carries_on(3).await;
    drop(silent);
    fx.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_share_one_connection() {
    let server = net::Peer::start(loopback()).await.unwrap();
    let me = net::Peer::start(loopback()).await.unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..1000u64 {
        let call = echo_from(i)
            .on(server.addr())
            .via(&me)
            .timeout(DEADLINE * 2);
        calls.spawn(async move { (i, call.await) });
    }
    let mut seen = vec![false; 1000];
    let mut from = None;
    while let Some(joined) = calls.join_next().await {
        let (i, result) = joined.unwrap();
        let (got, caller) = result.unwrap_or_else(|e| panic!("call {i}: {e}"));
        assert_eq!(got, i, "call {i} got another call's answer");
        seen[i as usize] = true;
        // One connection: the server saw every call come from the same socket.
        assert_eq!(from.get_or_insert_with(|| caller.clone()), &caller);
    }
    assert!(seen.iter().all(|s| *s));
    assert_eq!(me.connection_count(), 1);
    assert_eq!(server.connection_count(), 1);
    me.shutdown().await;
    server.shutdown().await;
}

static SAW_CANCEL: AtomicBool = AtomicBool::new(false);

/// Works until its caller gives up (at most 5 s), and says whether it saw that.
#[net::connect("wire_abuse.until_cancelled")]
fn until_cancelled(caller: net::Caller) -> bool {
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < until {
        if caller.is_cancelled() {
            SAW_CANCEL.store(true, Ordering::SeqCst);
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// A client that never sends a cancel (one written from docs/PROTOCOL.md, say) still gets
/// a synchronous call stopped when its `timeout_ms` runs out, and no reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_call_past_its_budget_is_cancelled_without_a_cancel_frame() {
    let peer = net::Peer::start(loopback()).await.unwrap();
    let mut stream = connect(peer.addr()).await;
    stream.write_all(&frame(&hello(1))).await.unwrap();
    read_frame(&mut stream).await.expect("the server's hello");

    let call = json!({"call": {"id": 1, "tag": "wire_abuse.until_cancelled",
        "args": [], "timeout_ms": 100}});
    let started = Instant::now();
    stream.write_all(&frame(&call)).await.unwrap();
    while !SAW_CANCEL.load(Ordering::SeqCst) {
        assert!(
            started.elapsed() < DEADLINE,
            "the handler never saw its budget run out"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(100));
    // No reply for a call past its budget: the next frame is the goodbye at shutdown.
    let stop = {
        let peer = peer.clone();
        tokio::spawn(async move { peer.shutdown().await })
    };
    assert_eq!(read_frame(&mut stream).await, Some(json!("goodbye")));
    stop.await.unwrap();
}
