//! What handling one input asks the shell to do.

use crate::durable::StoreOp;
use crate::event::Event;
use crate::message::{Envelope, Message, NodeId};

/// What handling one input asks the shell to do, in this order: persist `store` (all or
/// nothing; nothing is acknowledged before it is durable), record `events`, send `send`.
#[derive(Debug, Default)]
pub struct Effects {
    /// Changes to the machine's durable state, to persist first, atomically.
    pub store: Vec<StoreOp>,
    /// Events to record once the changes are durable.
    pub events: Vec<Event>,
    /// Messages to send last.
    pub send: Vec<Envelope>,
}

impl Effects {
    pub(crate) fn send(&mut self, from: NodeId, to: NodeId, msg: Message) {
        self.send.push(Envelope { from, to, msg });
    }

    pub(crate) fn event(&mut self, event: Event) {
        self.events.push(event);
    }
}

/// The inputs every machine takes from its shell besides its own requests: time passed (look
/// at the clock), and a message that arrived.
pub trait Inbound: From<Envelope> {
    /// Time passed: look at the clock.
    fn tick() -> Self;
}
