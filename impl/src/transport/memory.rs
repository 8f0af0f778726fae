//! The in-memory transport: every message waits in one queue until the deployment delivers
//! it, so a test decides the order, holds messages back, or drops them.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use crate::transport::{Links, Transport};
use drcheck_protocol::message::{Envelope, NodeId};

/// A message sent and not yet delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// Sequence number in send order, unique in the transport.
    pub seq: u64,
    /// The message.
    pub envelope: Envelope,
}

#[derive(Debug, Default)]
struct Queue {
    next_seq: u64,
    messages: VecDeque<InFlight>,
}

/// The in-memory transport: one queue of messages in flight, delivered by the caller.
#[derive(Debug, Default)]
pub struct MemoryTransport {
    links: Links,
    queue: Mutex<Queue>,
}

impl MemoryTransport {
    /// An empty transport obeying `links`.
    pub fn new(links: Links) -> MemoryTransport {
        MemoryTransport {
            links,
            queue: Mutex::default(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Queue) -> T) -> T {
        f(&mut self.queue.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every message in flight, oldest first.
    pub fn in_flight(&self) -> Vec<InFlight> {
        self.with(|q| q.messages.iter().cloned().collect())
    }

    /// Takes the oldest message in flight.
    pub fn pop(&self) -> Option<InFlight> {
        self.with(|q| q.messages.pop_front())
    }

    /// Takes message `seq` out of the queue (to deliver it out of order, or to drop it).
    pub fn take(&self, seq: u64) -> Option<InFlight> {
        self.with(|q| {
            let at = q.messages.iter().position(|m| m.seq == seq)?;
            q.messages.remove(at)
        })
    }

    /// Drops every message from `node`; returns how many.
    pub fn drop_from(&self, node: NodeId) -> usize {
        self.with(|q| {
            let before = q.messages.len();
            q.messages.retain(|m| m.envelope.from != node);
            before - q.messages.len()
        })
    }
}

impl Transport for MemoryTransport {
    fn send(&self, envelope: Envelope) {
        if !self.links.allows(envelope.from, envelope.to) {
            return;
        }
        self.with(|q| {
            let seq = q.next_seq;
            q.next_seq += 1;
            q.messages.push_back(InFlight { seq, envelope });
        });
    }
}
