//! Which packet brought a message in: what a hold names
//! ([`Endpoint::hold_ack`](super::Endpoint::hold_ack)).

use super::packet::DataHeader;

/// The packet that brought a message in (completed it, or let it be
/// handed over in order): what [`Endpoint::hold_ack`](super::Endpoint::hold_ack)
/// holds the acknowledgement of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Receipt {
    /// The peer's session the packet came in.
    pub(super) remote: u64,
    pub(super) pn: u64,
}

impl Receipt {
    /// No packet: what an endpoint notes before any came, and what tests
    /// that compare events use.
    pub(crate) const NONE: Receipt = Receipt { remote: 0, pn: 0 };

    pub(super) fn new(remote: u64, pn: u64) -> Receipt {
        Receipt { remote, pn }
    }

    pub(super) fn of(header: &DataHeader) -> Receipt {
        Receipt::new(header.incarnation, header.pn)
    }
}
