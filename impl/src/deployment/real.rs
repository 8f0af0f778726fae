//! The real mode's plumbing: a loopback TCP listener per node feeding its mailbox, and a
//! ticker.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::DeployError;
use crate::auth::{EdgeStats, Keyring, Principal, Secret};
use crate::node::Feed;
use crate::transport::tcp::{self};
use crate::transport::Links;
use drcheck_protocol::message::{Envelope, NodeId};

/// The real mode's plumbing: where each node listens and the tasks that feed them.
pub(super) struct RealParts {
    pub(super) peers: HashMap<NodeId, SocketAddr>,
    /// This deployment's secret (its links are authenticated as `serve`'s are).
    secret: Secret,
    regions: u8,
    /// What the edges refused or could not send (one count for every node).
    pub(super) stats: EdgeStats,
    /// The current mailbox of each node (none while it is down): index `regions` is the
    /// control plane. The TCP listeners and the ticker post through these.
    pub(super) mailboxes: Vec<FeedSlot>,
    pub(super) tasks: Vec<JoinHandle<()>>,
}

/// A node's current mailbox, whatever its machine (none while it is down).
pub(super) type FeedSlot = Arc<Mutex<Option<Box<dyn Feed>>>>;

pub(super) fn with_feed(slot: &Mutex<Option<Box<dyn Feed>>>, f: impl FnOnce(&dyn Feed)) {
    if let Some(feed) = &*slot.lock().unwrap_or_else(PoisonError::into_inner) {
        f(feed.as_ref());
    }
}

pub(super) fn set_mailbox(slot: &Mutex<Option<Box<dyn Feed>>>, feed: Option<Box<dyn Feed>>) {
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = feed;
}

impl RealParts {
    /// Binds a loopback listener per node and feeds what arrives to the node's mailbox.
    pub(super) async fn bind(regions: u8, links: &Links) -> Result<RealParts, DeployError> {
        let secret = Secret::generate().map_err(|e| DeployError::Io {
            what: "a deployment secret".into(),
            source: std::io::Error::other(e),
        })?;
        let stats = EdgeStats::default();
        let mut peers = HashMap::new();
        let mut mailboxes = Vec::new();
        let mut tasks = Vec::new();
        let nodes = (0..regions).map(NodeId::Region).chain([NodeId::Control]);
        for node in nodes {
            let listener =
                tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|source| DeployError::Io {
                        what: format!("listening for {node}"),
                        source,
                    })?;
            let addr = listener.local_addr().map_err(|source| DeployError::Io {
                what: format!("address of {node}"),
                source,
            })?;
            peers.insert(node, addr);
            let slot: FeedSlot = Arc::default();
            let (sink, mut arrivals) = mpsc::unbounded_channel::<Envelope>();
            let keys = Arc::new(secret.keyring(node.into(), regions));
            tasks.push(tcp::listen(
                listener,
                links.clone(),
                keys,
                stats.clone(),
                sink,
            ));
            let feed = slot.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(envelope) = arrivals.recv().await {
                    with_feed(&feed, |f| f.deliver(envelope));
                }
            }));
            mailboxes.push(slot);
        }
        Ok(RealParts {
            peers,
            secret,
            regions,
            stats,
            mailboxes,
            tasks,
        })
    }

    /// `node`'s keys.
    pub(super) fn keys(&self, node: NodeId) -> Arc<Keyring> {
        Arc::new(self.secret.keyring(Principal::from(node), self.regions))
    }

    /// Ticks every node a few times per protocol minute.
    pub(super) fn start_ticker(&mut self, minute_ms: u64) {
        let mailboxes = self.mailboxes.clone();
        let period = std::time::Duration::from_millis((minute_ms / 4).max(1));
        self.tasks.push(tokio::spawn(async move {
            let mut interval = tokio::time::interval(period);
            loop {
                interval.tick().await;
                for slot in &mailboxes {
                    with_feed(slot, |f| f.tick());
                }
            }
        }));
    }
}

impl Drop for RealParts {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
