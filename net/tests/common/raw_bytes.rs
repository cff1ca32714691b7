//! Bytes on the wire for the raw peer of hostile-peer tests: a request-response codec that
//! writes requests as given, frames, hand-made encodings, and what an honest member with
//! nothing to give answers.

#![allow(dead_code, unreachable_pub)]

use std::io;

use futures_util::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::multiaddr::Protocol;
use libp2p::request_response;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use peer_net::wire::{Reply, Request, Response};

/// The task protocol, as `peer_net` speaks it.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/peer/tasks/3");

/// Writes requests and responses as given (a request must carry its own length prefix, so
/// that a test can lie about it); reads length-prefixed frames.
#[derive(Clone, Default)]
pub struct RawCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<Vec<u8>> {
    let mut prefix = [0u8; 4];
    io.read_exact(&mut prefix).await?;
    let len = u32::from_be_bytes(prefix) as usize;
    if len > 16 << 20 {
        return Err(io::Error::other("test frame too large"));
    }
    let mut body = vec![0; len];
    io.read_exact(&mut body).await?;
    Ok(body)
}

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_frame(io).await
    }
    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<Vec<u8>> {
        read_frame(io).await
    }
    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&bytes).await?;
        io.close().await
    }
    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> io::Result<()> {
        io.write_all(&frame(&bytes)).await?;
        io.close().await
    }
}

/// A body with its 4-byte big-endian length in front.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A request as a frame.
pub fn encoded(request: &Request) -> Vec<u8> {
    frame(&postcard::to_allocvec(request).unwrap())
}

/// The policy's number for a peer id, as `peer-net` computes it (FNV-1a of its bytes).
pub fn number(peer: &PeerId) -> u64 {
    peer.to_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        })
}

/// `x` as a postcard varint.
pub fn varint(mut x: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (x & 0x7f) as u8;
        x >>= 7;
        if x == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// A `Failure` encoded by hand: `Failure::Input { task: 1/1, cause }` nested `depth` deep
/// around `Failure::UnknownTask`. Input is variant 8 of `Failure`, UnknownTask variant 1.
pub fn nested_failure(depth: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(depth * 3 + 1);
    for _ in 0..depth {
        out.extend_from_slice(&[8, 1, 1]);
    }
    out.push(1);
    out
}

/// The peer id an address ends in.
pub fn peer_of(addr: &Multiaddr) -> PeerId {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => peer,
        _ => panic!("{addr} does not end in /p2p/<id>"),
    }
}

/// What an honest member with nothing to give answers.
pub fn default_answer(request: &Request) -> Response {
    match request {
        Request::Steal { .. } => Response::Stolen {
            tasks: Vec::new(),
            ready: 0,
        },
        Request::Fetch { .. } => Response::Missing,
        Request::Holding { tasks } => Response::NotHeld(tasks.clone()),
        Request::Published { .. } => Response::Published(None),
        Request::Prim(_) => Response::Prim(Reply::Refused("a raw peer hosts nothing".into())),
        Request::Claim { .. } => Response::Claimed(None),
        Request::Report => Response::Refused("a raw peer gives no report".into()),
        // Taken (a backup's copy is taken and forgotten: a raw peer never claims).
        Request::Notify { .. }
        | Request::Lifeline { .. }
        | Request::Push { .. }
        | Request::Replicate { .. } => Response::Ack,
    }
}
