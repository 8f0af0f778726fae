//! Loopback ports held for a process that listens on them later.
//!
//! A port found by binding port 0 and closing the socket again can be taken by any process
//! on the machine before the intended listener binds it: another test's listener, or the
//! local end of an outgoing connection. A [`PortReservation`] closes that window: it keeps a
//! socket bound with `SO_REUSEADDR` that never listens. A listener that sets `SO_REUSEADDR`
//! too (tokio's and the standard library's do) binds the same port beside it; the kernel
//! gives no port that has a bound socket to `bind(0)` or to `connect`, so nobody else gets
//! it, even while the listener is down; and a connection to it while nothing listens is
//! still refused.

use std::io;
use std::net::SocketAddr;

/// A loopback port, held until this is dropped.
#[derive(Debug)]
pub struct PortReservation {
    _socket: tokio::net::TcpSocket,
    addr: SocketAddr,
}

impl PortReservation {
    /// Reserves a free loopback port.
    pub fn new() -> io::Result<PortReservation> {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = socket.local_addr()?;
        Ok(PortReservation {
            _socket: socket,
            addr,
        })
    }

    /// The reserved address, for a listener to bind.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

#[cfg(test)]
mod tests {
    use super::PortReservation;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn a_listener_binds_beside_the_reservation_and_again_after_it_stops() {
        let port = PortReservation::new().expect("a port");
        assert!(
            TcpStream::connect(port.addr()).is_err(),
            "nothing listens yet: refused"
        );
        for _ in 0..2 {
            let listener = TcpListener::bind(port.addr()).expect("binds beside the reservation");
            TcpStream::connect(port.addr()).expect("the listener is reached");
            assert!(listener.accept().is_ok());
        }
        assert!(
            TcpStream::connect(port.addr()).is_err(),
            "the listener stopped: refused again"
        );
    }

    #[test]
    fn nobody_else_is_given_a_reserved_port() {
        let port = PortReservation::new().expect("a port");
        let listener = TcpListener::bind("127.0.0.1:0").expect("a listener");
        for _ in 0..2000 {
            let other = TcpListener::bind("127.0.0.1:0").expect("a free port");
            assert_ne!(other.local_addr().ok(), Some(port.addr()));
            let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("c");
            assert_ne!(client.local_addr().ok(), Some(port.addr()));
            drop(listener.accept());
        }
    }
}
