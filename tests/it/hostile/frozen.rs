//! A callee frozen with SIGSTOP: the kernel still completes new connections to it, but
//! nothing answers. A new caller's budget covers the connect and the hello as well as the
//! call, and its error says which step ran out.

use std::time::{Duration, Instant};

use super::{echo, Fixture};
use crate::support::loopback;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_callee_costs_a_new_caller_its_budget_and_says_where() {
    let fx = Fixture::start(&[]).await;
    let caller = net::Peer::start(loopback()).await.unwrap();
    let budget = Duration::from_millis(600);
    fx.server.signal("STOP");
    let started = Instant::now();
    let err = echo(1)
        .on(fx.addr())
        .via(&caller)
        .timeout(budget)
        .await
        .expect_err("a frozen callee answered");
    let took = started.elapsed();
    // Thawed before anything is asserted, so that a failure leaves the good client able
    // to finish (and the child to be killed on drop).
    fx.server.signal("CONT");
    assert!(
        took < budget + Duration::from_millis(400),
        "the call took {took:?} on a budget of {budget:?}"
    );
    match &err {
        net::Error::Timeout { after, step, .. } => {
            assert_eq!(*after, budget, "{err}");
            assert_eq!(*step, net::TimeoutStep::Handshake, "{err}");
            assert!(err.to_string().contains("handshake"), "{err}");
        }
        other => panic!("expected a Timeout naming the handshake, got {other:?}"),
    }
    // Thawed, the callee answers the next call, and the well-behaved client lost nothing.
    let (got, _) = echo(2)
        .on(fx.addr())
        .via(&caller)
        .timeout(Duration::from_secs(3))
        .await
        .expect("the thawed callee does not answer");
    assert_eq!(got, 2);
    caller.shutdown().await;
    fx.finish().await;
}
