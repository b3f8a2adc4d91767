//! Binary payloads (`net::Bytes`) over real sockets: megabytes as attachments beside the
//! frame's JSON between our peers, base64 in the JSON for a client that takes no
//! attachments, and a malformed attachment frame refused without harm to anyone else.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::loopback;

/// Returns what it was given, each byte turned over, so the answer is no copy of the call.
#[net::connect("binary.flip")]
fn flip(data: net::Bytes) -> net::Bytes {
    net::Bytes::from(data.iter().map(|b| !b).collect::<Vec<u8>>())
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Sample {
    name: String,
    blobs: Vec<net::Bytes>,
}

/// Several binary values in one argument, beside strings, some of which look like markers.
#[net::connect("binary.sizes")]
async fn sizes(sample: Sample, note: String) -> Result<(String, Vec<usize>), String> {
    if sample.name.is_empty() {
        return Err("no name".into());
    }
    Ok((
        format!("{}/{note}", sample.name),
        sample.blobs.iter().map(|b| b.len()).collect(),
    ))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_megabytes_cross_both_ways_as_attachments() {
    let config = || loopback().max_frame(32 << 20);
    let server = net::Peer::start(config()).await.unwrap();
    let client = net::Peer::start(config()).await.unwrap();
    let data = pattern(10 << 20);
    let back = flip(net::Bytes::from(data.clone()))
        .on(&server)
        .via(&client)
        .timeout(Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(back.len(), data.len());
    assert!(
        back.iter().zip(&data).all(|(b, d)| *b == !d),
        "bytes changed on the way"
    );

    let sample = Sample {
        name: "\u{0}0 is not an attachment".into(),
        blobs: vec![
            net::Bytes::from(pattern(3)),
            net::Bytes::default(),
            net::Bytes::from(pattern(70_000)),
        ],
    };
    let (named, lens) = sizes(sample.clone(), "\u{0}1".into())
        .on(&server)
        .via(&client)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(named, "\u{0}0 is not an attachment/\u{0}1");
    assert_eq!(lens, [3, 0, 70_000]);
    // Locally, through the same encoding.
    assert_eq!(
        sizes(sample, "x".into()).local().await.unwrap().unwrap().1,
        [3, 0, 70_000]
    );
    client.shutdown().await;
    server.shutdown().await;
}

/// One frame: 4-byte big-endian length, then the body.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
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
        .expect("no frame within 5 s")
        .ok()
}

/// A client that says nothing of attachments in its hello, as one written from
/// docs/PROTOCOL.md before they existed.
async fn plain_client(server: &net::Peer) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr()).await.unwrap();
    let hello = json!({"hello": {"protocol": 1, "id": null, "group": null, "hub": false,
        "version": "binary-test", "max_frame": 1 << 20}});
    stream
        .write_all(&frame(&serde_json::to_vec(&hello).unwrap()))
        .await
        .unwrap();
    let theirs: Value = serde_json::from_slice(&read_frame(&mut stream).await.unwrap()).unwrap();
    assert_eq!(theirs["hello"]["attachments"], true);
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_attachments_speaks_base64() {
    let server = net::Peer::start(loopback()).await.unwrap();
    let mut stream = plain_client(&server).await;
    let call = json!({"call": {"id": 1, "tag": "binary.flip", "args": ["AAEC/w=="],
        "timeout_ms": 5000}});
    stream
        .write_all(&frame(&serde_json::to_vec(&call).unwrap()))
        .await
        .unwrap();
    let reply = read_frame(&mut stream).await.unwrap();
    assert_ne!(
        reply[0], 0,
        "a frame with attachments to a client that takes none"
    );
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    // [0, 1, 2, 255] turned over is [255, 254, 253, 0].
    assert_eq!(reply["reply"]["outcome"]["ok"], "//79AA==");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_attachment_frame_closes_only_its_connection() {
    let server = net::Peer::start(loopback()).await.unwrap();
    let good = net::Peer::start(loopback()).await.unwrap();
    let data = net::Bytes::from(pattern(1000));
    let flipped = flip(data.clone()).on(&server).via(&good).await.unwrap();
    assert_eq!(flipped.len(), 1000);

    let mut stream = plain_client(&server).await;
    // Says its JSON is 1,000 bytes long; the frame holds 10.
    let mut body = vec![0u8];
    body.extend_from_slice(&1000u32.to_be_bytes());
    body.extend_from_slice(b"{\"x\":1}xyz");
    stream.write_all(&frame(&body)).await.unwrap();
    let error: Value = serde_json::from_slice(&read_frame(&mut stream).await.unwrap()).unwrap();
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("attachments"), "{error}");
    assert!(read_frame(&mut stream).await.is_none(), "still open");

    // The other peer's connection carries on, and a marker pointing past a frame's
    // attachments is that call's error, not the connection's.
    assert_eq!(flip(data).on(&server).via(&good).await.unwrap(), flipped);
    let mut stream = plain_client(&server).await;
    let call = json!({"call": {"id": 2, "tag": "binary.flip", "args": ["\u{0}5"],
        "timeout_ms": 5000}});
    stream
        .write_all(&frame(&serde_json::to_vec(&call).unwrap()))
        .await
        .unwrap();
    let reply: Value = serde_json::from_slice(&read_frame(&mut stream).await.unwrap()).unwrap();
    let refused = reply["reply"]["outcome"]["bad_args"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(refused.contains("outside a frame"), "{reply}");
    good.shutdown().await;
    server.shutdown().await;
}
