//! The link over an in-memory transport: calls both ways, cancels, budgets and the end of a
//! link, without sockets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::testing::memory_links;
use super::{Flush, Inbound, Link};
use crate::error::Error;
use crate::wire::{CallIn, Payload, WireOutcome};

/// Answers every call with its arguments, except tag `hang`, which it keeps (and
/// watches for its cancel).
#[derive(Default)]
struct Echo {
    hanging: Mutex<Vec<CancellationToken>>,
    goodbyes: AtomicUsize,
}

impl Inbound for Echo {
    fn call(&self, link: &Arc<Link>, call: CallIn<'_>, _frame: &Bytes, _: Vec<Bytes>) {
        let Ok(cancel) = link.begin(call.id, None, 0) else {
            return;
        };
        if call.tag == "hang" {
            self.hanging.lock().unwrap().push(cancel);
            return;
        }
        if link.finish(call.id) {
            let outcome = WireOutcome::Ok(crate::wire::Payload::json(call.args.get().to_owned()));
            link.reply(call.id, outcome, String::new, Flush::Task);
        }
    }

    fn goodbye(&self, _link: &Link) {
        self.goodbyes.fetch_add(1, Ordering::SeqCst);
    }
}

fn args(text: &str) -> Payload {
    Payload::json(text.to_owned())
}

#[tokio::test]
async fn many_calls_in_flight_both_ways_get_their_own_replies() {
    let (a, b) = memory_links(Arc::<Echo>::default(), Arc::<Echo>::default(), 1 << 20).await;
    let mut calls = Vec::new();
    for n in 0..200 {
        let (from, _) = if n % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let link = from.clone();
        calls.push(tokio::spawn(async move {
            let sent = format!("[{n}]");
            let reply = link
                .call("echo", &args(&sent), None, Duration::from_secs(5), false)
                .await;
            (sent, reply)
        }));
    }
    for call in calls {
        let (sent, reply) = call.await.unwrap();
        match reply {
            Ok(Some(WireOutcome::Ok(raw))) => assert_eq!(raw.text(), sent),
            other => panic!("{sent}: {other:?}"),
        }
    }
    assert_eq!(a.remote_addr().port(), 2);
}

#[tokio::test]
async fn a_call_past_its_timeout_is_cancelled_on_the_other_side() {
    let callee = Arc::new(Echo::default());
    let (caller, _) = memory_links(Arc::<Echo>::default(), callee.clone(), 1 << 20).await;
    let err = caller
        .call("hang", &args("[]"), None, Duration::from_millis(50), false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    let token = loop {
        if let Some(token) = callee.hanging.lock().unwrap().first().cloned() {
            break token;
        }
        tokio::task::yield_now().await;
    };
    // The cancel frame follows the timeout.
    tokio::time::timeout(Duration::from_secs(5), token.cancelled())
        .await
        .expect("the callee never saw the cancel");
}

#[tokio::test]
async fn closing_fails_waiting_calls_and_the_other_side_hears_goodbye() {
    let callee = Arc::new(Echo::default());
    let (caller, other) = memory_links(Arc::<Echo>::default(), callee.clone(), 1 << 20).await;
    let waiting = {
        let caller = caller.clone();
        tokio::spawn(async move {
            caller
                .call("hang", &args("[]"), None, Duration::from_secs(10), false)
                .await
        })
    };
    while callee.hanging.lock().unwrap().is_empty() {
        tokio::task::yield_now().await;
    }
    caller.close("the test is over");
    let err = waiting.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, Error::ConnectionClosed { reason, .. } if reason == "the test is over"),
        "{err}"
    );
    tokio::time::timeout(Duration::from_secs(5), other.closed())
        .await
        .expect("the other side stayed open");
    assert_eq!(callee.goodbyes.load(Ordering::SeqCst), 1);
    // Its running call was stopped with the link.
    assert!(callee.hanging.lock().unwrap()[0].is_cancelled());
    tokio::time::timeout(Duration::from_secs(5), other.drained())
        .await
        .expect("a closed link still counts calls in flight");
}

#[tokio::test]
async fn a_call_over_the_other_sides_frame_limit_is_refused_before_sending() {
    let (caller, _) = memory_links(Arc::<Echo>::default(), Arc::<Echo>::default(), 4096).await;
    let big = format!("[\"{}\"]", "x".repeat(8192));
    let err = caller
        .call("echo", &args(&big), None, Duration::from_secs(5), false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::FrameTooLarge { max: 4096, .. }),
        "{err}"
    );
    // The link is still good for calls that fit.
    let reply = caller
        .call("echo", &args("[1]"), None, Duration::from_secs(5), false)
        .await
        .unwrap();
    assert!(matches!(reply, Some(WireOutcome::Ok(raw)) if raw.text() == "[1]"));
}
