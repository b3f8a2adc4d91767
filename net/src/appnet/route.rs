//! App-net targets: [`Target::app_net`] and the [`Route`] that calls a Python app-net peer
//! in its own format, one TCP connection per call.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use crate::call::{Route, RouteCall, Routed, Target};
use crate::error::Result;

/// A Python app-net peer, by the target that says where it is.
#[derive(Debug)]
struct AppNetRoute {
    at: Target,
}

impl std::fmt::Display for AppNetRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "app-net peer {}", self.at)
    }
}

impl Route for AppNetRoute {
    fn addr(&self) -> Pin<Box<dyn Future<Output = Result<SocketAddr>> + Send + '_>> {
        Box::pin(self.at.addr())
    }

    fn call<'a>(&'a self, call: RouteCall<'a>) -> Routed<'a> {
        Box::pin(async move {
            let addr = self.at.addr().await?;
            let label = format!("app-net peer {addr}");
            let max_reply = call.home.config().max_frame;
            // app-net takes no attachments: binary values go as base64 in the JSON.
            let json = call.args.inline_json();
            let args =
                serde_json::from_slice::<&serde_json::value::RawValue>(&json).map_err(|e| {
                    crate::Error::Encode {
                        tag: call.tag.to_owned(),
                        message: e.to_string(),
                    }
                })?;
            let outcome = super::client::call(
                addr,
                call.tag,
                args,
                call.kwargs,
                call.budget,
                max_reply,
                call.oneway,
            )
            .await?;
            Ok((label, outcome))
        })
    }

    fn protocol(&self) -> &'static str {
        "app-net"
    }
}

impl Target {
    /// A Python app-net 0.6 peer at `target` (`"host:port"`, a socket address, ...): calls
    /// to it are sent in app-net's own JSON format, one TCP connection per call, as app-net
    /// expects (see docs/APPNET.md for what is compatible).
    ///
    /// ```no_run
    /// #[net::connect("app.multiply")] // app-net's tag for `multiply` in module `app`
    /// fn multiply(a: i64, b: i64) -> i64 { a * b }
    ///
    /// # async fn f() -> net::Result<()> {
    /// let python = net::Target::app_net("127.0.0.1:3010");
    /// assert_eq!(multiply(5, 10).on(&python).await?, 50);
    /// # Ok(()) }
    /// ```
    pub fn app_net(target: impl Into<Target>) -> Target {
        Target::routed(Arc::new(AppNetRoute { at: target.into() }))
    }
}
