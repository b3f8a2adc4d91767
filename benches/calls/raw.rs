//! The baseline: a plain tokio length-prefixed TCP echo, framed by the same codec `net`
//! uses, so that the comparison isolates what `net` adds.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::measure::rate;
use crate::{Plan, IN_FLIGHT, PAYLOAD};

/// Frames up to 32 MiB, so the 10 MB transfer fits (as `net`'s NET_MAX_FRAME there).
fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(32 << 20)
        .new_codec()
}

/// The echo server: returns each frame as it came, one flush per burst of frames read
/// together (as `net`'s reader does), on a task per connection.
pub async fn spawn_echo_server() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let (read, write) = stream.into_split();
                let mut frames = FramedRead::new(read, codec());
                let mut sink = FramedWrite::new(write, codec());
                while let Some(Ok(frame)) = frames.next().await {
                    if sink.feed(frame.freeze()).await.is_err() {
                        return;
                    }
                    // Echo whatever else has already arrived before flushing.
                    while let Some(Some(Ok(more))) =
                        futures_util::FutureExt::now_or_never(frames.next())
                    {
                        if sink.feed(more.freeze()).await.is_err() {
                            return;
                        }
                    }
                    if SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

type Reader = FramedRead<tokio::net::tcp::OwnedReadHalf, LengthDelimitedCodec>;
type Writer = FramedWrite<tokio::net::tcp::OwnedWriteHalf, LengthDelimitedCodec>;

async fn echo_client(addr: SocketAddr) -> (Reader, Writer) {
    let stream = TcpStream::connect(addr)
        .await
        .expect("connecting to the echo server");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let (read, write) = stream.into_split();
    (
        FramedRead::new(read, codec()),
        FramedWrite::new(write, codec()),
    )
}

/// Sequential round trips of a frame of `size` bytes; `rounds` measured after `warmup`.
pub async fn round_trips(
    addr: SocketAddr,
    size: usize,
    warmup: usize,
    rounds: usize,
) -> Vec<Duration> {
    let (mut frames, mut sink) = echo_client(addr).await;
    let payload = Bytes::from(vec![b'x'; size]);
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..warmup + rounds {
        let start = Instant::now();
        sink.send(payload.clone()).await.expect("echo send");
        let back = frames
            .next()
            .await
            .expect("echo reply")
            .expect("echo frame");
        assert_eq!(back.len(), size);
        if i >= warmup {
            samples.push(start.elapsed());
        }
    }
    samples
}

/// `conns` connections, each with a window of 64 frames in flight: the writer sends while
/// the window has room (flushing before it waits), the reader frees a slot per echo.
pub async fn throughput(addr: SocketAddr, conns: usize, plan: Plan) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..conns {
        let (mut frames, mut sink) = echo_client(addr).await;
        let window = Arc::new(Semaphore::new(IN_FLIGHT));
        let sent = Arc::new(AtomicU64::new(0));
        let (done, stop) = (done.clone(), stop.clone());
        workers.push(async move {
            let writer = {
                let (window, stop, sent) = (window.clone(), stop.clone(), sent.clone());
                tokio::spawn(async move {
                    let payload = Bytes::from(vec![b'x'; PAYLOAD]);
                    while !stop.load(Ordering::Relaxed) {
                        let permit = match window.try_acquire() {
                            Ok(permit) => permit,
                            Err(_) => {
                                SinkExt::<Bytes>::flush(&mut sink)
                                    .await
                                    .expect("echo flush");
                                window.acquire().await.expect("window")
                            }
                        };
                        permit.forget();
                        sink.feed(payload.clone()).await.expect("echo send");
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    SinkExt::<Bytes>::flush(&mut sink)
                        .await
                        .expect("echo flush");
                    sink
                })
            };
            let mut received = 0u64;
            loop {
                if stop.load(Ordering::Relaxed) && received == sent.load(Ordering::Relaxed) {
                    break;
                }
                let next = tokio::time::timeout(Duration::from_millis(100), frames.next()).await;
                let Ok(next) = next else { continue };
                let back = next.expect("echo reply").expect("echo frame");
                assert_eq!(back.len(), PAYLOAD);
                received += 1;
                done.fetch_add(1, Ordering::Relaxed);
                window.add_permits(1);
            }
            let _sink = writer.await.expect("echo writer");
        });
    }
    rate(plan, workers, done, stop).await
}
