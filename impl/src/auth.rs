//! Who may talk to whom inside a deployment: every frame on the protocol links and the RPC
//! links is authenticated with HMAC-SHA256 (RustCrypto's `hmac` and `sha2`), under a key only
//! the two ends of that link hold, with a per-connection challenge that makes a replayed frame
//! worthless.
//!
//! **Keys.** `drcheck serve` generates one 32-byte secret per deployment from the operating
//! system's random source (`<data>/secret`, mode 0600, read by `serve` alone). From it, it
//! derives one key per *pair* of participants, `HMAC-SHA256(secret, "drcheck link key 1" ‖ a ‖
//! 0 ‖ b)` with the two names in order (HMAC as a pseudo-random function over a uniformly
//! random key: HKDF's expand step with one block), and writes each process only the keys of
//! the links it is an end of (`<data>/keys/<name>.key`, 0600, in a 0700 folder): region `r`
//! holds its keys with the control plane, with each other region and with the endpoint; the
//! control plane its keys with each region and with the endpoint. So a region cannot speak
//! for the control plane to another region (it lacks that link's key), nor call another
//! region's RPC port as the endpoint. Nobody outside the deployment holds any key.
//!
//! **Connections.** On every TCP connection, the accepting end first sends a challenge, 16
//! fresh random bytes `ns`. The connecting end answers with a hello naming itself and the
//! peer it means to reach, its own 16 fresh random bytes `nc`, and a MAC over both names and
//! both nonces. The acceptor looks the claimed sender up in its keyring and checks the MAC:
//! from then on it knows which participant is at the other end. Every later line is a frame
//! `<seq> <mac> <payload>`, the MAC over the direction, `ns`, `nc`, the sequence number and
//! the payload; each direction numbers its frames from 0 and the receiver accepts only the
//! next number.
//!
//! **Replay.** A frame captured on one connection fails the MAC on any other (the receiver
//! chose a different `ns`); re-sent or reordered on its own connection, it fails the sequence
//! check; reflected back to its sender, it fails the direction. Nothing has to be remembered
//! across connections, so a process that restarts (and every process does, under `serve`'s
//! faults) needs no durable counter and cannot be fooled by frames from before its restart.
//! An RPC answer is a frame from the acceptor on the caller's connection: it is bound to the
//! caller's fresh `nc`, so a forged or replayed answer is refused too. MACs are compared in
//! constant time (`Mac::verify_slice`).
//!
//! Why HMAC over TLS: the links are JSON lines between processes of one deployment on
//! trusted infrastructure; what was missing is authenticity and freshness, not secrecy from
//! the machine's root. Two small RustCrypto crates do that without certificates to generate,
//! renew and check, and keep the wire readable in a capture (`nc`, `tcpdump -A`).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use drcheck_protocol::message::NodeId;

type HmacSha256 = Hmac<Sha256>;

/// Bytes in a secret, a link key and a MAC.
pub const KEY_LEN: usize = 32;
/// Bytes in a connection nonce.
const NONCE_LEN: usize = 16;
/// The handshake's lines are short; a longer one is refused unread.
const HANDSHAKE_LINE: u64 = 512;
/// First word of the handshake lines (the wire format's version).
const MAGIC: &str = "drcheck-auth-1";
/// How long an acceptor waits for the hello, or a connector for the challenge.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// A participant that holds keys: a region, the control plane, or the endpoint (`serve`,
/// which also runs the supervisor), the only caller of the processes' RPC ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Principal {
    /// The control plane.
    Control,
    /// Region number `r`.
    Region(u8),
    /// The endpoint and supervisor (`drcheck serve`).
    Endpoint,
}

impl Principal {
    /// Its name on the wire and in key files: `control`, `region-1`, `endpoint`.
    pub fn label(self) -> String {
        match self {
            Principal::Control => "control".into(),
            Principal::Region(r) => format!("region-{r}"),
            Principal::Endpoint => "endpoint".into(),
        }
    }

    /// The participant a label names.
    pub fn parse(label: &str) -> Option<Principal> {
        match label {
            "control" => Some(Principal::Control),
            "endpoint" => Some(Principal::Endpoint),
            _ => label
                .strip_prefix("region-")
                .and_then(|r| r.parse().ok())
                .map(Principal::Region),
        }
    }

    /// The protocol node it is (the endpoint is none).
    pub fn node(self) -> Option<NodeId> {
        match self {
            Principal::Control => Some(NodeId::Control),
            Principal::Region(r) => Some(NodeId::Region(r)),
            Principal::Endpoint => None,
        }
    }

    /// Everyone it talks to in a deployment of `regions` regions.
    fn peers(self, regions: u8) -> Vec<Principal> {
        let mut all: Vec<Principal> = (0..regions).map(Principal::Region).collect();
        all.push(Principal::Control);
        all.push(Principal::Endpoint);
        all.into_iter().filter(|&p| p != self).collect()
    }
}

impl From<NodeId> for Principal {
    fn from(node: NodeId) -> Principal {
        match node {
            NodeId::Control => Principal::Control,
            NodeId::Region(r) => Principal::Region(r),
        }
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Principal::Control => f.write_str("control plane"),
            Principal::Region(r) => write!(f, "region {r}"),
            Principal::Endpoint => f.write_str("endpoint"),
        }
    }
}

/// Why a key file, a handshake or a frame was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Reading or writing a key file or a socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        source: io::Error,
    },
    /// A key file is not one.
    #[error("{path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A handshake line or frame is not in the wire format.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The peer names a participant this end holds no key for.
    #[error("unknown sender {0:?}")]
    UnknownSender(String),
    /// The peer means to reach someone else.
    #[error("addressed to {0:?}")]
    WrongAddressee(String),
    /// The MAC does not match: not from a holder of the link's key, or altered, or captured
    /// on another connection (replayed).
    #[error("bad MAC")]
    BadMac,
    /// A frame out of sequence on its connection (replayed or reordered).
    #[error("frame {got} out of sequence (expected {expected})")]
    OutOfSequence {
        /// The sequence number expected next.
        expected: u64,
        /// The one received.
        got: u64,
    },
    /// The handshake did not complete in time.
    #[error("handshake timed out")]
    Timeout,
    /// The connection closed before the handshake's line began (a port probe, or a peer that
    /// gave up); a line cut short is [`AuthError::Malformed`].
    #[error("connection closed during the handshake")]
    Closed,
}

impl AuthError {
    /// A short stable name, for counters: `bad_mac`, `out_of_sequence`, …
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Io { .. } => "io",
            AuthError::KeyFile { .. } => "key_file",
            AuthError::Malformed(_) => "malformed",
            AuthError::UnknownSender(_) => "unknown_sender",
            AuthError::WrongAddressee(_) => "wrong_addressee",
            AuthError::BadMac => "bad_mac",
            AuthError::OutOfSequence { .. } => "out_of_sequence",
            AuthError::Timeout => "handshake_timeout",
            AuthError::Closed => "closed_in_handshake",
        }
    }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> AuthError {
    let what = what.into();
    move |source| AuthError::Io { what, source }
}

/// `n` bytes from the operating system's random source.
fn random<const N: usize>() -> io::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// A fresh connection nonce: HMAC-SHA256 of a counter under a key drawn once per process from
/// the operating system's random source (a pseudo-random function: unpredictable and never
/// repeated while the process lives, and a new key after a restart), truncated to
/// [`NONCE_LEN`] bytes. No system call per connection.
fn nonce() -> Result<[u8; NONCE_LEN], AuthError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static KEY: OnceLock<[u8; KEY_LEN]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let key = match KEY.get() {
        Some(key) => key,
        None => {
            let fresh = random().map_err(io_err("reading /dev/urandom"))?;
            KEY.get_or_init(|| fresh)
        }
    };
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tag = mac(key, &[b"drcheck nonce 1\0", &n.to_be_bytes()])
        .finalize()
        .into_bytes();
    let mut out = [0u8; NONCE_LEN];
    out.copy_from_slice(&tag[..NONCE_LEN]);
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.as_bytes();
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in text.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// A MAC over `parts`, each of which either has a fixed length or ends in a 0 byte, so that
/// no two different inputs run together the same way.
fn mac(key: &[u8; KEY_LEN], parts: &[&[u8]]) -> HmacSha256 {
    // HMAC takes a key of any length: this never fails.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for part in parts {
        mac.update(part);
    }
    mac
}

/// Writes `text` to a new file at `path` readable by its owner only (mode 0600), replacing
/// what was there whole (through a temporary file and a rename).
fn write_private(path: &Path, text: &str) -> Result<(), AuthError> {
    use std::os::unix::fs::OpenOptionsExt;
    let partial = path.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(io_err(format!("creating {}", partial.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io_err(format!("writing {}", partial.display())))?;
    std::fs::rename(&partial, path).map_err(io_err(format!("writing {}", path.display())))
}

/// Reads a key file, refusing one that others than its owner may read.
fn read_private(path: &Path) -> Result<String, AuthError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(io_err(format!("reading {}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(AuthError::KeyFile {
            path: path.to_path_buf(),
            reason: format!(
                "mode {:o}: a key file must be readable by its owner only (0600)",
                meta.permissions().mode() & 0o777
            ),
        });
    }
    std::fs::read_to_string(path).map_err(io_err(format!("reading {}", path.display())))
}

/// A deployment's secret: every link key derives from it. Only `serve` holds it.
#[derive(Clone)]
pub struct Secret([u8; KEY_LEN]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    /// A new secret from the operating system's random source.
    pub fn generate() -> Result<Secret, AuthError> {
        random().map(Secret).map_err(io_err("reading /dev/urandom"))
    }

    /// The secret in `path`, or a new one written there (mode 0600) if there is none.
    pub fn load_or_create(path: &Path) -> Result<Secret, AuthError> {
        if path.exists() {
            let text = read_private(path)?;
            let bytes = unhex(text.trim()).ok_or_else(|| AuthError::KeyFile {
                path: path.to_path_buf(),
                reason: format!("not {KEY_LEN} bytes in hex"),
            })?;
            return Ok(Secret(bytes));
        }
        let secret = Secret::generate()?;
        write_private(path, &format!("{}\n", hex(&secret.0)))?;
        Ok(secret)
    }

    /// The key of the link between `a` and `b` (the same both ways).
    fn link_key(&self, a: Principal, b: Principal) -> [u8; KEY_LEN] {
        let (lo, hi) = if a.label() <= b.label() {
            (a, b)
        } else {
            (b, a)
        };
        let (lo, hi) = (lo.label(), hi.label());
        mac(
            &self.0,
            &[b"drcheck link key 1\0", lo.as_bytes(), b"\0", hi.as_bytes()],
        )
        .finalize()
        .into_bytes()
        .into()
    }

    /// `me`'s keys with everyone it talks to in a deployment of `regions` regions.
    pub fn keyring(&self, me: Principal, regions: u8) -> Keyring {
        Keyring {
            me,
            keys: me
                .peers(regions)
                .into_iter()
                .map(|p| (p, self.link_key(me, p)))
                .collect(),
        }
    }
}

/// The keys one participant holds: one per peer, the key of their link.
#[derive(Clone)]
pub struct Keyring {
    me: Principal,
    keys: HashMap<Principal, [u8; KEY_LEN]>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut peers: Vec<String> = self.keys.keys().map(|p| p.label()).collect();
        peers.sort();
        write!(f, "Keyring({} with {})", self.me.label(), peers.join(", "))
    }
}

/// A key file as stored: whose it is, and each peer's link key in hex.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    me: String,
    keys: BTreeMap<String, String>,
}

impl Keyring {
    /// Whose keys these are.
    pub fn me(&self) -> Principal {
        self.me
    }

    /// The key of the link with `peer`, if `me` talks to it.
    fn key(&self, peer: Principal) -> Option<&[u8; KEY_LEN]> {
        self.keys.get(&peer)
    }

    /// Writes the keyring to `path`, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), AuthError> {
        let file = KeyFile {
            me: self.me.label(),
            keys: self.keys.iter().map(|(p, k)| (p.label(), hex(k))).collect(),
        };
        let text = serde_json::to_string_pretty(&file).map_err(|e| AuthError::KeyFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        write_private(path, &text)
    }

    /// Reads a keyring that [`Keyring::save`] wrote; it must be `expected`'s.
    pub fn load(path: &Path, expected: Principal) -> Result<Keyring, AuthError> {
        let bad = |reason: String| AuthError::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let file: KeyFile =
            serde_json::from_str(&read_private(path)?).map_err(|e| bad(e.to_string()))?;
        let me = Principal::parse(&file.me).ok_or_else(|| bad(format!("owner {:?}", file.me)))?;
        if me != expected {
            return Err(bad(format!("the keys of {me}, not of {expected}")));
        }
        let mut keys = HashMap::new();
        for (label, key) in &file.keys {
            let peer = Principal::parse(label).ok_or_else(|| bad(format!("peer {label:?}")))?;
            let key = unhex(key).ok_or_else(|| bad(format!("the key for {label} is not hex")))?;
            keys.insert(peer, key);
        }
        Ok(Keyring { me, keys })
    }
}

/// Where `serve` keeps a deployment's secret in its data directory.
pub fn secret_file(data_dir: &Path) -> PathBuf {
    data_dir.join("secret")
}

/// Where `who`'s key file is in a deployment's data directory.
pub fn key_file(data_dir: &Path, who: Principal) -> PathBuf {
    data_dir.join("keys").join(format!("{}.key", who.label()))
}

/// Loads the deployment's secret from `data_dir` (creating it on the first run) and writes
/// every process's key file; returns the secret (for the endpoint's own keyring).
pub fn provision(data_dir: &Path, regions: u8) -> Result<Secret, AuthError> {
    use std::os::unix::fs::PermissionsExt;
    let secret = Secret::load_or_create(&secret_file(data_dir))?;
    let keys = data_dir.join("keys");
    std::fs::create_dir_all(&keys).map_err(io_err(format!("creating {}", keys.display())))?;
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("restricting {}", keys.display())))?;
    let nodes = (0..regions)
        .map(Principal::Region)
        .chain([Principal::Control]);
    for who in nodes {
        secret
            .keyring(who, regions)
            .save(&key_file(data_dir, who))?;
    }
    Ok(secret)
}

/// Reads one line of at most `limit` bytes (newline excluded) into `line`; `Ok(false)` at a
/// clean end of stream.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limit: u64,
    line: &mut Vec<u8>,
) -> Result<bool, AuthError> {
    line.clear();
    let read = reader
        .take(limit + 1)
        .read_until(b'\n', line)
        .await
        .map_err(io_err("reading"))?;
    if read == 0 {
        return Ok(false);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        Ok(true)
    } else if line.len() as u64 > limit {
        Err(AuthError::Malformed(format!("a line over {limit} bytes")))
    } else {
        Err(AuthError::Malformed(format!(
            "the connection closed after {} bytes of a line",
            line.len()
        )))
    }
}

/// An authenticated connection's state: who is at the other end, the two nonces, and the
/// sequence numbers of each direction.
#[derive(Debug)]
pub struct Session {
    key: [u8; KEY_LEN],
    peer: Principal,
    ns: [u8; NONCE_LEN],
    nc: [u8; NONCE_LEN],
    /// This end connected (it sent the hello); frames each way carry their direction.
    initiator: bool,
    sent: u64,
    received: u64,
}

impl Session {
    /// Who is at the other end (authenticated).
    pub fn peer(&self) -> Principal {
        self.peer
    }

    fn frame_mac(&self, from_initiator: bool, seq: u64, payload: &[u8]) -> HmacSha256 {
        let direction: &[u8] = if from_initiator { b"i" } else { b"a" };
        mac(
            &self.key,
            &[
                b"drcheck frame 1\0",
                direction,
                &self.ns,
                &self.nc,
                &seq.to_be_bytes(),
                payload,
            ],
        )
    }

    /// Appends `payload` as the next frame (`<seq> <mac> <payload>\n`) to `out`.
    pub fn seal(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let seq = self.sent;
        self.sent += 1;
        let tag = self
            .frame_mac(self.initiator, seq, payload)
            .finalize()
            .into_bytes();
        out.extend_from_slice(format!("{seq} {} ", hex(&tag)).as_bytes());
        out.extend_from_slice(payload);
        out.push(b'\n');
    }

    /// The payload of `line` (a frame without its newline) if it is the peer's next frame on
    /// this connection.
    pub fn open<'a>(&mut self, line: &'a [u8]) -> Result<&'a [u8], AuthError> {
        let malformed = || AuthError::Malformed("a frame is `<seq> <mac> <payload>`".into());
        let mut parts = line.splitn(3, |&b| b == b' ');
        let seq = parts.next().ok_or_else(malformed)?;
        let tag = parts.next().ok_or_else(malformed)?;
        let payload = parts.next().ok_or_else(malformed)?;
        let seq: u64 = std::str::from_utf8(seq)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(malformed)?;
        let tag: [u8; KEY_LEN] = std::str::from_utf8(tag)
            .ok()
            .and_then(unhex)
            .ok_or_else(malformed)?;
        self.frame_mac(!self.initiator, seq, payload)
            .verify_slice(&tag)
            .map_err(|_| AuthError::BadMac)?;
        if seq != self.received {
            return Err(AuthError::OutOfSequence {
                expected: self.received,
                got: seq,
            });
        }
        self.received += 1;
        Ok(payload)
    }
}

fn hello_mac(key: &[u8; KEY_LEN], from: &str, to: &str, ns: &[u8], nc: &[u8]) -> HmacSha256 {
    mac(
        key,
        &[
            b"drcheck hello 1\0",
            from.as_bytes(),
            b"\0",
            to.as_bytes(),
            b"\0",
            ns,
            nc,
        ],
    )
}

/// The accepting end's handshake: sends a challenge, reads the peer's hello and checks it.
/// `allowed` says which authenticated peers may use this port at all.
pub async fn accept<R, W>(
    reader: &mut R,
    writer: &mut W,
    keys: &Keyring,
    allowed: impl Fn(Principal) -> bool,
) -> Result<Session, AuthError>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let ns = nonce()?;
    let challenge = format!("{MAGIC} challenge {}\n", hex(&ns));
    let exchange = async {
        writer
            .write_all(challenge.as_bytes())
            .await
            .map_err(io_err("sending the challenge"))?;
        writer
            .flush()
            .await
            .map_err(io_err("sending the challenge"))?;
        let mut line = Vec::new();
        if !read_line(reader, HANDSHAKE_LINE, &mut line).await? {
            return Err(AuthError::Closed);
        }
        let text = std::str::from_utf8(&line)
            .map_err(|_| AuthError::Malformed("the hello is not text".into()))?;
        let words: Vec<&str> = text.split(' ').collect();
        let [magic, "hello", from, to, nc, tag] = words[..] else {
            return Err(AuthError::Malformed(format!(
                "expected `{MAGIC} hello <from> <to> <nonce> <mac>`, got {:?}",
                text.chars().take(80).collect::<String>()
            )));
        };
        if magic != MAGIC {
            return Err(AuthError::Malformed(format!("version {magic:?}")));
        }
        let peer = Principal::parse(from).ok_or_else(|| AuthError::UnknownSender(from.into()))?;
        let key = *keys
            .key(peer)
            .ok_or_else(|| AuthError::UnknownSender(from.into()))?;
        if to != keys.me().label() {
            return Err(AuthError::WrongAddressee(to.into()));
        }
        let nc: [u8; NONCE_LEN] =
            unhex(nc).ok_or_else(|| AuthError::Malformed("the hello's nonce".into()))?;
        let tag: [u8; KEY_LEN] =
            unhex(tag).ok_or_else(|| AuthError::Malformed("the hello's MAC".into()))?;
        hello_mac(&key, from, to, &ns, &nc)
            .verify_slice(&tag)
            .map_err(|_| AuthError::BadMac)?;
        if !allowed(peer) {
            return Err(AuthError::UnknownSender(format!(
                "{from} (not on this port)"
            )));
        }
        Ok(Session {
            key,
            peer,
            ns,
            nc,
            initiator: false,
            sent: 0,
            received: 0,
        })
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, exchange)
        .await
        .map_err(|_| AuthError::Timeout)?
}

/// The connecting end's handshake: reads the challenge, and returns the session with the
/// hello to send first (the caller sends it with its first frames, in one write).
pub async fn connect<R>(
    reader: &mut R,
    keys: &Keyring,
    peer: Principal,
) -> Result<(Session, Vec<u8>), AuthError>
where
    R: AsyncBufRead + Unpin,
{
    let key = *keys
        .key(peer)
        .ok_or_else(|| AuthError::UnknownSender(format!("no key for {peer}")))?;
    let read = async {
        let mut line = Vec::new();
        if !read_line(reader, HANDSHAKE_LINE, &mut line).await? {
            return Err(AuthError::Closed);
        }
        let text = String::from_utf8_lossy(&line);
        let words: Vec<&str> = text.split(' ').collect();
        match words[..] {
            [MAGIC, "challenge", ns] => {
                unhex(ns).ok_or_else(|| AuthError::Malformed("the challenge's nonce".into()))
            }
            _ => Err(AuthError::Malformed(format!(
                "expected a challenge, got {:?}",
                text.chars().take(80).collect::<String>()
            ))),
        }
    };
    let ns: [u8; NONCE_LEN] = tokio::time::timeout(HANDSHAKE_TIMEOUT, read)
        .await
        .map_err(|_| AuthError::Timeout)??;
    let nc = nonce()?;
    let (from, to) = (keys.me().label(), peer.label());
    let tag = hello_mac(&key, &from, &to, &ns, &nc)
        .finalize()
        .into_bytes();
    let hello = format!("{MAGIC} hello {from} {to} {} {}\n", hex(&nc), hex(&tag));
    let session = Session {
        key,
        peer,
        ns,
        nc,
        initiator: true,
        sent: 0,
        received: 0,
    };
    Ok((session, hello.into_bytes()))
}

/// What a process's TCP edges refused or could not send, by reason, and the largest frames
/// that went through: logged as they happen (the process's log: `serve` keeps it in
/// `<data>/<process>.log`) and shown in the region's summary. Cheap to clone; clones share.
#[derive(Clone, Debug, Default)]
pub struct EdgeStats {
    inner: Arc<Mutex<EdgeCounts>>,
}

/// The counts behind [`EdgeStats`] (the region's summary carries them).
pub use drcheck_fhir::region::EdgeReport as EdgeCounts;

impl EdgeStats {
    fn with<T>(&self, f: impl FnOnce(&mut EdgeCounts) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Refuses something that arrived: logs it (a warning, target `drcheck::edge`, with the
    /// process's `node` and the `reason`), counts it under `reason`.
    pub fn refuse(&self, me: impl std::fmt::Display, reason: &str, detail: impl std::fmt::Display) {
        tracing::warn!(target: "drcheck::edge", node = %me, reason, "refused ({reason}): {detail}");
        self.with(|c| *c.refused.entry(reason.to_string()).or_default() += 1);
    }

    /// Something could not be sent as it was: logs it (a warning, target `drcheck::edge`),
    /// counts it under `reason`.
    pub fn error(&self, me: impl std::fmt::Display, reason: &str, detail: impl std::fmt::Display) {
        tracing::warn!(target: "drcheck::edge", node = %me, reason, "{reason}: {detail}");
        self.with(|c| *c.errors.entry(reason.to_string()).or_default() += 1);
    }

    /// A frame of `bytes` went out.
    pub fn sent(&self, bytes: usize) {
        self.with(|c| c.largest_sent = c.largest_sent.max(bytes as u64));
    }

    /// A frame of `bytes` came in.
    pub fn received(&self, bytes: usize) {
        self.with(|c| c.largest_received = c.largest_received.max(bytes as u64));
    }

    /// The counts now.
    pub fn counts(&self) -> EdgeCounts {
        self.with(|c| c.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_keys_are_shared_by_the_two_ends_only() {
        let s = Secret::generate().unwrap();
        let r0 = s.keyring(Principal::Region(0), 2);
        let r1 = s.keyring(Principal::Region(1), 2);
        let cp = s.keyring(Principal::Control, 2);
        assert_eq!(r0.key(Principal::Control), cp.key(Principal::Region(0)));
        assert_eq!(r0.key(Principal::Region(1)), r1.key(Principal::Region(0)));
        // Region 0 holds no key of the link between the control plane and region 1.
        let cp_r1 = cp.key(Principal::Region(1)).unwrap();
        assert!(r0.keys.values().all(|k| k != cp_r1));
        assert!(r0.key(Principal::Region(0)).is_none());
        let other = Secret::generate().unwrap().keyring(Principal::Control, 2);
        assert_ne!(
            other.key(Principal::Region(0)),
            cp.key(Principal::Region(0))
        );
    }

    #[test]
    fn hex_round_trips_and_refuses_bad_text() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(unhex::<4>(&hex(&bytes)), Some(bytes));
        assert_eq!(unhex::<4>("00zz00ff"), None);
        assert_eq!(unhex::<4>("00"), None);
    }

    fn pair(keys_a: &Keyring, keys_b: &Keyring) -> (Session, Session) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (a, b) = tokio::io::duplex(4096);
            let (ar, mut aw) = tokio::io::split(a);
            let (br, mut bw) = tokio::io::split(b);
            let mut ar = tokio::io::BufReader::new(ar);
            let mut br = tokio::io::BufReader::new(br);
            let peer = keys_b.me();
            let acceptor = async { accept(&mut br, &mut bw, keys_b, |_| true).await };
            let connector = async {
                let (session, hello) = connect(&mut ar, keys_a, peer).await?;
                aw.write_all(&hello).await.map_err(io_err("hello"))?;
                Ok::<_, AuthError>(session)
            };
            let (a, b) = tokio::join!(connector, acceptor);
            (a.unwrap(), b.unwrap())
        })
    }

    #[test]
    fn frames_open_once_in_order_in_their_direction_on_their_connection() {
        let s = Secret::generate().unwrap();
        let (keys_a, keys_b) = (
            s.keyring(Principal::Endpoint, 2),
            s.keyring(Principal::Region(1), 2),
        );
        let (mut a, mut b) = pair(&keys_a, &keys_b);
        assert_eq!(b.peer(), Principal::Endpoint);
        let mut out = Vec::new();
        a.seal(b"{\"x\":1}", &mut out);
        let line = &out[..out.len() - 1];
        assert_eq!(b.open(line).unwrap(), b"{\"x\":1}");
        // The same bytes again: out of sequence.
        assert!(matches!(b.open(line), Err(AuthError::OutOfSequence { .. })));
        // Reflected back to its sender: wrong direction.
        assert!(matches!(a.open(line), Err(AuthError::BadMac)));
        // On another connection of the same two: another challenge.
        let (_, mut b2) = pair(&keys_a, &keys_b);
        assert!(matches!(b2.open(line), Err(AuthError::BadMac)));
        // Altered payload.
        let mut altered = line.to_vec();
        let last = altered.len() - 2;
        altered[last] = b'2';
        let mut out2 = Vec::new();
        a.seal(b"{\"x\":1}", &mut out2);
        assert!(matches!(b.open(&altered), Err(AuthError::BadMac)));
        // An answer the other way.
        let mut back = Vec::new();
        b.seal(b"ok", &mut back);
        assert_eq!(a.open(&back[..back.len() - 1]).unwrap(), b"ok");
    }
}
