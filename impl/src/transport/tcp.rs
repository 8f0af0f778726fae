//! The real transport between processes: JSON lines over TCP.
//!
//! Every message travels as one line: a serde_json-encoded [`Envelope`] followed by `\n`.
//! JSON lines because the framing is trivial (serde_json never emits a raw newline, so a
//! newline ends a message), a capture of the wire reads as text (`nc -l`, `tcpdump -A`), any
//! language can speak it, and the messages are already serde types: no schema to keep in
//! step. A line is limited to [`MAX_LINE`] bytes so that a broken or hostile peer cannot make
//! a reader buffer without end.
//!
//! Sending never blocks and never fails. Each peer gets a writer task, fed through an
//! unbounded channel, that owns the connection: it connects on demand, batches the lines
//! queued behind one another into one flush, and on any error drops the connection and the
//! message in hand, then reconnects on a later message (after a short backoff, dropping what
//! arrives meanwhile). Losing messages is fine because the protocol already tolerates it:
//! heartbeats repeat, `Append` is retransmitted from the last confirmed index, a lost grant or
//! command is re-issued, and every timeout the protocol relies on counts silence, not
//! messages. TCP keeps order on one connection, so while a connection lasts a receiver sees
//! a subsequence of what was sent; across a reconnect after a write timeout, data the old
//! connection still held may arrive after the new one's, which the protocol tolerates like
//! any delay.
//!
//! Both ends obey [`Links`]: the sender drops a message on a cut link, and the receiver drops
//! it again on arrival, so a cut made while the message was in flight still loses it.
//!
//! Every connection is authenticated ([`crate::auth`]): the listener challenges, the writer
//! names itself with a MAC under the key of their link, and every line after that is a frame
//! MACed with its sequence number. A listener refuses (logs, counts in [`EdgeStats`] and
//! closes the connection) a handshake from a stranger, a frame with a bad MAC or out of
//! sequence (replayed), and an envelope whose `from` is not the authenticated sender or whose
//! `to` is not this node.
//!
//! **Frame size.** An envelope is at most [`MAX_LINE`] bytes of JSON. An `Append` that would
//! be longer (the region machine sizes its batches by bytes well under the limit, so this is
//! a backstop) is split in two consecutive `Append`s, as often as needed, and the split is
//! logged and counted; anything else over the limit cannot be sent and is logged and counted
//! as an error (never silently dropped). A reader refuses a longer line, logged and counted on
//! its side too.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::{Links, Transport};
use crate::auth::{self, AuthError, EdgeStats, Keyring, Principal, Session};
use drcheck_protocol::message::{Envelope, Message, NodeId};

/// The longest envelope (its JSON) a frame carries. A sender splits an `Append` that would be
/// longer, and refuses (logged, counted) anything else that would be.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// What a frame adds to its envelope: the sequence number, the MAC and two spaces.
const FRAME_OVERHEAD: usize = 20 + 1 + 2 * auth::KEY_LEN + 1;

/// After a failed connect, a writer drops messages for this long before trying again.
const CONNECT_BACKOFF: Duration = Duration::from_millis(50);

/// A connect that has not succeeded in this long has failed (an unreachable host would
/// otherwise hold the queue for minutes).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// A write or flush that has not completed in this long has failed: the peer stopped reading
/// (a frozen process, say). The connection is dropped rather than queueing without end.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many queued messages are taken from the channel per flush.
const BATCH: usize = 256;

/// A reader keeps at most this much buffer between lines (it grows for a long line, then
/// shrinks back).
const READ_BUFFER_KEEP: usize = 64 * 1024;

/// Sends envelopes to peers over TCP, one writer task and connection per peer.
#[derive(Debug)]
pub struct TcpTransport {
    me: NodeId,
    keys: Arc<Keyring>,
    stats: EdgeStats,
    peers: HashMap<NodeId, SocketAddr>,
    links: Links,
    /// The writer tasks' queues, created on the first message to each peer.
    writers: Mutex<HashMap<NodeId, UnboundedSender<Envelope>>>,
    /// The runtime the writer tasks run on, so that `send` works from any thread.
    runtime: tokio::runtime::Handle,
}

impl TcpTransport {
    /// A transport for `me`, reaching each peer at its address, authenticated with `keys`
    /// (which must be `me`'s); what it cannot send goes to `stats`. Must be called inside a
    /// tokio runtime (it panics otherwise); the writer tasks run on that runtime. Dropping
    /// the transport ends them once they have written what is queued.
    pub fn new(
        me: NodeId,
        keys: Arc<Keyring>,
        peers: HashMap<NodeId, SocketAddr>,
        links: Links,
        stats: EdgeStats,
    ) -> TcpTransport {
        TcpTransport {
            me,
            keys,
            stats,
            peers,
            links,
            writers: Mutex::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// The participant this transport sends for.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// The writer queue for `to`, if `to` is a known peer, starting its task if need be.
    fn queue(&self, to: NodeId) -> Option<UnboundedSender<Envelope>> {
        let mut writers = self.writers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = writers.get(&to) {
            if !tx.is_closed() {
                return Some(tx.clone());
            }
        }
        let addr = *self.peers.get(&to)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer {
            me: self.me,
            peer: to,
            addr,
            keys: self.keys.clone(),
            stats: self.stats.clone(),
            conn: None,
            retry_at: None,
            failing: false,
        };
        self.runtime.spawn(writer.run(rx));
        writers.insert(to, tx.clone());
        Some(tx)
    }
}

impl Transport for TcpTransport {
    fn send(&self, envelope: Envelope) {
        let (from, to) = (envelope.from, envelope.to);
        if from != self.me {
            tracing::warn!(me = %self.me, %from, %to, "sending on behalf of another node");
        }
        if !self.links.allows(from, to) {
            tracing::trace!(%from, %to, kind = envelope.msg.kind(), "link cut: message dropped");
            return;
        }
        let Some(tx) = self.queue(to) else {
            tracing::warn!(
                me = %self.me,
                %to,
                kind = envelope.msg.kind(),
                "unknown peer: message dropped"
            );
            return;
        };
        // Fails only if the writer task is gone (its runtime shut down): the message is lost.
        if tx.send(envelope).is_err() {
            tracing::debug!(%to, "writer task gone: message dropped");
        }
    }
}

/// The task that owns the connection to one peer.
struct Writer {
    me: NodeId,
    peer: NodeId,
    addr: SocketAddr,
    keys: Arc<Keyring>,
    stats: EdgeStats,
    /// The connection and its authenticated session.
    conn: Option<(BufWriter<TcpStream>, Session)>,
    /// No connect before this instant (the backoff after a failed one).
    retry_at: Option<Instant>,
    /// The last connect attempt failed (to log a failure once, not every attempt).
    failing: bool,
}

impl Writer {
    async fn run(mut self, mut rx: UnboundedReceiver<Envelope>) {
        let mut batch = Vec::with_capacity(BATCH);
        while rx.recv_many(&mut batch, BATCH).await > 0 {
            for envelope in batch.drain(..) {
                self.write(envelope).await;
            }
            // Flush only when nothing more is queued: under load, lines accumulate in the
            // buffer and go out in few segments.
            if rx.is_empty() {
                self.flush().await;
            }
        }
        // The transport is gone: flush what is buffered and close.
        self.flush().await;
        if let Some((mut conn, _)) = self.conn.take() {
            let _ = tokio::time::timeout(WRITE_TIMEOUT, conn.shutdown()).await;
        }
    }

    /// Writes one envelope's frame into the connection's buffer, connecting first if need be
    /// (an `Append` over the limit as several). On failure the envelope is dropped.
    async fn write(&mut self, envelope: Envelope) {
        let mut pending = vec![envelope];
        while let Some(envelope) = pending.pop() {
            let payload = match serde_json::to_vec(&envelope) {
                Ok(payload) => payload,
                Err(e) => {
                    let detail = format!(
                        "cannot encode a {} to {}: {e}",
                        envelope.msg.kind(),
                        self.peer
                    );
                    self.stats.error(self.me, "unencodable", detail);
                    continue;
                }
            };
            if payload.len() > MAX_LINE {
                let (kind, bytes) = (envelope.msg.kind(), payload.len());
                match split_append(envelope) {
                    Some((first, second)) => {
                        let detail = format!(
                            "an append to {} of {bytes} bytes is over the {MAX_LINE}-byte frame \
                             limit: sent as two",
                            self.peer
                        );
                        self.stats.error(self.me, "frame_split", detail);
                        pending.push(second);
                        pending.push(first);
                    }
                    None => {
                        let detail = format!(
                            "a {kind} to {} of {bytes} bytes is over the {MAX_LINE}-byte frame \
                             limit and cannot be split: not sent",
                            self.peer
                        );
                        self.stats.error(self.me, "frame_over_limit", detail);
                    }
                }
                continue;
            }
            self.write_frame(&payload).await;
        }
    }

    async fn write_frame(&mut self, payload: &[u8]) {
        let stats = self.stats.clone();
        let Some((conn, session)) = self.connected().await else {
            return;
        };
        let mut frame = Vec::with_capacity(payload.len() + FRAME_OVERHEAD + 1);
        session.seal(payload, &mut frame);
        stats.sent(frame.len() - 1);
        let written = tokio::time::timeout(WRITE_TIMEOUT, conn.write_all(&frame)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.lost(e),
            Err(_) => self.lost(io::Error::new(io::ErrorKind::TimedOut, "write timed out")),
        }
    }

    async fn flush(&mut self) {
        let Some((conn, _)) = self.conn.as_mut() else {
            return;
        };
        let flushed = tokio::time::timeout(WRITE_TIMEOUT, conn.flush()).await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => self.lost(e),
            Err(_) => self.lost(io::Error::new(io::ErrorKind::TimedOut, "flush timed out")),
        }
    }

    /// The connection, connecting if there is none and the backoff has passed.
    async fn connected(&mut self) -> Option<(&mut BufWriter<TcpStream>, &mut Session)> {
        if self.conn.is_none() {
            if self.retry_at.is_some_and(|at| Instant::now() < at) {
                return None;
            }
            match self.connect().await {
                Ok(conn) => {
                    let (me, peer, addr) = (self.me, self.peer, self.addr);
                    if self.failing {
                        tracing::info!(%me, %peer, %addr, "connected");
                    } else {
                        tracing::debug!(%me, %peer, %addr, "connected");
                    }
                    self.failing = false;
                    self.retry_at = None;
                    self.conn = Some(conn);
                }
                Err(e) => {
                    if self.failing {
                        tracing::debug!(
                            peer = %self.peer,
                            addr = %self.addr,
                            error = %e,
                            "connect failed"
                        );
                    } else {
                        tracing::warn!(
                            me = %self.me,
                            peer = %self.peer,
                            addr = %self.addr,
                            error = %e,
                            "connect failed; dropping messages until a retry succeeds"
                        );
                    }
                    self.failing = true;
                    self.retry_at = Some(Instant::now() + CONNECT_BACKOFF);
                    return None;
                }
            }
        }
        self.conn.as_mut().map(|(conn, session)| (conn, session))
    }

    /// Connects and authenticates: reads the peer's challenge and queues the hello.
    async fn connect(&self) -> io::Result<(BufWriter<TcpStream>, Session)> {
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
        stream.set_nodelay(true)?;
        // The listener sends its challenge and nothing more until the hello: nothing the
        // reader buffers past the challenge is lost.
        let mut reader = tokio::io::BufReader::new(&mut stream);
        let (session, hello) = auth::connect(&mut reader, &self.keys, Principal::from(self.peer))
            .await
            .map_err(|e| match e {
                AuthError::Io { source, .. } => source,
                other => io::Error::other(format!("handshake: {other}")),
            })?;
        let mut conn = BufWriter::new(stream);
        conn.write_all(&hello).await?;
        Ok((conn, session))
    }

    /// Drops the connection after an I/O error; the next message reconnects.
    fn lost(&mut self, e: io::Error) {
        tracing::warn!(
            me = %self.me,
            peer = %self.peer,
            addr = %self.addr,
            error = %e,
            "connection lost; buffered messages dropped"
        );
        self.conn = None;
    }
}

/// Accepts connections on `listener` and forwards every envelope read from them to `sink`,
/// unless [`Links`] cuts its link at arrival. Only a participant holding the key of its link
/// with `keys`' owner gets a message through; everything refused goes to `stats`. Must be
/// called inside a tokio runtime; returns the accepting task, which ends (with every
/// connection) once `sink` is closed. Aborting it closes every connection too.
///
/// A refused handshake or frame, a malformed or over-long line closes its connection (logged
/// and counted); the listener goes on accepting.
pub fn listen(
    listener: TcpListener,
    links: Links,
    keys: Arc<Keyring>,
    stats: EdgeStats,
    sink: UnboundedSender<Envelope>,
) -> JoinHandle<()> {
    let edge = Edge { links, keys, stats };
    tokio::spawn(accept_loop(listener, edge, sink))
}

/// What every connection of a listener shares.
#[derive(Clone)]
struct Edge {
    links: Links,
    keys: Arc<Keyring>,
    stats: EdgeStats,
}

async fn accept_loop(listener: TcpListener, edge: Edge, sink: UnboundedSender<Envelope>) {
    // Dropping the set (when this task ends or is aborted) aborts the connection tasks.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = sink.closed() => break,
            // Reap finished connection tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, error = %e, "set_nodelay failed");
                    }
                    connections.spawn(read_connection(stream, peer, edge.clone(), sink.clone()));
                }
                Err(e) => {
                    // Out of file descriptors, say: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(CONNECT_BACKOFF).await;
                }
            },
        }
    }
}

async fn read_connection(
    stream: TcpStream,
    peer: SocketAddr,
    edge: Edge,
    sink: UnboundedSender<Envelope>,
) {
    tokio::select! {
        _ = sink.closed() => {}
        () = read_lines(stream, peer, &edge, &sink) => {}
    }
}

async fn read_lines(
    stream: TcpStream,
    addr: SocketAddr,
    edge: &Edge,
    sink: &UnboundedSender<Envelope>,
) {
    let me = edge.keys.me();
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    // Only protocol participants speak on a protocol port (the endpoint uses RPC).
    let protocol_node = |p: Principal| p.node().is_some();
    let mut session = match auth::accept(&mut reader, &mut write, &edge.keys, protocol_node).await {
        Ok(session) => session,
        Err(AuthError::Closed) => return, // a port probe, or a peer that gave up
        Err(e) => {
            edge.stats
                .refuse(me, e.reason(), format!("connection from {addr}: {e}"));
            return;
        }
    };
    let Some(sender) = session.peer().node() else {
        return;
    };
    let mut line = Vec::new();
    loop {
        if line.capacity() > READ_BUFFER_KEEP {
            line = Vec::new();
        }
        line.clear();
        // One byte past the limit tells an over-long line from one exactly at it.
        let limit = MAX_LINE + FRAME_OVERHEAD;
        let read = (&mut reader)
            .take(limit as u64 + 1)
            .read_until(b'\n', &mut line)
            .await;
        match read {
            Ok(0) => return, // closed
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(%addr, error = %e, "read failed; closing connection");
                return;
            }
        }
        if line.last() == Some(&b'\n') {
            line.pop();
        } else if line.len() > limit {
            let detail = format!("a frame from {sender} over {limit} bytes; connection closed");
            edge.stats.refuse(me, "frame_over_limit", detail);
            return;
        } else {
            // The peer closed mid-line (it lost its connection while writing): drop the stub.
            tracing::debug!(%addr, bytes = line.len(), "connection closed mid-line");
            return;
        }
        edge.stats.received(line.len());
        let payload = match session.open(&line) {
            Ok(payload) => payload,
            Err(e) => {
                let detail = format!("a frame from {sender} ({addr}): {e}; connection closed");
                edge.stats.refuse(me, e.reason(), detail);
                return;
            }
        };
        let envelope: Envelope = match serde_json::from_slice(payload) {
            Ok(envelope) => envelope,
            Err(e) => {
                let detail = format!("a malformed message from {sender}: {e}; connection closed");
                edge.stats.refuse(me, "malformed", detail);
                return;
            }
        };
        if envelope.from != sender || Some(envelope.to) != me.node() {
            let detail = format!(
                "a {} from {} to {} sent by {sender}; connection closed",
                envelope.msg.kind(),
                envelope.from,
                envelope.to
            );
            edge.stats.refuse(me, "from_or_to_mismatch", detail);
            return;
        }
        if !edge.links.allows(envelope.from, envelope.to) {
            tracing::trace!(
                from = %envelope.from,
                to = %envelope.to,
                kind = envelope.msg.kind(),
                "link cut: arriving message dropped"
            );
            continue;
        }
        if sink.send(envelope).is_err() {
            return; // the receiver is gone
        }
    }
}

/// An `Append` split into two consecutive ones (the second after the first's last entry);
/// `None` if it is not an `Append` of two entries or more.
fn split_append(envelope: Envelope) -> Option<(Envelope, Envelope)> {
    let Envelope { from, to, msg } = envelope;
    match msg {
        Message::Append {
            epoch,
            start,
            mut entries,
            prev,
        } if entries.len() >= 2 => {
            let second = entries.split_off(entries.len() / 2);
            let last = entries.last().map(|e| (e.epoch, e.write));
            let first_len = entries.len() as u64;
            let first = Message::Append {
                epoch,
                start,
                entries,
                prev,
            };
            let second = Message::Append {
                epoch,
                start: start + first_len,
                entries: second,
                prev: last,
            };
            Some((
                Envelope {
                    from,
                    to,
                    msg: first,
                },
                Envelope {
                    from,
                    to,
                    msg: second,
                },
            ))
        }
        _ => None,
    }
}
