//! What handling one input asks the shell to do.

use crate::event::Event;
use crate::message::{Envelope, Message, NodeId};
use crate::durable::StoreOp;

/// What handling one input asks the shell to do, in this order: persist `store` (all or
/// nothing; nothing is acknowledged before it is durable), record `events`, send `send`.
#[derive(Debug, Default)]
pub struct Effects {
    pub store: Vec<StoreOp>,
    pub events: Vec<Event>,
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
