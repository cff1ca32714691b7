//! The checks the fuzz targets run, one per decoder of network input in `peer-net`.
//!
//! Each decodes the input as a peer does (`postcard::from_bytes`); when it decodes, the
//! value is encoded again and decoded again, and the two values must be equal, the second
//! encoding must be the same bytes as the first, and no longer than the input consumed.
//! A panic anywhere (including an overflow: the targets build with overflow checks) or a
//! stack overflow is a crash to AFL++.

use std::fmt::Debug;
use std::io;

use futures_util::{AsyncRead, AsyncReadExt, FutureExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use peer_net::wire;

/// The default largest frame body (`peer_net::Config`'s `max_frame`).
pub const MAX_FRAME: usize = 64 << 20;

/// Decodes `data` as a `T`; if it decodes, checks the round trip. Returns whether it
/// decoded.
pub fn round_trip<T>(data: &[u8]) -> bool
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    let Ok((value, rest)) = postcard::take_from_bytes::<T>(data) else {
        return false;
    };
    let consumed = data.len() - rest.len();
    let bytes = postcard::to_stdvec(&value).expect("a decoded value encodes");
    assert!(
        bytes.len() <= consumed,
        "{} bytes decoded to a value of {} bytes: {value:?}",
        consumed,
        bytes.len()
    );
    let again: T = match postcard::from_bytes(&bytes) {
        Ok(again) => again,
        Err(e) => panic!("{value:?} encodes to {bytes:?}, which does not decode: {e}"),
    };
    assert_eq!(again, value, "the value changed in a round trip");
    assert_eq!(
        postcard::to_stdvec(&again).expect("encodes"),
        bytes,
        "the encoding changed in a round trip"
    );
    true
}

/// Reads one frame as `peer-net`'s codec does (a 4-byte big-endian length, checked against
/// the limit before anything is read, then a body grown as bytes arrive): a mirror of its
/// crate-private `read_frame` up to the decode. `None` at the end of the stream.
pub fn read_body<R: AsyncRead + Unpin>(io: &mut R, max: usize) -> io::Result<Option<Vec<u8>>> {
    async {
        let mut prefix = [0u8; 4];
        match io.read_exact(&mut prefix).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = u32::from_be_bytes(prefix) as usize;
        if len > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "frame too large",
            ));
        }
        let mut body = Vec::new();
        io.take(len as u64).read_to_end(&mut body).await?;
        if body.len() < len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(Some(body))
    }
    .now_or_never()
    .expect("a byte slice never makes a read wait")
}

/// Frames the encoding of `value` as `peer-net`'s codec does.
pub fn frame<T: Serialize>(value: &T) -> Vec<u8> {
    let body = postcard::to_stdvec(value).expect("encodes");
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend(body);
    frame
}

/// Reads `data` as a stream of frames, up to the first error, and decodes each body as a
/// request and as a response (the two sides of a stream); a body that decodes is framed
/// again, read back and compared.
pub fn frames(data: &[u8]) {
    let mut stream = data;
    while let Ok(Some(body)) = read_body(&mut stream, MAX_FRAME) {
        reframe::<wire::Request>(&body);
        reframe::<wire::Response>(&body);
    }
}

fn reframe<T>(body: &[u8])
where
    T: Serialize + DeserializeOwned + PartialEq + Debug,
{
    if !round_trip::<T>(body) {
        return;
    }
    let value: T = postcard::from_bytes(body).expect("decoded before");
    let framed = frame(&value);
    let mut stream = &framed[..];
    let again = read_body(&mut stream, MAX_FRAME)
        .expect("a frame of ours reads")
        .expect("a frame of ours is there");
    assert!(stream.is_empty(), "the frame is read whole");
    assert_eq!(postcard::from_bytes::<T>(&again).ok(), Some(value));
}
