//! NET_SECRET over real sockets: peers that share a secret call, publish and find each
//! other; a peer without it, or with another, gets a clear error and learns nothing: no
//! call, no `info`, no subscription, no event, through our protocol or app-net's.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{free_range, loopback};

#[net::connect("secure.greet")]
fn greet(name: String) -> String {
    format!("hello {name}")
}

#[net::event("secure.news")]
fn news(text: &str) -> String {
    text.to_owned()
}

fn secured(secret: &str) -> net::Config {
    loopback().secret(net::Secret::new(secret))
}

fn kind(err: &net::Error) -> Option<net::SecureFailure> {
    match err {
        net::Error::Secure { kind, .. } => Some(*kind),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_call_each_other_and_everyone_else_gets_a_clear_error() {
    let secret = "a mesh secret of some length, for tests";
    let server = net::Peer::start(secured(secret)).await.unwrap();
    let member = net::Peer::start(secured(secret)).await.unwrap();
    let outsider = net::Peer::start(loopback()).await.unwrap();
    let stranger = net::Peer::start(secured("another secret altogether"))
        .await
        .unwrap();
    assert!(server.is_secured() && !outsider.is_secured());

    let hello = greet("member".into())
        .on(&server)
        .via(&member)
        .await
        .unwrap();
    assert_eq!(hello, "hello member");
    let info = net::info().on(&server).via(&member).await.unwrap();
    assert_eq!(info.port, server.addr().port());

    // No secret: refused, and told why.
    let err = greet("outsider".into())
        .on(&server)
        .via(&outsider)
        .await
        .unwrap_err();
    assert_eq!(
        kind(&err),
        Some(net::SecureFailure::SecretRequired),
        "{err}"
    );
    assert!(
        err.to_string().contains("requires a shared secret"),
        "{err}"
    );
    let err = net::info().on(&server).via(&outsider).await.unwrap_err();
    assert_eq!(
        kind(&err),
        Some(net::SecureFailure::SecretRequired),
        "{err}"
    );
    let err = outsider.subscribe_to(&server).await.unwrap_err();
    assert_eq!(
        kind(&err),
        Some(net::SecureFailure::SecretRequired),
        "{err}"
    );
    let err = outsider.watch("secure.news", &server).await.unwrap_err();
    assert_eq!(
        kind(&err),
        Some(net::SecureFailure::SecretRequired),
        "{err}"
    );

    // Another secret: both sides hear that the secrets differ.
    let err = greet("stranger".into())
        .on(&server)
        .via(&stranger)
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(net::SecureFailure::SecretsDiffer), "{err}");
    assert!(err.to_string().contains("the secrets differ"), "{err}");

    // A member calling a peer that has no secret.
    let err = greet("x".into())
        .on(&outsider)
        .via(&member)
        .await
        .unwrap_err();
    assert_eq!(kind(&err), Some(net::SecureFailure::NoSecret), "{err}");

    // Events reach members only.
    let mut heard = member.watch("secure.news", &server).await.unwrap();
    let report = news("for members").via(&server).await.unwrap();
    assert!(report.all_delivered(), "{report:?}");
    let got = tokio::time::timeout(Duration::from_secs(5), heard.recv())
        .await
        .unwrap();
    assert_eq!(got, Some(json!(["for members"])));
    assert_eq!(server.subscribers("secure.news").len(), 1);

    for peer in [member, outsider, stranger, server] {
        peer.shutdown().await;
    }
}

async fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let read = async {
        let len = stream.read_u32().await?;
        let mut body = vec![0u8; len as usize];
        stream.read_exact(&mut body).await?;
        Ok::<_, std::io::Error>(body)
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("no answer within 5 s")
        .ok()
}

/// Everything a connection without the secret can get back: one refusal, naming nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outsider_learns_nothing_but_that_a_secret_is_needed() {
    let server = net::Peer::start(secured("s3cret s3cret s3cret s3cret"))
        .await
        .unwrap();
    let id = server.id().to_string();

    // Our protocol: a plain hello.
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let hello = json!({"hello": {"protocol": 1, "id": null, "group": null, "hub": false,
        "version": "outsider", "max_frame": 1 << 20}});
    let body = serde_json::to_vec(&hello).unwrap();
    stream.write_u32(body.len() as u32).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let answer = read_frame(&mut stream).await.expect("a refusal");
    let text = String::from_utf8_lossy(&answer);
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["error"]["code"], "secret_required", "{answer}");
    for leak in [id.as_str(), net::VERSION, "greet", "info"] {
        assert!(!text.contains(leak), "the refusal names {leak:?}: {text}");
    }
    assert!(
        read_frame(&mut stream).await.is_none(),
        "more than one frame"
    );

    // App-net's JSON: refused too, unless NET_APPNET=allow.
    let ask = |addr| async move {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request = br#"{"connection": "net.defaults.handlers.info", "args": [], "kwargs": {}}"#;
        stream.write_all(request).await.unwrap();
        let mut reply = Vec::new();
        let read = stream.read_to_end(&mut reply);
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&reply).into_owned()
    };
    let reply = ask(server.addr()).await;
    assert!(reply.contains("requires a shared secret"), "{reply}");
    assert!(!reply.contains(&id), "{reply}");
    let open =
        net::Peer::start(secured("s3cret s3cret s3cret s3cret").app_net(net::AppNetAccess::Allow))
            .await
            .unwrap();
    let reply = ask(open.addr()).await;
    let port = format!("\"port\":{}", open.addr().port());
    assert!(
        reply.contains(&port),
        "NET_APPNET=allow serves app-net's info: {reply}"
    );
    open.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_members_and_reports_peers_behind_another_secret() {
    let base = free_range(3);
    // All three bind in, and scan, the same three ports.
    let in_range = |config: net::Config| {
        config
            .port(base)
            .port_range(2)
            .probe_timeout(Duration::from_secs(2))
    };
    let secret = "the discovery mesh secret";
    let a = net::Peer::start(in_range(secured(secret))).await.unwrap();
    let b = net::Peer::start(in_range(secured(secret))).await.unwrap();
    let plain = net::Peer::start(in_range(loopback())).await.unwrap();
    assert_eq!(b.addr().port(), base + 1);
    assert_eq!(plain.addr().port(), base + 2);

    let found = a.peers().refresh().await.unwrap();
    let addrs: Vec<_> = found.iter().map(|p| p.addr.port()).collect();
    assert!(addrs.contains(&(base + 1)), "{addrs:?}");
    assert!(
        !addrs.contains(&(base + 2)),
        "a peer without the secret listed: {addrs:?}"
    );
    let report = plain.peers().refresh().report().await.unwrap().to_string();
    assert!(report.contains("behind another secret"), "{report}");
    for peer in [a, b, plain] {
        peer.shutdown().await;
    }
}
