//! The value an `#[net::event]` function returns ([`Publish`]) and what publishing it
//! reports ([`DeliveryReport`]): delivered, failed or pruned, per subscriber.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::peer::{self, Peer};

/// One publication of an event, not yet sent: an `#[net::event]` function returns one
/// after its body has shaped the payload.
///
/// - `.await` sends it and waits for every subscriber's outcome ([`DeliveryReport`]);
/// - `.wait()` does the same from synchronous code;
/// - `.spawn()` sends it and returns at once, with a [`Delivering`] to await for the
///   report later or to drop; failures are logged either way.
///
/// It is sent from the process-wide peer unless `.via(&peer)` names another local peer.
/// A subscriber's failure never becomes an `Err` here: it is a line of the report (and
/// of the log). `Err` means the publication could not start at all: the payload did not
/// encode, or no local peer could start.
///
/// ```
/// #[net::event("greeting")]
/// fn greeting(name: &str) -> String {
///     format!("hello {name}")
/// }
///
/// # #[tokio::main] async fn main() -> net::Result<()> {
/// let peer = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
/// let report = greeting("you").via(&peer).await?;
/// assert!(report.deliveries.is_empty()); // nobody has subscribed yet
/// # Ok(()) }
/// ```
#[must_use = "an event is published only when awaited, waited on or spawned"]
pub struct Publish {
    /// The event's name, what subscribers registered for.
    event: Arc<str>,
    /// The subscriber's arguments as a JSON array, or why they could not be encoded.
    payload: Result<Arc<str>>,
    /// The publishing peer; the process-wide one when `None`.
    via: Option<Peer>,
}

impl Publish {
    /// A publication of `event` with `args`, the subscriber's arguments as a tuple (`()`
    /// for none, `(x,)` for one). `#[net::event]` functions build theirs with this.
    ///
    /// ```
    /// # #[tokio::main] async fn main() -> net::Result<()> {
    /// # let peer = net::Peer::start(net::Config::default().loopback(true).port(0)).await?;
    /// let report = net::Publish::new("line", ("some text",)).via(&peer).await?;
    /// # Ok(()) }
    /// ```
    pub fn new(event: impl Into<String>, args: impl Serialize) -> Publish {
        Publish::encoded(event.into(), encode_args(&args))
    }

    /// A publication of an already encoded payload; an encoding error names the event.
    pub(crate) fn encoded(event: impl Into<Arc<str>>, payload: Result<Arc<str>>) -> Publish {
        let event = event.into();
        let payload = payload.map_err(|e| match e {
            Error::Encode { message, .. } => Error::Encode {
                tag: format!("event {event:?}"),
                message,
            },
            other => other,
        });
        Publish {
            event,
            payload,
            via: None,
        }
    }

    /// Publishes from `peer` (its subscribers) instead of the process-wide peer's.
    pub fn via(mut self, peer: &Peer) -> Self {
        self.via = Some(peer.clone());
        self
    }

    /// The event's name.
    pub fn event(&self) -> &str {
        &self.event
    }

    /// The peer that publishes: the one given, else the process-wide one.
    fn home(&self) -> Result<Peer> {
        match &self.via {
            Some(peer) => Ok(peer.clone()),
            None => peer::local_peer(),
        }
    }

    /// Queues the event for every current subscriber, now, so that events published one
    /// after the other reach each subscriber in that order whichever way they are sent.
    fn enqueue(self) -> Result<Delivering> {
        let home = self.home()?;
        if home.is_shut_down() {
            return Err(Error::Shutdown);
        }
        let payload = self.payload?;
        let (tx, rx) = mpsc::unbounded_channel();
        let expected = home
            .events()
            .table
            .enqueue(&home, &self.event, payload, Some(tx));
        if expected.is_empty() {
            tracing::debug!(event = %self.event, "published to no subscriber");
        }
        Ok(Delivering {
            event: self.event,
            expected,
            outcomes: rx,
            home,
        })
    }

    /// Sends the event and returns as soon as it is queued for every subscriber; the
    /// deliveries go on in the background and failures are logged. The returned
    /// [`Delivering`] can be awaited for the report later, or dropped. `Err` only when
    /// nothing could be queued (see [`Publish`]).
    ///
    /// Events queued one after the other reach each subscriber in that order, so
    /// `spawn` is also how to send many and collect their reports afterwards.
    pub fn spawn(self) -> Result<Delivering> {
        self.enqueue()
    }

    /// Sends the event and blocks this thread until every subscriber's outcome is known:
    /// for synchronous code. Inside async code use `.await`; on a current-thread runtime
    /// `wait` would block the thread the deliveries need, and returns [`Error::Usage`].
    pub fn wait(self) -> Result<DeliveryReport> {
        crate::call::refuse_current_thread()?;
        self.enqueue()?.wait()
    }
}

impl IntoFuture for Publish {
    type Output = Result<DeliveryReport>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<DeliveryReport>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { Ok(self.enqueue()?.report().await) })
    }
}

impl fmt::Debug for Publish {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publish")
            .field("event", &self.event)
            .field(
                "payload",
                &self.payload.as_deref().map_err(|e| e.to_string()),
            )
            .finish()
    }
}

/// Encodes the subscriber's arguments; they must form a JSON array, and `()` (JSON null)
/// is the empty one.
pub(crate) fn encode_args<T: Serialize + ?Sized>(args: &T) -> Result<Arc<str>> {
    let encode_error = |message: String| Error::Encode {
        tag: "an event".into(),
        message,
    };
    let json = serde_json::to_string(args).map_err(|e| encode_error(e.to_string()))?;
    match json.as_bytes().first() {
        Some(b'[') => Ok(json.into()),
        _ if json == "null" => Ok("[]".into()),
        _ => Err(encode_error(format!(
            "the subscriber's arguments must be a tuple, got {json}; wrap one value as (value,)"
        ))),
    }
}

/// An event queued for its subscribers, returned by [`Publish::spawn`]: `.await` it (or
/// `.wait()`) for the [`DeliveryReport`], or drop it and let the deliveries finish alone.
pub struct Delivering {
    /// The event's name, for the report.
    event: Arc<str>,
    /// Who it was queued for, so that an outcome that never comes (the peer shut down
    /// with the delivery still queued) is reported rather than silently missing.
    expected: Vec<(SocketAddr, Arc<str>)>,
    /// One message per finished delivery; ends when every delivery has finished or been
    /// dropped.
    outcomes: mpsc::UnboundedReceiver<Delivery>,
    /// The publishing peer, whose runtime `wait` blocks on.
    home: Peer,
}

impl Delivering {
    /// How many deliveries it was queued for (subscribers times their handlers).
    pub fn len(&self) -> usize {
        self.expected.len()
    }

    /// True when the event had no subscriber.
    pub fn is_empty(&self) -> bool {
        self.expected.is_empty()
    }

    /// Blocks this thread until the report is complete (see [`Publish::wait`]).
    pub fn wait(self) -> Result<DeliveryReport> {
        let home = self.home.clone();
        crate::call::block_on(move || Ok(home), self.report())
    }

    async fn report(mut self) -> DeliveryReport {
        let mut deliveries = Vec::with_capacity(self.expected.len());
        while let Some(delivery) = self.outcomes.recv().await {
            deliveries.push(delivery);
        }
        for (subscriber, tag) in &self.expected {
            let reported = deliveries
                .iter()
                .any(|d| d.subscriber == *subscriber && *d.tag == **tag);
            if !reported {
                deliveries.push(Delivery {
                    subscriber: *subscriber,
                    tag: tag.to_string(),
                    status: DeliveryStatus::Failed(
                        "the publishing peer shut down before the delivery".into(),
                    ),
                });
            }
        }
        DeliveryReport {
            event: self.event.to_string(),
            deliveries,
        }
    }
}

impl IntoFuture for Delivering {
    type Output = DeliveryReport;
    type IntoFuture = Pin<Box<dyn Future<Output = DeliveryReport> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.report())
    }
}

impl fmt::Debug for Delivering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivering")
            .field("event", &self.event)
            .field("deliveries", &self.expected.len())
            .finish()
    }
}

/// How one publication went: one [`Delivery`] per subscriber that was registered when it
/// was published.
///
/// ```
/// # fn show(report: net::DeliveryReport) {
/// println!("{report}"); // event "line": 9 delivered, 1 pruned (127.0.0.1:4012 ...: ...)
/// for gone in report.pruned() {
///     eprintln!("{} left", gone.subscriber);
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DeliveryReport {
    /// The event published.
    pub event: String,
    /// One entry per subscriber and handler, in the order they finished.
    pub deliveries: Vec<Delivery>,
}

impl DeliveryReport {
    /// The subscribers whose handler ran and returned normally.
    pub fn delivered(&self) -> impl Iterator<Item = &Delivery> {
        self.with(|s| matches!(s, DeliveryStatus::Delivered))
    }

    /// The subscribers whose handler failed, timed out or could not take the payload.
    pub fn failed(&self) -> impl Iterator<Item = &Delivery> {
        self.with(|s| matches!(s, DeliveryStatus::Failed(_)))
    }

    /// The subscribers found gone and removed from the subscriber list.
    pub fn pruned(&self) -> impl Iterator<Item = &Delivery> {
        self.with(|s| matches!(s, DeliveryStatus::Pruned(_)))
    }

    /// True when every subscriber got it (also when there was none).
    pub fn all_delivered(&self) -> bool {
        self.delivered().count() == self.deliveries.len()
    }

    fn with(&self, keep: impl Fn(&DeliveryStatus) -> bool) -> impl Iterator<Item = &Delivery> {
        self.deliveries.iter().filter(move |d| keep(&d.status))
    }
}

impl fmt::Display for DeliveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event {:?}: {} delivered",
            self.event,
            self.delivered().count()
        )?;
        for (word, list) in [
            ("failed", self.failed().collect::<Vec<_>>()),
            ("pruned", self.pruned().collect()),
        ] {
            if list.is_empty() {
                continue;
            }
            write!(f, ", {} {word} (", list.len())?;
            for (i, delivery) in list.iter().enumerate() {
                if i > 0 {
                    f.write_str("; ")?;
                }
                write!(f, "{}", delivery)?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// One subscriber's outcome.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Delivery {
    /// The subscribing peer's address.
    pub subscriber: SocketAddr,
    /// The tag of its handler.
    pub tag: String,
    /// What happened.
    pub status: DeliveryStatus,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.status {
            DeliveryStatus::Delivered => write!(f, "{} {}: delivered", self.subscriber, self.tag),
            DeliveryStatus::Failed(why) | DeliveryStatus::Pruned(why) => {
                write!(f, "{} {}: {why}", self.subscriber, self.tag)
            }
        }
    }
}

/// What happened to one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// The handler ran and returned normally (an `Ok` for handlers returning `Result`).
    Delivered,
    /// The handler panicked, returned `Err`, could not take the payload or timed out, or
    /// the subscriber was too far behind; it stays subscribed.
    Failed(String),
    /// The subscriber is gone (connection refused or closed, handler no longer there):
    /// it was removed and gets no further events until it subscribes again.
    Pruned(String),
}
